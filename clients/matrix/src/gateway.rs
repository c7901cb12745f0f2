//! The gateway user's side of docs/gateway.md: a Matrix user who holds their own DM3 keys.
//!
//! The node carries DM3 envelopes for them sealed, as `network.dm3.envelope` messages (section
//! 1.2), and never holds their keys; so everything that needs a key happens here, on the
//! user's machine: the profile their wallet signs, the claim of their name (section 3), the
//! envelopes they seal to their contacts and open from them.
//!
//! - [`keys`]: the wallet and the DM3 keys derived from it, and the key file;
//! - [`claim`]: the exchange with the bridge's bot that makes the name theirs;
//! - [`envelopes`]: sealing and sending, reading and opening;
//! - [`node`]: what the bridge's node tells anyone (`GET /names/lookup`, its CCIP-read gateway),
//!   to find a recipient's profile and delivery service;
//! - [`error`]: the gateway side's errors.

pub mod claim;
pub mod envelopes;
pub mod error;
pub mod keys;
pub mod node;

use dm3::ens::EnsName;
use dm3::profile::{SignedUserProfile, UserProfile};

pub use error::GatewayClientError;
pub use keys::Dm3Keys;

use crate::user::MatrixUser;

/// A Matrix user with their own DM3 keys: the Matrix side of a self-custody identity.
#[derive(Debug)]
pub struct GatewayUser {
    matrix: MatrixUser,
    keys: Dm3Keys,
}

impl GatewayUser {
    pub fn new(matrix: MatrixUser, keys: Dm3Keys) -> Self {
        Self { matrix, keys }
    }

    /// The Matrix device this user speaks through.
    pub fn matrix(&self) -> &MatrixUser {
        &self.matrix
    }

    pub fn keys(&self) -> &Dm3Keys {
        &self.keys
    }

    /// The DM3 profile of these keys listing `delivery_services` (the node's name among them,
    /// for the claim: docs/gateway.md section 2), signed by the wallet (docs/protocol.md §4.2).
    pub fn signed_profile(&self, delivery_services: &[&EnsName]) -> SignedUserProfile {
        let names = delivery_services.iter().map(|name| name.as_str().to_owned());
        UserProfile::from_keys(self.keys.profile_keys(), names).sign(self.keys.wallet())
    }
}
