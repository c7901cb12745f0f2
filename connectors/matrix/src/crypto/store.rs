//! Where ghost devices' Olm accounts live: a trait the service implements over its database.
//!
//! The connector holds no database (as with [`crate::GhostDirectory`]). The service keeps
//! each account sealed under its master key, one row per ghost, and answers for two things
//! the connector cannot see:
//! - **one owner at a time**: [`OlmStore::hold`] takes a lease on the ghost's account among the
//!   node processes sharing the database, so two replicas do not both make keys for it;
//! - **no fork, even so**: [`OlmStore::save_account`] writes only over the version the caller
//!   read. A lease can run out under a slow holder; the version cannot. A save that finds
//!   another version answers [`Saved::Conflict`], and the caller sends nothing made from what
//!   it read (the account's keys reach the homeserver only after the save that holds them).

use dm3_bridge_connector::BoxFuture;
use ruma::{OwnedDeviceId, UserId};

use super::pickle::SecretPickle;

/// An account as stored.
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The device the account answers to.
    pub device: OwnedDeviceId,
    pub pickle: SecretPickle,
    /// Bumped by every save; what the next save must name.
    pub version: u64,
    /// Whether the homeserver has the device keys (the device exists with its keys).
    pub device_published: bool,
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Written; the row's version is now this.
    Written(u64),
    /// The row was not at the version named (another process wrote it, or created it first);
    /// nothing was written.
    Conflict,
}

/// The store could not answer (database down); the work is tried again later.
#[derive(Debug, thiserror::Error)]
#[error("the Olm account store failed: {0}")]
pub struct OlmStoreError(pub String);

/// A save: the account, what it answers to, and the version it was read at.
#[derive(Debug, Clone)]
pub struct AccountWrite<'a> {
    pub ghost: &'a UserId,
    pub device: &'a OwnedDeviceId,
    pub pickle: &'a SecretPickle,
    pub device_published: bool,
    /// The version read; `None` to create the row (a conflict if it exists).
    pub expected: Option<u64>,
}

/// A room key as stored.
#[derive(Debug, Clone)]
pub struct StoredRoomKey {
    /// The Curve25519 key of the device that sent it.
    pub sender_key: String,
    /// The Ed25519 key that device claimed.
    pub signing_key: String,
    /// The user whose Olm message brought it; empty if it was kept before that was recorded
    /// (then it opens nothing until received again).
    pub sender_user: String,
    pub pickle: SecretPickle,
}

/// An Olm session to write.
#[derive(Debug, Clone)]
pub struct SessionWrite {
    pub sender_key: String,
    pub session_id: String,
    pub pickle: SecretPickle,
}

/// A room key to keep (the first kept for a session id stays).
#[derive(Debug, Clone)]
pub struct RoomKeyWrite {
    pub room_id: String,
    pub session_id: String,
    pub sender_key: String,
    pub signing_key: String,
    /// The user whose Olm message brought it (the to-device event's `sender`, which the Olm
    /// payload was checked to name).
    pub sender_user: String,
    pub pickle: SecretPickle,
}

/// One message index of a room key, and the event decrypted there.
#[derive(Debug, Clone, Copy)]
pub struct IndexClaim<'a> {
    pub ghost: &'a UserId,
    pub room_id: &'a str,
    pub session_id: &'a str,
    pub message_index: u32,
    pub event_id: &'a str,
}

/// What opening one to-device message changed, written in one transaction. The account is
/// always written (over the version read, even unchanged), so that the steps of one ghost
/// are serialized among processes: a step that lost the race writes nothing.
#[derive(Debug, Clone)]
pub struct OlmStepWrite<'a> {
    pub account: AccountWrite<'a>,
    pub session: SessionWrite,
    pub room_key: Option<RoomKeyWrite>,
    /// The kept to-device message this step opened ([`super::inbox_store`]): marked opened in
    /// the same transaction, which writes nothing if it was opened already.
    pub inbox_seq: Option<u64>,
}

/// Ghost devices' Olm accounts and sessions: implemented by the service over its database.
pub trait OlmStore: Send + Sync + 'static {
    /// Takes or renews this process's lease on `ghost`'s account: `true` if it holds it now.
    fn hold<'a>(&'a self, ghost: &'a UserId) -> BoxFuture<'a, Result<bool, OlmStoreError>>;

    /// `ghost`'s account, if it has one.
    fn load_account<'a>(
        &'a self,
        ghost: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<StoredAccount>, OlmStoreError>>;

    /// Writes the account if the row is at `write.expected`, durably before answering.
    fn save_account<'a>(&'a self, write: AccountWrite<'a>) -> BoxFuture<'a, Result<Saved, OlmStoreError>>;

    /// `ghost`'s Olm sessions with the device whose Curve25519 key is `sender_key`.
    fn olm_sessions<'a>(
        &'a self,
        ghost: &'a UserId,
        sender_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SecretPickle>, OlmStoreError>>;

    /// The room key `session_id` of `room_id` that `ghost`'s device received.
    fn room_key<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRoomKey>, OlmStoreError>>;

    /// Keeps `claim.event_id` as the event at its room key's message index unless another was
    /// kept there first: whether the index is that event's (`false`: a replay).
    fn claim_index<'a>(&'a self, claim: IndexClaim<'a>) -> BoxFuture<'a, Result<bool, OlmStoreError>>;

    /// Writes `step` in one transaction if the account is at the version it names.
    fn save_olm_step<'a>(&'a self, step: OlmStepWrite<'a>) -> BoxFuture<'a, Result<Saved, OlmStoreError>>;
}
