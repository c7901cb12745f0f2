//! The Telegram connector as the engine sees it: the neutral [`Connector`] over the Bot API.
//!
//! [`TelegramConnector::new`] takes the configuration and the service's side of the contract:
//! the engine's [`InboundSink`] (where received updates go), [`ChatState`] and
//! [`TelegramAccounts`]. [`Connector::start`] checks the token with `getMe` (and warns if privacy
//! mode hides group messages), then either starts the long-polling task or registers the
//! webhook, whose route the service mounts from [`TelegramConnector::webhook_router`].
//!
//! Sending is in `outbound` and `media`. Every send waits for its chat's turn in the
//! `send_queue`, which shares Telegram's budget among chats; Telegram's 429 becomes
//! [`ConnectorError::RetryAfter`] for the engine's outbox. In polling mode the loop runs under
//! the `supervisor`, which restarts it if it ends and reports that through
//! [`Connector::health`].

use std::sync::{Arc, Mutex};

use axum::Router;
use dm3_bridge_connector::{
    BoxFuture, Capabilities, Connector, ConnectorError, ConversationId, DeleteHandling, EditHandling, Health,
    InboundSink, MediaHandling, MediaLimits, Message, NativeHandling, NetworkId, NetworkMessageId, Outbound,
    PortalHandling, ReactionHandling,
};
use teloxide_core::Bot;
use teloxide_core::payloads::{DeleteWebhookSetters as _, SetWebhookSetters as _};
use teloxide_core::prelude::Requester as _;
use teloxide_core::requests::Request as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::answers::Answers;
use crate::config::{ConfigProblem, ReceiveMode, TelegramConfig, WebhookConfig};
use crate::content::MAX_UPLOAD_BYTES;
use crate::errors::classify;
use crate::format::SenderFormat;
use crate::handler::UpdateHandler;
use crate::health::HealthCell;
use crate::ids;
use crate::poller;
use crate::send_queue::SendQueue;
use crate::sent_cache::SentCache;
use crate::state::{ChatState, TelegramAccounts};
use crate::supervisor;
use crate::turn::PollingTurn;
use crate::webhook;

/// Extra time a long poll's HTTP request gets over the poll timeout itself.
const POLL_REQUEST_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// The configuration has problems (all listed).
    #[error("the [telegram] configuration has problems: {}", .0.iter().map(|p| format!("telegram.{}: {}", p.key, p.message)).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigProblem>),
    /// The HTTP client could not be built.
    #[error("the HTTP client for the Bot API could not be built: {0}")]
    Http(String),
}

/// The Telegram connector.
pub struct TelegramConnector {
    pub(crate) network: NetworkId,
    pub(crate) mode: ReceiveMode,
    pub(crate) webhook: Option<WebhookConfig>,
    pub(crate) poll_timeout: std::time::Duration,
    pub(crate) sender_format: SenderFormat,
    /// Sends and every short call.
    pub(crate) bot: Bot,
    /// Long polls, whose client waits longer.
    pub(crate) poll_bot: Bot,
    pub(crate) handler: Arc<UpdateHandler>,
    /// Every send waits for its chat's turn here.
    pub(crate) sends: Arc<SendQueue>,
    /// The bot's own messages, sent in their chat's turn.
    pub(crate) answers: Arc<Answers>,
    pub(crate) state: Arc<dyn ChatState>,
    pub(crate) sent: SentCache,
    poller: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    health: Arc<HealthCell>,
    /// Who grants this process its turns at polling, where several share the bot.
    turns: Option<Arc<dyn PollingTurn>>,
}

