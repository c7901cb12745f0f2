//! On-demand identities: a network user the operator made reachable has a DM3 name that
//! resolves before they ever used the bridge (docs/names.md, "Reachable before first use").
//!
//! The identity is *derived*, not created at the lookup: its version-1 wallet comes from the
//! master key and the identity's name ([`IdentityKeys::derived`]), so every lookup of the name
//! computes the same address and profile and writes nothing, and the first message that reaches
//! the user stores exactly that wallet (sealed like any other key version) together with the
//! identity's row ([`super::vault::IdentityVault::keep`]). From then on the identity is an
//! ordinary one: rotated to a random wallet, disabled, listed, like any other. Creating at the
//! lookup instead would let anyone fill the tables with rows for names nobody uses (the gateway
//! is public); creating at the first envelope would do the same for anyone with a DM3 profile
//! and a user id that does not exist. A flood of lookups costs CPU (bounded per client by the
//! rate limits of `/ccip` and `/names/lookup`) and at most [`MAX_DERIVED`] cached entries.
//!
//! Who is reachable is the operator's decision ([`Reachable`]; Matrix: `[matrix] reachable`,
//! checked together with `[matrix] allow`), asked before anything is derived: the name of a user
//! who is not reachable and has no row resolves to nothing, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dm3::ens::EnsName;
use dm3_bridge_matrix::{MatrixConfig, PolicyError, UserPolicy};

use super::keys::{IdentityKeys, OpenKeysError};
use super::network::NetworkUserId;
use crate::store::{Custody, IdentityRecord};
use crate::vault::MasterKey;

/// Most derived identities kept in memory; when full the cache starts over (a derivation is
/// a few signatures, far cheaper than tracking recency on every lookup).
pub const MAX_DERIVED: usize = 1_024;

/// Which network users may be written to before they used the bridge.
pub trait Reachable: Send + Sync {
    fn reachable(&self, user: &NetworkUserId) -> bool;
}

/// Matrix users who are both allowed to use the bridge (`[matrix] allow`) and reachable on
/// demand (`[matrix] reachable`; by default the users of the bridge's own homeserver).
pub struct MatrixReach {
    allow: UserPolicy,
    reachable: UserPolicy,
}

impl MatrixReach {
    pub fn from_config(matrix: &MatrixConfig) -> Result<Self, PolicyError> {
        Ok(Self { allow: matrix.user_policy()?, reachable: matrix.reachable_policy()? })
    }
}

impl Reachable for MatrixReach {
    fn reachable(&self, user: &NetworkUserId) -> bool {
        match user {
            NetworkUserId::Matrix(id) => ruma::UserId::parse(id.as_str())
                .is_ok_and(|id| self.allow.allows(&id) && self.reachable.allows(&id)),
            NetworkUserId::Telegram(_) => false,
        }
    }
}

/// The derived identities of reachable users, cached.
pub struct OnDemand {
    reachable: Arc<dyn Reachable>,
    derived: Mutex<HashMap<EnsName, (IdentityRecord, IdentityKeys)>>,
}

impl OnDemand {
    pub fn new(reachable: Arc<dyn Reachable>) -> Self {
        Self { reachable, derived: Mutex::default() }
    }

    pub fn reachable(&self, user: &NetworkUserId) -> bool {
        self.reachable.reachable(user)
    }

    /// The identity `user` has under `name` until it is stored: version 1 of the derived
    /// wallet, its profile naming `delivery_service`, enabled, never written.
    pub fn identity(
        &self,
        master: &MasterKey,
        user: &NetworkUserId,
        label: &str,
        name: &EnsName,
        delivery_service: &EnsName,
    ) -> Result<(IdentityRecord, IdentityKeys), OpenKeysError> {
        if let Some(found) = self.lock().get(name) {
            return Ok(found.clone());
        }
        let keys = IdentityKeys::derived(master, name)?;
        let record = IdentityRecord {
            profile: keys.signed_profile(delivery_service),
            name: name.clone(),
            label: label.to_owned(),
            user: user.clone(),
            address: keys.address(),
            custody: Custody::Custodial { key_version: keys.version() },
            created_at_ms: 0,
            updated_at_ms: 0,
            disabled_at_ms: None,
        };
        let mut derived = self.lock();
        if derived.len() >= MAX_DERIVED {
            derived.clear();
        }
        derived.insert(name.clone(), (record.clone(), keys.clone()));
        Ok((record, keys))
    }

    /// How many derived identities are cached (for the tests of the bound).
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EnsName, (IdentityRecord, IdentityKeys)>> {
        self.derived.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reachable users of `config`'s networks (today Matrix only: a bot cannot open a Telegram
/// chat, docs/names.md), or `None` when no network has any.
pub fn from_config(config: &crate::config::Config) -> Result<Option<Arc<dyn Reachable>>, PolicyError> {
    let Some(matrix) = &config.matrix else { return Ok(None) };
    Ok(Some(Arc::new(MatrixReach::from_config(matrix)?)))
}
