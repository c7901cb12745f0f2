//! Where outbound Megolm sessions live: the part of the store the sending side needs, beside
//! [`OlmStore`](super::OlmStore), implemented by the service over its database.
//!
//! One rule makes a `kill -9` harmless: what an encryption changed (the group session's ratchet,
//! the Olm sessions that carried its key, the devices it was shared with, the room keys still to
//! send) is written in one transaction **before** anything made from it leaves the process, and
//! under the ghost's account version ([`AccountWrite::expected`]), so that every step of one
//! ghost, inbound or outbound, is serialized among node processes: a step that lost the race
//! writes nothing and sends nothing.

use dm3_bridge_connector::BoxFuture;
use ruma::UserId;

use super::pickle::SecretPickle;
use super::store::{AccountWrite, OlmStoreError, Saved, SessionWrite};

/// A device a room key was shared with, by the Curve25519 key it had then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedWith {
    pub user: String,
    pub device: String,
    pub curve_key: String,
}

/// Room keys saved, not yet acknowledged by the homeserver: a `/sendToDevice` to send again
/// with the same transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingToDevice {
    pub txn_id: String,
    /// The request's `messages` (`{user: {device: content}}`), Olm ciphertext only.
    pub body: String,
}

/// A room's outbound session as stored.
#[derive(Debug, Clone)]
pub struct StoredOutbound {
    pub session_id: String,
    pub pickle: SecretPickle,
    pub created_ms: u64,
    /// Events encrypted with it.
    pub messages: u64,
    pub shared: Vec<SharedWith>,
}

/// The session to write: it replaces the room's row (and, under a new id, forgets the old
/// session's shares).
#[derive(Debug, Clone)]
pub struct OutboundWrite {
    pub session_id: String,
    pub pickle: SecretPickle,
    pub created_ms: u64,
    pub messages: u64,
}

/// What one encrypted send changed, written in one transaction over the account's version.
#[derive(Debug, Clone)]
pub struct OutboundStep<'a> {
    /// The ghost's account, unchanged, written over the version read.
    pub account: AccountWrite<'a>,
    pub room_id: &'a str,
    /// Whether the session is made by this step (a new one, or a rotation).
    pub new_session: bool,
    pub session: OutboundWrite,
    /// Olm sessions made or advanced to carry the room key.
    pub olm_sessions: Vec<SessionWrite>,
    /// Devices the room key is now shared with (on top of those already stored).
    pub shared: Vec<SharedWith>,
    pub pending: Option<PendingToDevice>,
}

/// Outbound Megolm sessions: implemented by the service over its database.
pub trait OutboundStore: Send + Sync + 'static {
    /// `ghost`'s outbound session in `room_id`, with the devices it was shared with.
    fn outbound<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredOutbound>, OlmStoreError>>;

    /// Room keys of `ghost` in `room_id` saved and not yet sent, oldest first.
    fn pending<'a>(
        &'a self,
        ghost: &'a UserId,
        room_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PendingToDevice>, OlmStoreError>>;

    /// Writes `step` in one transaction if the account is at the version it names.
    fn save_outbound_step<'a>(
        &'a self,
        step: OutboundStep<'a>,
    ) -> BoxFuture<'a, Result<Saved, OlmStoreError>>;

    /// Forgets a pending send the homeserver acknowledged.
    fn to_device_sent<'a>(
        &'a self,
        ghost: &'a UserId,
        txn_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OlmStoreError>>;
}