impl TelegramConnector {
    /// A connector for `config`, handing what it receives to `sink` and keeping per-chat state
    /// in `state`. Nothing is sent to Telegram before [`Connector::start`].
    pub fn new(
        config: TelegramConfig,
        sink: Arc<dyn InboundSink>,
        state: Arc<dyn ChatState>,
        accounts: Arc<dyn TelegramAccounts>,
    ) -> Result<Self, TelegramError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(TelegramError::Config(problems));
        }
        let client = |timeout| {
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(timeout)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| TelegramError::Http(e.to_string()))
        };
        let api_url = config.api_url();
        let bot = Bot::with_client(config.token.expose(), client(config.request_timeout())?)
            .set_api_url(api_url.clone());
        let poll_bot =
            Bot::with_client(config.token.expose(), client(config.poll_timeout() + POLL_REQUEST_MARGIN)?)
                .set_api_url(api_url);
        let sends = SendQueue::new(&config.rate_limits);
        let answers = Arc::new(Answers::new(bot.clone(), sends.clone()));
        let handler = Arc::new(UpdateHandler::new(
            config.network.clone(),
            answers.clone(),
            config.link_policy.clone(),
            sink,
            state.clone(),
            accounts,
        ));
        Ok(Self {
            network: config.network.clone(),
            mode: config.mode,
            webhook: config.webhook.clone(),
            poll_timeout: config.poll_timeout(),
            sender_format: config.sender_format.clone(),
            bot,
            poll_bot,
            handler,
            sends,
            answers,
            state,
            sent: SentCache::default(),
            poller: Mutex::new(None),
            health: Arc::default(),
            turns: None,
        })
    }

    /// Polls only in the turns `turns` grants: for several processes sharing the bot and one
    /// database (docs/scaling.md). Without it this process always polls.
    pub fn with_polling_turns(mut self, turns: Arc<dyn PollingTurn>) -> Self {
        self.turns = Some(turns);
        self
    }

    /// The webhook route (`POST /telegram/webhook/<secret>`) to mount at the root of the
    /// service's listener, in webhook mode; `None` in polling mode.
    pub fn webhook_router(&self) -> Option<Router> {
        let webhook = self.webhook.as_ref().filter(|_| self.mode == ReceiveMode::Webhook)?;
        Some(webhook::router(self.handler.clone(), &webhook.secret, webhook.max_update_bytes))
    }

    /// The bot's `@username` (without `@`), once [`Connector::start`] asked Telegram.
    pub fn bot_username(&self) -> Option<&str> {
        self.handler.bot_username.get().map(String::as_str)
    }

    /// What every bot chat carries: no read receipts (bots see none), files up to 50 MB.
    pub fn chat_capabilities() -> Capabilities {
        Capabilities {
            read_receipts: false,
            media: Some(MediaLimits { max_bytes: MAX_UPLOAD_BYTES }),
            ..Capabilities::full(MAX_UPLOAD_BYTES)
        }
    }

    async fn start_receiving(&self) -> Result<(), ConnectorError> {
        match self.mode {
            ReceiveMode::Polling => {
                let info = self.bot.get_webhook_info().send().await.map_err(classify)?;
                if info.url.is_some() {
                    tracing::warn!(
                        "a webhook is set for this bot; removing it to poll (pending updates are kept)"
                    );
                    self.bot.delete_webhook().drop_pending_updates(false).send().await.map_err(classify)?;
                }
                let mut poller = self.poller.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if poller.is_none() {
                    let cancel = CancellationToken::new();
                    let task = tokio::spawn(supervisor::run(
                        self.handler.clone(),
                        self.poll_bot.clone(),
                        self.poll_timeout,
                        cancel.clone(),
                        self.health.clone(),
                        self.turns.clone(),
                    ));
                    *poller = Some((cancel, task));
                }
                Ok(())
            }
            ReceiveMode::Webhook => {
                let webhook = self.webhook.as_ref().ok_or_else(|| {
                    ConnectorError::Permanent("webhook mode without [telegram.webhook]".to_owned())
                })?;
                let url =
                    webhook.url().map_err(|e| ConnectorError::Permanent(format!("bad webhook URL: {e}")))?;
                self.bot
                    .set_webhook(url)
                    .secret_token(webhook.secret.expose())
                    .allowed_updates(poller::allowed_updates())
                    .max_connections(1)
                    .send()
                    .await
                    .map_err(classify)?;
                tracing::info!(base = %webhook.public_base_url, "Telegram webhook registered");
                Ok(())
            }
        }
    }
}

impl Connector for TelegramConnector {
    fn network(&self) -> &NetworkId {
        &self.network
    }

    /// `https://t.me/<bot>?start=H<token>`, once `getMe` told the bot's username.
    fn start_link(&self, token: &str) -> Option<String> {
        let payload = crate::deep_link::held(token).ok()?;
        Some(format!("https://t.me/{}?start={payload}", self.bot_username()?))
    }

    fn start(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            let me = self.bot.get_me().send().await.map_err(|e| match classify(e) {
                ConnectorError::Permanent(reason) => ConnectorError::Permanent(format!(
                    "Telegram refused getMe; check [telegram] token: {reason}"
                )),
                other => other,
            })?;
            let username = me.user.username.clone().unwrap_or_default();
            tracing::info!(bot = %username, id = me.user.id.0, "connected to Telegram");
            if !me.can_read_all_group_messages {
                tracing::warn!(
                    bot = %username,
                    "privacy mode is on: Telegram hides group messages that are not commands or replies to the bot \
                     (BotFather /setprivacy); private chats, which the bridge uses, are not affected"
                );
            }
            let _ = self.handler.bot_username.set(username);
            self.start_receiving().await
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            let poller = self.poller.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let stopped = match poller {
                Some((cancel, task)) => {
                    cancel.cancel();
                    task.await.map_err(|e| ConnectorError::Transient(format!("the polling task failed: {e}")))
                }
                None => Ok(()),
            };
            // Stopped on purpose: nothing is expected to run.
            self.health.healthy();
            self.answers.drain().await;
            stopped
        })
    }

    fn health(&self) -> Health {
        match self.mode {
            ReceiveMode::Polling => self.health.get(),
            // Telegram calls the route; nothing of the connector's own runs to fail.
            ReceiveMode::Webhook => Health::Healthy,
        }
    }

    fn capabilities<'a>(
        &'a self,
        conversation: &'a ConversationId,
    ) -> BoxFuture<'a, Result<Capabilities, ConnectorError>> {
        Box::pin(async move {
            ids::parse_conversation(conversation).map_err(|e| ConnectorError::Permanent(e.to_string()))?;
            Ok(Self::chat_capabilities())
        })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a Outbound<Message>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(self.send_new(message))
    }

    fn edits(&self) -> Option<&dyn EditHandling> {
        Some(self)
    }

    fn reactions(&self) -> Option<&dyn ReactionHandling> {
        Some(self)
    }

    fn deletes(&self) -> Option<&dyn DeleteHandling> {
        Some(self)
    }

    fn media(&self) -> Option<&dyn MediaHandling> {
        Some(self)
    }

    fn portals(&self) -> Option<&dyn PortalHandling> {
        Some(self)
    }

    fn native(&self) -> Option<&dyn NativeHandling> {
        Some(self)
    }
}
