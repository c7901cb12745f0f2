//! The connector's configuration: the `[telegram]` section of the service's file.
//!
//! Shaped like the service's own config (`src/config.rs`): every field has a default except
//! the token, loading fails only on syntax and types, and [`TelegramConfig::problems`] lists
//! every semantic problem at once, each tied to its key, so `dm3-bridge check` can show them
//! all. Units are in the key names.
//!
//! ```toml
//! [telegram]
//! token = "123456:AAE…"                 # from BotFather; or DM3_BRIDGE_TELEGRAM__TOKEN
//! mode = "polling"                      # or "webhook"
//! sender_format = "{sender}: {body}"    # how a relayed message names its DM3 sender
//! link_policy = { allow = "everyone" }  # or { allow = "users", users = [12345, 67890] }
//!
//! [telegram.webhook]                    # only for mode = "webhook"
//! public_base_url = "https://bridge.example.org"
//! secret = "…32 random bytes, hex…"
//! ```

use std::time::Duration;

pub use dm3_bridge_connector::ConfigProblem;
use dm3_bridge_connector::NetworkId;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::format::SenderFormat;
use crate::rate_limit::RateLimits;
use crate::secret::{BotToken, WebhookSecret};

/// The public Bot API.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// The path under which the webhook route is mounted; the secret follows as the last segment.
pub const WEBHOOK_PATH_PREFIX: &str = "/telegram/webhook";

/// `[telegram]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from BotFather.
    pub token: BotToken,
    /// The connector's name in the bridge's tables (`telegram` unless several bots run).
    #[serde(default = "default_network")]
    pub network: NetworkId,
    /// How updates arrive.
    #[serde(default)]
    pub mode: ReceiveMode,
    /// Long polling: how long one `getUpdates` call waits for an update.
    #[serde(default = "default_poll_timeout_secs")]
    pub poll_timeout_secs: u32,
    /// Webhook mode: where Telegram calls and with which secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// How a relayed message names its DM3 sender.
    #[serde(default)]
    pub sender_format: SenderFormat,
    /// Who may link their Telegram account to a DM3 identity.
    #[serde(default)]
    pub link_policy: LinkPolicy,
    /// Another Bot API server: a self-hosted `telegram-bot-api`, or a fake in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Url>,
    /// Timeout of one Bot API request other than a long poll (uploads of up to 50 MB included).
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u32,
    /// Pacing of sends, below Telegram's limits.
    #[serde(default)]
    pub rate_limits: RateLimits,
}

/// How updates arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiveMode {
    /// `getUpdates` in a loop: works behind NAT, no public URL needed.
    #[default]
    Polling,
    /// Telegram POSTs each update to the bridge's public URL.
    Webhook,
}

/// `[telegram.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The bridge's public HTTPS base URL; Telegram calls
    /// `<public_base_url>/telegram/webhook/<secret>`.
    pub public_base_url: Url,
    /// Sent back by Telegram in `X-Telegram-Bot-Api-Secret-Token` and in the path.
    pub secret: WebhookSecret,
    /// Largest update body accepted.
    #[serde(default = "default_max_update_bytes")]
    pub max_update_bytes: usize,
}

impl WebhookConfig {
    /// The URL given to `setWebhook`.
    pub fn url(&self) -> Result<Url, url::ParseError> {
        let base = self.public_base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{WEBHOOK_PATH_PREFIX}/{}", self.secret.expose()))
    }
}

/// Who may link a Telegram account (and so use the bridge at all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "allow", rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkPolicy {
    /// Anyone who starts the bot.
    #[default]
    Everyone,
    /// Only these Telegram user ids.
    Users { users: Vec<u64> },
}

impl LinkPolicy {
    /// Whether the Telegram user `user_id` may use the bridge.
    pub fn allows(&self, user_id: u64) -> bool {
        match self {
            LinkPolicy::Everyone => true,
            LinkPolicy::Users { users } => users.contains(&user_id),
        }
    }
}

/// Longest long poll Telegram honours is 50 s; we stay well under proxies' idle timeouts.
const MAX_POLL_TIMEOUT_SECS: u32 = 50;
const MAX_REQUEST_TIMEOUT_SECS: u32 = 600;
const MAX_UPDATE_BYTES: usize = 16 * 1024 * 1024;

impl TelegramConfig {
    /// A polling configuration with every default, for `token`.
    pub fn new(token: BotToken) -> Self {
        Self {
            token,
            network: default_network(),
            mode: ReceiveMode::Polling,
            poll_timeout_secs: default_poll_timeout_secs(),
            webhook: None,
            sender_format: SenderFormat::default(),
            link_policy: LinkPolicy::default(),
            api_url: None,
            request_timeout_secs: default_request_timeout_secs(),
            rate_limits: RateLimits::default(),
        }
    }

