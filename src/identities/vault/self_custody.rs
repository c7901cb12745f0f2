//! Self-custody identities: names whose wallet the user holds (docs/gateway.md sections 2 and 4).
//!
//! The node keeps a self-custody identity's signed profile and address, and no key. A profile is
//! accepted as the reference accepts one for a name (`checkUserProfileWithAddress`,
//! docs/protocol.md §4.2): its signature must recover to the address the name will publish.
//! It must also name this node among its delivery services, or the envelopes its contacts seal
//! would never reach the gateway that carries them.
//!
//! The switch either way is one store transaction, so the name's `addr` and profile change
//! together and a custodial key never outlives the switch; the caches of rows and opened keys
//! are dropped right after it.

use alloy_primitives::Address;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;

use super::{IdentityRef, IdentityVault};
use crate::identities::error::IdentityError;
use crate::identities::keys::IdentityKeys;
use crate::identities::network::NetworkUserId;
use crate::store::{Custody, IdentityRecord, Switched};

impl IdentityVault {
    /// Creates `user`'s identity as self-custody, with the profile their wallet at `address`
    /// signed; fails with [`IdentityError::Exists`] if they have one.
    pub async fn create_self_custody(
        &self,
        user: NetworkUserId,
        address: Address,
        profile: SignedUserProfile,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        let scheme = self.scheme.as_ref().ok_or(IdentityError::NoParent)?;
        let (label, name) = scheme.name_for(&user)?;
        self.accept_profile(&address, &profile)?;
        let record = IdentityRecord {
            name,
            label,
            user,
            address,
            custody: Custody::SelfCustody { after_version: 0 },
            profile,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            disabled_at_ms: None,
        };
        let inserted = self.store.insert_self_custody_identity(&record).await;
        self.recent.forget(&record.name);
        if inserted? {
            tracing::info!(name = %record.name, user = %record.user, address = %record.address, "self-custody identity created");
            return Ok(record);
        }
        let holder = match self.store.identity_of_user(&record.user).await? {
            Some(existing) => existing.name.to_string(),
            None => record.name.to_string(),
        };
        Err(IdentityError::Exists { user: record.user.to_string(), name: holder })
    }

    /// Hands the identity to the user: their address and profile replace the node's, and every
    /// key the node held of it is destroyed, in one transaction. On a self-custody identity it
    /// replaces address and profile (a new wallet, new keys).
    pub async fn switch_to_self_custody(
        &self,
        reference: &IdentityRef,
        address: Address,
        profile: SignedUserProfile,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        self.accept_profile(&address, &profile)?;
        let identity = self.get(reference).await?;
        let switched = self
            .store
            .switch_to_self_custody(&identity.name, identity.custody, &address, &profile, now_ms)
            .await;
        self.forget(&identity.name);
        match switched? {
            Switched::Done => {}
            Switched::Changed => return Err(IdentityError::Conflict(identity.name.to_string())),
            Switched::Pending(jobs) => {
                return Err(IdentityError::Pending { name: identity.name.to_string(), jobs });
            }
        }
        tracing::info!(name = %identity.name, %address, "identity switched to self-custody; its custodial keys are destroyed");
        self.get(&IdentityRef::Name(identity.name)).await
    }

    /// Takes a self-custody identity back into the node's custody: a new random wallet, as a
    /// rotation makes, at the version after the last one the node held.
    pub async fn switch_to_custodial(
        &self,
        reference: &IdentityRef,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        let identity = self.get(reference).await?;
        let Custody::SelfCustody { after_version } = identity.custody else {
            return Err(IdentityError::Custodial(identity.name.to_string()));
        };
        let version =
            after_version.checked_add(1).ok_or_else(|| IdentityError::Conflict(identity.name.to_string()))?;
        let keys = IdentityKeys::generate(version);
        let key = self.sealed(&identity.name, &keys, now_ms)?;
        let profile = keys.signed_profile(&self.delivery_service);
        let switched = self.store.switch_to_custodial(&identity.name, after_version, &key, &profile).await;
        self.forget(&identity.name);
        if !switched? {
            return Err(IdentityError::Conflict(identity.name.to_string()));
        }
        tracing::info!(name = %identity.name, version, address = %keys.address(), "identity back in the node's custody");
        self.get(&IdentityRef::Name(identity.name)).await
    }

    /// A profile the user's wallet at `address` signed, naming this node (module docs).
    fn accept_profile(&self, address: &Address, profile: &SignedUserProfile) -> Result<(), IdentityError> {
        profile.verify_against_address(address).map_err(|e| IdentityError::Profile(e.to_string()))?;
        let unsigned = profile.profile();
        unsigned.encryption_key().map_err(|e| IdentityError::Profile(e.to_string()))?;
        unsigned.verify_key().map_err(|e| IdentityError::Profile(e.to_string()))?;
        let names_this_node = unsigned
            .delivery_services()
            .into_iter()
            .any(|ds| EnsName::parse(ds).is_ok_and(|ds| ds == self.delivery_service));
        if !names_this_node {
            return Err(IdentityError::Profile(format!(
                "its deliveryServices do not list {}, the node that carries its messages",
                self.delivery_service
            )));
        }
        Ok(())
    }

    /// Drops what the caches hold of `name` after a change to its custody.
    fn forget(&self, name: &EnsName) {
        self.recent.forget(name);
        self.opened_keys.forget(name);
    }
}
