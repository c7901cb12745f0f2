//! The Telegram network in the node: the connector's chat state, its accounts, and its assembly.
//!
//! The connector (`connectors/telegram`, docs/telegram.md) asks the service two things through
//! traits of its crate:
//! - [`ChatState`]: whom each chat writes to, whom it wrote to lately, and the conversation of
//!   each relayed message. [`StoreChatState`] keeps them in the store
//!   ([`crate::store::telegram`]), so they survive restarts and are shared by replicas.
//! - [`TelegramAccounts`]: the Telegram user's virtual identity, and whether a name someone
//!   typed is a DM3 user. [`VaultAccounts`] gets or creates the identity in the
//!   [`IdentityVault`] and checks names through the [`Directory`], which accepts a name only
//!   with a profile signed by the address it resolves to.
//!
//! Errors follow the traits' split: trouble that may pass (the database, a name source not
//! answering, a concurrent create) is [`StateError::Unavailable`], so the connector leaves the
//! update unconfirmed and handles it again later; anything retrying cannot fix is
//! [`StateError::Refused`] with a sentence for the Telegram user, and the details go to the
//! log for the operator. A Telegram user never sees a database error.
//!
//! Of several node processes on one database, one polls at a time: the connector polls in the
//! turns [`PollingLease`] grants, which are the lease [`lease::TELEGRAM_POLLING`].

mod aliases;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use dm3::ens::EnsName;
use dm3_bridge_connector::{
    BoxFuture, Connector, ConversationId, InboundSink, NetworkId, NetworkMessageId, RemoteIdentity,
};
use dm3_bridge_telegram::{
    AppliedUpdate, ChatState, ClaimReply, PollingTurn, StateError, TelegramAccounts, TelegramConfig,
    TelegramConnector, TelegramError, TelegramUser, Turn,
};
use tokio_util::sync::CancellationToken;

use super::{Bridge, BridgeError, NetworkModule, NodeServices};
use crate::clock::now_ms;
use crate::config::Config;
use crate::engine::blocks::{self, BlockChange};
use crate::engine::claims;
use crate::identities::network::Network;
use crate::identities::{
    IdentityError, IdentityRecord, IdentityRef, IdentityVault, NetworkUserId, TelegramUserId,
};
use crate::lease::{self, Held, Leases};
use crate::names::ResolveError;
use crate::names::directory::{Directory, DirectoryError};
use crate::store::{MAX_BLOCKS_PER_IDENTITY, Store, StoreError};

/// `[telegram]` in the node's [`registry`](super::registry).
pub struct TelegramModule;

impl NetworkModule for TelegramModule {
    fn section(&self) -> &'static str {
        "telegram"
    }

    fn configured(&self, config: &Config) -> bool {
        config.telegram.is_some()
    }

    fn build(self: Box<Self>, node: &NodeServices<'_>) -> Result<Box<dyn Bridge>, BridgeError> {
        let section = node.config.telegram.as_ref().ok_or(BridgeError::NoIdentities("telegram"))?;
        let connector = build_telegram(
            section,
            node.sink.clone(),
            node.store.clone(),
            node.vault.clone(),
            node.directory.clone(),
        )
        .map_err(|e| BridgeError::connector("telegram", e))?;
        Ok(Box::new(TelegramNetwork { connector }))
    }
}

/// The Telegram network as the node runs it: the bot, and its webhook route in webhook mode.
pub struct TelegramNetwork {
    connector: Arc<TelegramConnector>,
}

impl TelegramNetwork {
    pub fn connector(&self) -> &Arc<TelegramConnector> {
        &self.connector
    }
}

impl Bridge for TelegramNetwork {
    fn network(&self) -> Network {
        Network::Telegram
    }

    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    fn routes(&self) -> Option<Router> {
        self.connector.webhook_router()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Builds the Telegram connector of `config` over the node's store, vault and directory.
/// `directory` should resolve the node's own virtual identities too (the node's directory puts
/// [`crate::identities::LocalNames`] in front of ENS), so that Telegram users can write to one
/// another. The connector is not started; the node starts it with the others.
pub fn build_telegram(
    config: &TelegramConfig,
    sink: Arc<dyn InboundSink>,
    store: Store,
    vault: IdentityVault,
    directory: Directory,
) -> Result<Arc<TelegramConnector>, TelegramError> {
    let turns = Arc::new(PollingLease(Leases::new(store.clone())));
    let state = Arc::new(StoreChatState::new(store, config.network.clone()));
    let accounts = Arc::new(VaultAccounts::new(vault, directory, config.network.clone()));
    TelegramConnector::new(config.clone(), sink, state, accounts)
        .map(|connector| Arc::new(connector.with_polling_turns(turns)))
}

/// The turns at polling the bot, among the node processes sharing the database: whoever holds
/// the lease [`lease::TELEGRAM_POLLING`] polls (docs/scaling.md). Webhook mode needs none: every
/// replica serves the route, and Telegram sends one update at a time.
struct PollingLease(Leases);

impl PollingTurn for PollingLease {
    fn wait_for_turn<'a>(&'a self, stop: &'a CancellationToken) -> BoxFuture<'a, Option<Box<dyn Turn>>> {
        Box::pin(async move {
            let held = self.0.wait_for(lease::TELEGRAM_POLLING, stop).await?;
            Some(Box::new(PollingTurnHeld(held)) as Box<dyn Turn>)
        })
    }
}

/// This process's turn at polling: the lease, renewed until it ends.
struct PollingTurnHeld(Held);

impl Turn for PollingTurnHeld {
    fn ended(&self) -> CancellationToken {
        self.0.ended()
    }

    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(self.0.release())
    }
}

/// [`ChatState`] in the store, under the connector's network id.
#[derive(Clone)]
pub struct StoreChatState {
    store: Store,
    network: NetworkId,
}

impl StoreChatState {
    pub fn new(store: Store, network: NetworkId) -> Self {
        Self { store, network }
    }
}

impl ChatState for StoreChatState {
    fn current_contact(&self, chat: i64) -> BoxFuture<'_, Result<Option<RemoteIdentity>, StateError>> {
        Box::pin(async move {
            self.store.telegram_current_contact(&self.network, chat).await.map_err(store_error)
        })
    }