    /// Every semantic problem, each with its key.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem =
            |key: &str, message: String| out.push(ConfigProblem { key: key.to_owned(), message });
        if let Some(message) = self.token.problem() {
            problem("token", message);
        }
        if self.poll_timeout_secs > MAX_POLL_TIMEOUT_SECS {
            problem(
                "poll_timeout_secs",
                format!("must be at most {MAX_POLL_TIMEOUT_SECS} (Telegram's limit)"),
            );
        }
        if self.request_timeout_secs == 0 || self.request_timeout_secs > MAX_REQUEST_TIMEOUT_SECS {
            problem("request_timeout_secs", format!("must be 1 to {MAX_REQUEST_TIMEOUT_SECS}"));
        }
        if let Some(message) = self.sender_format.problem() {
            problem("sender_format", message);
        }
        if let Some(url) = &self.api_url
            && !matches!(url.scheme(), "http" | "https")
        {
            problem("api_url", format!("must be an http(s) URL, e.g. {TELEGRAM_API_URL}"));
        }
        if let LinkPolicy::Users { users } = &self.link_policy
            && users.is_empty()
        {
            problem("link_policy.users", "lists nobody, so nobody could use the bridge".to_owned());
        }
        if let Some(message) = self.rate_limits.problem() {
            problem("rate_limits", message);
        }
        match (&self.mode, &self.webhook) {
            (ReceiveMode::Webhook, None) => problem(
                "webhook",
                "mode = \"webhook\" needs [telegram.webhook] public_base_url and secret".to_owned(),
            ),
            (_, Some(webhook)) => {
                if let Some(message) = webhook.secret.problem() {
                    problem("webhook.secret", message);
                }
                if webhook.public_base_url.scheme() != "https" && self.mode == ReceiveMode::Webhook {
                    problem(
                        "webhook.public_base_url",
                        "must be https: Telegram calls webhooks only over HTTPS".to_owned(),
                    );
                }
                if webhook.max_update_bytes < 1024 || webhook.max_update_bytes > MAX_UPDATE_BYTES {
                    problem("webhook.max_update_bytes", format!("must be 1024 to {MAX_UPDATE_BYTES}"));
                }
            }
            (ReceiveMode::Polling, None) => {}
        }
        out
    }

    /// The Bot API base URL in use.
    pub fn api_url(&self) -> Url {
        match &self.api_url {
            Some(url) => url.clone(),
            None => Url::parse(TELEGRAM_API_URL)
                .unwrap_or_else(|e| unreachable!("the constant {TELEGRAM_API_URL} parses: {e}")),
        }
    }

    /// How long one long poll may wait.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.poll_timeout_secs.min(MAX_POLL_TIMEOUT_SECS)))
    }

    /// The timeout of a request other than a long poll.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.request_timeout_secs.max(1)))
    }
}

fn default_network() -> NetworkId {
    NetworkId::new("telegram").unwrap_or_else(|e| unreachable!("`telegram` is a valid network id: {e}"))
}

fn default_poll_timeout_secs() -> u32 {
    25
}

fn default_request_timeout_secs() -> u32 {
    120
}

fn default_max_update_bytes() -> usize {
    1024 * 1024
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn minimal_file_is_polling_with_defaults() {
        let config: TelegramConfig = serde_json::from_value(serde_json::json!({"token": "1:abc"})).unwrap();
        assert_eq!(config.mode, ReceiveMode::Polling);
        assert_eq!(config.network.as_str(), "telegram");
        assert_eq!(config.link_policy, LinkPolicy::Everyone);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert!(!format!("{config:?}").contains("1:abc"));
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let config: TelegramConfig = serde_json::from_value(serde_json::json!({
            "token": "nope",
            "mode": "webhook",
            "poll_timeout_secs": 99,
            "link_policy": {"allow": "users", "users": []},
            "sender_format": "no body",
            "api_url": "ftp://x",
        }))
        .unwrap();
        let keys: Vec<String> = config.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["token", "poll_timeout_secs", "sender_format", "api_url", "link_policy.users", "webhook"]
        );
    }

    #[test]
    fn webhook_url_and_policy() {
        let webhook = WebhookConfig {
            public_base_url: Url::parse("https://bridge.example.org/").unwrap(),
            secret: WebhookSecret::new("s".repeat(20)),
            max_update_bytes: 4096,
        };
        assert_eq!(
            webhook.url().unwrap().as_str(),
            format!("https://bridge.example.org/telegram/webhook/{}", "s".repeat(20))
        );
        let policy: LinkPolicy = serde_json::from_str(r#"{"allow":"users","users":[7]}"#).unwrap();
        assert!(policy.allows(7) && !policy.allows(8));
        assert!(LinkPolicy::Everyone.allows(8));
    }
}
