//! What the connector needs from the service: identities, DM3 names, and per-chat state.
//!
//! The bot chat multiplexes DM3 contacts, so the connector has to remember things between
//! updates: whom each Telegram user is writing to, whom they wrote to lately, which
//! conversation every relayed message belongs to (so a Telegram reply goes back to the right
//! DM3 user), and which event stands for each reaction a user has on a message (so taking it
//! back takes back the right DM3 REACTION). A connector knows nothing of the database (docs/contributing.md), so that state lives behind
//! [`ChatState`], and the engine-side operations (virtual identities, DM3 name lookups) behind
//! [`TelegramAccounts`]. The service implements both durably; the test suite has in-memory ones.
//!
//! Every method may be called again for the same input after a crash (Telegram re-serves an
//! update until the connector confirmed it), so implementations must be idempotent: setting the
//! same contact or recording the same route twice is not an error.

use std::time::Duration;

use dm3_bridge_connector::{BoxFuture, ConversationId, NetworkMessageId, RemoteIdentity};

/// A failure of the service behind the traits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The service could not answer now (database down, name lookup timed out). The update is
    /// not confirmed to Telegram and is handled again later.
    #[error("the bridge could not answer now: {0}")]
    Unavailable(String),
    /// The service refuses, for a reason the Telegram user should read (e.g. the operator turned
    /// off new identities). The update is confirmed and the user is told.
    #[error("{0}")]
    Refused(String),
}

/// The Telegram user who sent an update, as much as the bridge needs of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramUser {
    /// The Telegram user id (also the id of their private chat with the bot).
    pub id: u64,
    /// `@username`, without the `@`, if they have one.
    pub username: Option<String>,
    /// First and last name as Telegram shows them.
    pub display_name: String,
}

/// Virtual identities and DM3 names: the engine's side of linking.
pub trait TelegramAccounts: Send + Sync {
    /// Gets, or creates, the DM3 identity of `user` (`tg-<id>.<parent>`) and answers its DM3 name.
    /// Called for `/start` and whenever the user picks a contact; must be idempotent.
    fn link<'a>(&'a self, user: &'a TelegramUser) -> BoxFuture<'a, Result<RemoteIdentity, StateError>>;

    /// Normalizes what the user typed as a DM3 name and checks that it exists (resolves to a
    /// DM3 profile); answers the normalized name, or `None` if there is no such DM3 user.
    /// `Unavailable` is tried again a few times, then answered to the user ("try again"): unlike
    /// the other methods, it does not leave the update unconfirmed, because one name whose
    /// source stays down must not hold up every later update.
    /// `user` sent `/start`, with the token of a held-message link if they came by one
    /// (docs/telegram.md "Username aliases"): binds their username's alias to them, and answers
    /// the DM3 sender whose held messages the link releases, to make them the current contact.
    /// A link made for another username, or none the bridge made, is `Refused`.
    fn started<'a>(
        &'a self,
        user: &'a TelegramUser,
        held_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<RemoteIdentity>, StateError>> {
        let _ = (user, held_token);
        Box::pin(async { Ok(None) })
    }

    fn find_dm3_name<'a>(
        &'a self,
        input: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteIdentity>, StateError>>;

    /// Blocks (`blocked`) or unblocks the DM3 user `sender` for `user`'s DM3 identity: while
    /// blocked, the bridge refuses the sender's messages to them (`/block`, docs/telegram.md).
    /// `sender` is what the user named, not yet normalized; a name that is none is `Refused`.
    /// Idempotent: blocking twice or unblocking a sender not blocked is no error.
    fn set_blocked<'a>(
        &'a self,
        user: &'a TelegramUser,
        sender: &'a RemoteIdentity,
        blocked: bool,
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// `/claim` (gateway mode, docs/gateway.md section 3) from `user`, the account Telegram
    /// authenticated: without `claim`, a challenge for their name; with the signed claim's JSON,
    /// the claim. A refusal is an answer too ([`ClaimReply`]); `Unavailable` only when the
    /// service cannot look now. A service without gateway mode refuses.
    fn claim<'a>(
        &'a self,
        user: &'a TelegramUser,
        claim: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ClaimReply, StateError>> {
        let _ = (user, claim);
        Box::pin(async { Err(StateError::Refused("This bridge takes no claims.".to_owned())) })
    }
}

/// The bot's answer to `/claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimReply {
    /// What happened, in plain text.
    pub text: String,
    /// The challenge to sign, shown apart so that it is copied byte for byte.
    pub challenge: Option<String>,
}

/// The newest update of a chat whose state changes were made, and when: what tells an update
/// served again after a later one, even after a restart ([`ChatState::applied_update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedUpdate {
    pub update_id: u32,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl AppliedUpdate {
    /// `update_id`, applied now.
    pub fn now(update_id: u32) -> Self {
        Self { update_id, at_ms: wall_clock_ms() }
    }

    /// Whether it was applied within `age` of now.
    pub fn within(&self, age: Duration) -> bool {
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        self.at_ms >= wall_clock_ms().saturating_sub(age_ms)
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Per-chat state: current contact, recent contacts, the conversation of each relayed message,
/// and the newest update whose state changes were made.
pub trait ChatState: Send + Sync {
    /// Whom `chat` is writing to now.
    fn current_contact(&self, chat: i64) -> BoxFuture<'_, Result<Option<RemoteIdentity>, StateError>>;

    /// Makes `contact` the current contact of `chat`, and the most recent of its contacts.
    fn set_current_contact<'a>(
        &'a self,
        chat: i64,
        contact: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The contacts of `chat`, most recent first, at most `limit`.
    fn recent_contacts(
        &self,
        chat: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RemoteIdentity>, StateError>>;

    /// Remembers that `message` (relayed in either direction) belongs to `conversation`.
    fn record_route<'a>(
        &'a self,
        message: &'a NetworkMessageId,
        conversation: &'a ConversationId,
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The conversation `message` belongs to, if it was relayed.
    fn route_of<'a>(
        &'a self,
        message: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<ConversationId>, StateError>>;

    /// Remembers that the reaction event `reaction` stands for `slot` now (one Telegram user's
    /// emoji on one message, [`crate::ids::reaction_slot`]), replacing an earlier one: the
    /// same reaction added again after being taken back is a new event.
    fn record_reaction<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
        reaction: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<(), StateError>>;

    /// The reaction event last recorded for `slot`, if any.
    fn reaction_in<'a>(
        &'a self,
        slot: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<NetworkMessageId>, StateError>>;

    /// What [`record_applied`](Self::record_applied) last recorded for `chat`, if anything.
    /// Must survive a restart: it is what keeps an old update served again (a webhook retried,
    /// a server that re-serves what was confirmed) from undoing a later update's state change
    /// after the connector's memory is gone. May be forgotten after a day.
    fn applied_update(&self, chat: i64) -> BoxFuture<'_, Result<Option<AppliedUpdate>, StateError>>;

    /// Remembers that the state changes of `update` in `chat` were made, replacing what was
    /// recorded before (the connector records only the chat's newest update, or one after the
    /// record went stale).
    fn record_applied(&self, chat: i64, update: AppliedUpdate) -> BoxFuture<'_, Result<(), StateError>>;
}