    fn set_current_contact<'a>(
        &'a self,
        chat: i64,
        contact: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.store.set_telegram_contact(&self.network, chat, contact, now_ms()).await.map_err(store_error)
        })
    }

    fn recent_contacts(
        &self,
        chat: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RemoteIdentity>, StateError>> {
        // The store caps the limit again; a usize beyond u32 asks for "all" anyway.
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Box::pin(async move {
            self.store.telegram_recent_contacts(&self.network, chat, limit).await.map_err(store_error)
        })
    }

    fn record_route<'a>(
        &'a self,
        message: &'a NetworkMessageId,
        conversation: &'a ConversationId,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.store
                .record_telegram_route(&self.network, message, conversation, now_ms())
                .await
                .map(|_| ())
                .map_err(store_error)
        })
    }

    fn route_of<'a>(
        &'a self,
        message: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<ConversationId>, StateError>> {
        Box::pin(async move { self.store.telegram_route(&self.network, message).await.map_err(store_error) })
    }

    fn record_reaction<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
        reaction: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.store
                .record_telegram_reaction(&self.network, slot, reaction, now_ms())
                .await
                .map_err(store_error)
        })
    }

    fn reaction_in<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<NetworkMessageId>, StateError>> {
        Box::pin(async move { self.store.telegram_reaction(&self.network, slot).await.map_err(store_error) })
    }

    fn applied_update(&self, chat: i64) -> BoxFuture<'_, Result<Option<AppliedUpdate>, StateError>> {
        Box::pin(async move {
            let applied =
                self.store.telegram_applied_update(&self.network, chat).await.map_err(store_error)?;
            Ok(applied.map(|(update_id, at)| AppliedUpdate { update_id, at_ms: at.max(0).unsigned_abs() }))
        })
    }

    fn record_applied(&self, chat: i64, update: AppliedUpdate) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            let at = i64::try_from(update.at_ms).unwrap_or(i64::MAX);
            self.store
                .record_telegram_applied_update(&self.network, chat, update.update_id, at)
                .await
                .map_err(store_error)
        })
    }
}

/// [`TelegramAccounts`] over the identity vault and the node's directory.
#[derive(Clone)]
pub struct VaultAccounts {
    vault: IdentityVault,
    directory: Directory,
    /// The connector's network id, which scopes the portals of aliases it opens.
    network: NetworkId,
}

impl VaultAccounts {
    pub fn new(vault: IdentityVault, directory: Directory, network: NetworkId) -> Self {
        Self { vault, directory, network }
    }

    /// The identity of `user`, created if it has none. Two creates of one user can race (two
    /// updates, two replicas): the loser finds the winner's identity.
    async fn identity_of(&self, user: NetworkUserId) -> Result<IdentityRecord, IdentityError> {
        let reference = IdentityRef::User(user.clone());
        match self.vault.get(&reference).await {
            Err(IdentityError::NotFound(_)) => {}
            found => return found,
        }
        match self.vault.create(user, now_ms()).await {
            Err(IdentityError::Exists { .. }) => self.vault.get(&reference).await,
            created => created,
        }
    }
}

impl TelegramAccounts for VaultAccounts {
    fn link<'a>(&'a self, user: &'a TelegramUser) -> BoxFuture<'a, Result<RemoteIdentity, StateError>> {
        Box::pin(async move {
            let id = TelegramUserId::new(user.id)
                .map_err(|_| StateError::Refused("Telegram sent no valid user id for you.".to_owned()))?;
            let identity = self.identity_of(NetworkUserId::Telegram(id)).await.map_err(identity_error)?;
            if identity.disabled_at_ms.is_some() {
                return Err(StateError::Refused(format!(
                    "Your DM3 identity {} is disabled on this bridge, so you cannot send or receive DM3 \
                     messages. Ask the bridge's operator.",
                    identity.name
                )));
            }
            RemoteIdentity::new(identity.name.as_str()).map_err(|e| {
                tracing::error!(name = %identity.name, error = %e, "an identity name is not a remote identity");
                StateError::Refused(BROKEN.to_owned())
            })
        })
    }

