//! Bot API failures, classified for the engine's retry policy.
//!
//! teloxide reads the `description` of an error answer into [`ApiError`] (it drops
//! `error_code`) and turns `parameters.retry_after` into [`RequestError::RetryAfter`]. From
//! those:
//! - 429 → [`ConnectorError::RetryAfter`] with Telegram's delay;
//! - the user blocked the bot, deleted their account, never started it → [`ConnectorError::Permanent`]
//!   with a reason a DM3 sender understands;
//! - other "Bad Request"/"Forbidden"/"Unauthorized" answers → permanent: retrying the same
//!   request gets the same answer;
//! - network errors, unreadable answers (a proxy's HTML error page) and anything unknown →
//!   [`ConnectorError::Transient`].

use std::time::Duration;

use dm3_bridge_connector::ConnectorError;
use teloxide_core::{ApiError, RequestError};

/// The delay of a 429, if this is one.
pub fn retry_after(error: &RequestError) -> Option<Duration> {
    match error {
        RequestError::RetryAfter(seconds) => Some(seconds.duration()),
        _ => None,
    }
}

/// The engine's view of a failed Bot API call.
pub fn classify(error: RequestError) -> ConnectorError {
    match error {
        RequestError::RetryAfter(seconds) => ConnectorError::RetryAfter(Some(seconds.duration())),
        RequestError::Api(api) => classify_api(api),
        RequestError::MigrateToChatId(chat) => {
            ConnectorError::Permanent(format!("the Telegram group moved to the supergroup {chat}"))
        }
        RequestError::Network(e) => {
            ConnectorError::Transient(format!("Telegram unreachable: {}", without_url(&e)))
        }
        RequestError::InvalidJson { .. } => ConnectorError::Transient(
            "Telegram's answer was not Bot API JSON (a proxy error page?)".to_owned(),
        ),
        RequestError::Io(e) => ConnectorError::Transient(format!("reading the file to send failed: {e}")),
    }
}

fn classify_api(error: ApiError) -> ConnectorError {
    let permanent = |reason: &str| ConnectorError::Permanent(reason.to_owned());
    match error {
        ApiError::BotBlocked => permanent(
            "the Telegram user has blocked the bridge's bot (Forbidden: bot was blocked by the user)",
        ),
        ApiError::UserDeactivated => permanent("the Telegram user's account is deleted"),
        ApiError::CantInitiateConversation => {
            permanent("the Telegram user has not started a chat with the bridge's bot yet")
        }
        ApiError::InvalidToken => permanent("Telegram refused the bot token; the operator must check it"),
        ApiError::ChatNotFound => permanent("the Telegram chat does not exist or the bot is not in it"),
        ApiError::MessageIsTooLong | ApiError::EditedMessageIsTooLong => {
            permanent("the text is longer than Telegram allows (4096 characters)")
        }
        ApiError::RequestEntityTooLarge => {
            permanent("the file is larger than Telegram takes from a bot (50 MB)")
        }
        ApiError::Unknown(description) => classify_description(&description),
        other => ConnectorError::Permanent(format!("Telegram refused the request: {other}")),
    }
}

/// An error teloxide does not know, by the class Telegram puts in front of its description.
fn classify_description(description: &str) -> ConnectorError {
    const PERMANENT: [&str; 5] = ["Bad Request", "Forbidden", "Unauthorized", "Not Found", "Conflict"];
    if description.starts_with("Too Many Requests") {
        return ConnectorError::RetryAfter(None);
    }
    if PERMANENT.iter().any(|class| description.starts_with(class)) {
        return ConnectorError::Permanent(format!("Telegram refused the request: {description}"));
    }
    ConnectorError::Transient(format!("Telegram failed: {description}"))
}

/// A reqwest error's text without its URL, which holds the bot token.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<Bot API>");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use teloxide_core::types::Seconds;

    use super::*;

    #[test]
    fn classes() {
        assert_eq!(
            classify(RequestError::RetryAfter(Seconds::from_seconds(3))),
            ConnectorError::RetryAfter(Some(Duration::from_secs(3)))
        );
        let blocked = classify(RequestError::Api(ApiError::BotBlocked));
        assert!(matches!(&blocked, ConnectorError::Permanent(r) if r.contains("blocked")), "{blocked}");
        assert!(matches!(
            classify_description("Bad Request: REACTION_INVALID"),
            ConnectorError::Permanent(_)
        ));
        assert!(matches!(classify_description("Internal Server Error"), ConnectorError::Transient(_)));
        assert_eq!(classify_description("Too Many Requests: retry later"), ConnectorError::RetryAfter(None));
    }
}
