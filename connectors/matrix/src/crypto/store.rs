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

/// Ghost devices' Olm accounts: implemented by the service over its database.
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
}
