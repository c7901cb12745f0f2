//! The two secrets of a Telegram bot, as types that cannot leak into a log.
//!
//! - [`BotToken`]: whoever holds it *is* the bot (reads every chat, sends as it). It is also part
//!   of every Bot API URL (`/bot<token>/<method>`), which is why the connector never logs a URL.
//! - [`WebhookSecret`]: Telegram sends it in `X-Telegram-Bot-Api-Secret-Token` on every webhook
//!   call; whoever holds it can inject updates.
//!
//! Both keep their text in zeroized memory, print `[redacted]` in `Debug` and `Display`, and
//! serialize transparently (the service writes them into its own config file, never into a log).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Longest secret accepted; Telegram's webhook secret is at most 256 characters and tokens are
/// around 46.
const MAX_SECRET_BYTES: usize = 256;

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Zeroizing<String>);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }

        impl $name {
            /// Wraps a secret read from the configuration; see [`Self::problem`] for the rules.
            pub fn new(secret: impl Into<String>) -> Self {
                Self(Zeroizing::new(secret.into()))
            }

            /// The secret itself, to put on the wire. Never log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret!(
    /// The bot's token from BotFather, `<bot id>:<secret part>`.
    BotToken
);
secret!(
    /// The webhook's shared secret: 1 to 256 characters of `A-Z a-z 0-9 _ -` (Telegram's rule
    /// for `secret_token`, which also makes it safe as a URL path segment).
    WebhookSecret
);

impl BotToken {
    /// What is wrong with this token, if anything (said without quoting it).
    pub fn problem(&self) -> Option<String> {
        let token = self.expose();
        let Some((id, rest)) = token.split_once(':') else {
            return Some("is not a bot token: expected <bot id>:<secret> as BotFather prints it".to_owned());
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Some("is not a bot token: the part before ':' must be the bot's numeric id".to_owned());
        }
        if rest.is_empty()
            || token.len() > MAX_SECRET_BYTES
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Some(
                "is not a bot token: the part after ':' must be BotFather's letters, digits, '_' and '-'"
                    .to_owned(),
            );
        }
        None
    }

    /// The bot's numeric id: the public half of the token, fine to log.
    pub fn bot_id(&self) -> Option<u64> {
        self.expose().split_once(':').and_then(|(id, _)| id.parse().ok())
    }
}

impl WebhookSecret {
    /// What is wrong with this secret, if anything (said without quoting it).
    pub fn problem(&self) -> Option<String> {
        let secret = self.expose();
        let charset_ok = secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if secret.len() < 16 || secret.len() > MAX_SECRET_BYTES || !charset_ok {
            return Some(
                "must be 16 to 256 characters of A-Z, a-z, 0-9, '_' and '-' (e.g. 32 random bytes, hex-encoded)"
                    .to_owned(),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn secrets_never_print() {
        let token = BotToken::new("123:secret-part");
        let secret = WebhookSecret::new("0123456789abcdef0123");
        let shown = format!("{token:?} {token} {secret:?} {secret}");
        assert!(!shown.contains("secret-part") && !shown.contains("0123456789"), "{shown}");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"123:secret-part\"");
    }

    #[test]
    fn token_and_secret_rules() {
        assert_eq!(BotToken::new("123456:AAE_x-y").problem(), None);
        assert_eq!(BotToken::new("123456:AAE_x-y").bot_id(), Some(123_456));
        for bad in ["", "nocolon", ":abc", "12a:abc", "123:", "123:a b", "123:a/b"] {
            assert!(BotToken::new(bad).problem().is_some(), "{bad}");
        }
        assert_eq!(WebhookSecret::new("a".repeat(16)).problem(), None);
        assert!(WebhookSecret::new("short").problem().is_some());
        assert!(WebhookSecret::new("a".repeat(257)).problem().is_some());
        assert!(WebhookSecret::new(format!("{}/", "a".repeat(20))).problem().is_some());
    }
}