    fn started<'a>(
        &'a self,
        user: &'a TelegramUser,
        held_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<RemoteIdentity>, StateError>> {
        Box::pin(aliases::started(&self.vault, &self.network, user, held_token))
    }

    fn find_dm3_name<'a>(
        &'a self,
        input: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteIdentity>, StateError>> {
        Box::pin(async move {
            // What the user typed, in the form ENS hashes it (lowercase, NFC, ignored characters
            // dropped); text that is no ENS name is no DM3 user.
            let Some(name) = EnsName::parse(input.trim()).ok().filter(|name| !name.is_root()) else {
                return Ok(None);
            };
            match self.directory.user_profile(&name).await {
                Ok(Some(_)) => RemoteIdentity::new(name.as_str()).map(Some).map_err(|e| {
                    StateError::Refused(format!("{name} cannot be used as a contact here: {e}"))
                }),
                Ok(None) => Ok(None),
                Err(DirectoryError::Resolve(ResolveError::Unavailable(reason))) => {
                    Err(StateError::Unavailable(format!("looking up {name}: {reason}")))
                }
                // The name has a profile, but not one anybody could write to safely.
                Err(e) => {
                    tracing::debug!(name = %name, error = %e, "a DM3 name's profile is not usable");
                    Err(StateError::Refused(format!("{name} is not a usable DM3 user: {e}")))
                }
            }
        })
    }

    fn claim<'a>(
        &'a self,
        user: &'a TelegramUser,
        claim: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ClaimReply, StateError>> {
        Box::pin(async move {
            let id = TelegramUserId::new(user.id)
                .map_err(|_| StateError::Refused("Telegram sent no valid user id for you.".to_owned()))?;
            let account = NetworkUserId::Telegram(id);
            let reply = claims::answer_claim(&self.vault, &account, claim, "/claim", now_ms())
                .await
                .map_err(|e| StateError::Unavailable(e.to_string()))?;
            Ok(ClaimReply { text: reply.text, challenge: reply.challenge })
        })
    }

    fn set_blocked<'a>(
        &'a self,
        user: &'a TelegramUser,
        sender: &'a RemoteIdentity,
        blocked: bool,
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.change_block(user, sender, blocked))
    }
}

impl VaultAccounts {
    /// [`TelegramAccounts::set_blocked`]: the block of `sender` for `user`'s identity, in the
    /// store (`store::blocks`), which the relay's submit reads (docs/relay.md, "Block and rate
    /// limits").
    async fn change_block(
        &self,
        user: &TelegramUser,
        sender: &RemoteIdentity,
        blocked: bool,
    ) -> Result<(), StateError> {
        let Some(sender_name) = EnsName::parse(sender.as_str().trim()).ok().filter(|name| !name.is_root())
        else {
            return Err(StateError::Refused(format!(
                "{sender} is not a DM3 name, so there is nothing to block."
            )));
        };
        let identity = self.link(user).await?;
        let identity = EnsName::parse(identity.as_str()).map_err(|e| {
            tracing::error!(name = %identity, error = %e, "an identity name does not parse");
            StateError::Refused(BROKEN.to_owned())
        })?;
        let store = self.vault.store();
        match blocks::change(store, &identity, &sender_name, blocked, now_ms()).await.map_err(store_error)? {
            BlockChange::Full => Err(StateError::Refused(format!(
                "You have blocked {MAX_BLOCKS_PER_IDENTITY} DM3 users, the most this bridge keeps for one person, \
                 so {sender_name} is not blocked. Unblock someone first with /unblock."
            ))),
            BlockChange::Blocked
            | BlockChange::AlreadyBlocked
            | BlockChange::Unblocked
            | BlockChange::NotBlocked => Ok(()),
        }
    }
}

/// What a Telegram user reads when the bridge's own records are broken; the log says more.
const BROKEN: &str = "The bridge could not do this because of a problem on its side. Its operator can \
                      see the details in the bridge's log.";

fn store_error(error: StoreError) -> StateError {
    match error {
        StoreError::Database(_) | StoreError::ShuttingDown => StateError::Unavailable(error.to_string()),
        other => {
            tracing::error!(error = %other, "the Telegram chat state is unusable");
            StateError::Refused(BROKEN.to_owned())
        }
    }
}

fn identity_error(error: IdentityError) -> StateError {
    match error {
        IdentityError::Store(error) => store_error(error),
        // Another request changed the identity meanwhile: the next attempt sees the result.
        IdentityError::Exists { .. } | IdentityError::Conflict(_) => {
            StateError::Unavailable(error.to_string())
        }
        IdentityError::NoParent => {
            tracing::warn!("a Telegram user needs a DM3 identity, but identities.parent is not set");
            StateError::Refused(
                "This bridge is not set up to give Telegram users DM3 names yet. Ask its operator."
                    .to_owned(),
            )
        }
        other => {
            tracing::error!(error = %other, "a Telegram user's DM3 identity is unusable");
            StateError::Refused(BROKEN.to_owned())
        }
    }
}
