//! Where Matrix users' master keys are pinned: the part of the store that `sender_trust =
//! "cross-signed"` needs ([`super::sender_trust`]), implemented by the service over its
//! database.
//!
//! A device is believed when the sender's self-signing key signed it and their master key
//! signed that; but the homeserver relays all three keys, so a homeserver (or whoever holds its
//! database) could publish a new master key of its own and vouch for any device with it. The
//! pin closes that: the first master key seen for a user is kept durably, and a later one is
//! refused until an admin drops the pin (the user reset their identity, for real). It is a
//! row, so it survives restarts and every replica on one PostgreSQL sees it.

use dm3_bridge_connector::BoxFuture;
use ruma::UserId;

use super::store::OlmStoreError;

/// Why an encrypted event's sender's device was not believed under `cross-signed`, as the
/// service counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRefusal {
    /// The device is listed but the sender's self-signing key did not sign it.
    NotCrossSigned,
    /// The sender has published no usable cross-signing identity.
    NoIdentity,
    /// The sender's master key is not the pinned one.
    IdentityChanged,
}

impl TrustRefusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustRefusal::NotCrossSigned => "not_cross_signed",
            TrustRefusal::NoIdentity => "no_identity",
            TrustRefusal::IdentityChanged => "identity_changed",
        }
    }
}

/// Pinned master keys: implemented by the service over its database.
pub trait IdentityPins: Send + Sync + 'static {
    /// Pins `master` (unpadded base64) as `user`'s master key unless one is pinned already, in
    /// one statement: the key pinned now, which is `master` the first time.
    fn pin<'a>(&'a self, user: &'a UserId, master: &'a str) -> BoxFuture<'a, Result<String, OlmStoreError>>;

    /// Told of each refusal so that the service can count it (the connector keeps no metrics).
    fn refused(&self, reason: TrustRefusal);
}
