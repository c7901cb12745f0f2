//! Verified profiles on top of raw name records.
//!
//! A user profile is trusted only when it is signed by the wallet behind the
//! address its name resolves to (docs/protocol.md §4.2, `checkUserProfile`).
//! Delivery-service profiles are not signed; trust comes from ENS ownership
//! (§4.4). Profile links (`https://…?dm3Hash=…`) are fetched through a
//! [`LinkFetcher`] and must hash to the value in the link (§4.3).

use std::sync::Arc;

use alloy_primitives::Address;
use dm3::crypto::signing::VerifyKey;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::profile::{ProfileError, SignedUserProfile};
use dm3::text_record::{DELIVERY_SERVICE_KEY, ProfileRecord, USER_PROFILE_KEY};
use dm3_bridge_connector::BoxFuture;
use serde_json::Value;

use super::{NameResolver, ResolveError};

/// Why a name's profile is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{name} has a DM3 profile record but no address to check it against")]
    NoAddress { name: String },
    #[error("the DM3 profile of {name} is invalid: {reason}")]
    InvalidProfile { name: String, reason: String },
    #[error("the DM3 profile of {name} is not signed by {address}, the address the name resolves to")]
    NotSignedByAddress { name: String, address: Address },
}

/// Fetches a profile document that a text record links to. Implementations
/// must bound the request in time and size and refuse internal addresses
/// unless configured otherwise: the URL comes from whoever owns the name.
pub trait LinkFetcher: Send + Sync + 'static {
    fn fetch_json<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Value, ResolveError>>;
}

/// A fetcher for deployments that do not follow profile links.
pub struct NoLinks;

impl LinkFetcher for NoLinks {
    fn fetch_json<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Value, ResolveError>> {
        let reason = format!("following profile links is disabled ({url})");
        Box::pin(async move { Err(ResolveError::Unavailable(reason)) })
    }
}

/// A user's profile, verified against the address its name resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProfile {
    pub name: EnsName,
    pub address: Address,
    pub profile: SignedUserProfile,
    /// The profile's signing key, parsed when the profile was first verified: parsing
    /// decompresses an Ed25519 point (a square root), and every message of a sender needs it.
    signing_key: Option<VerifyKey>,
}

impl VerifiedProfile {
    /// The Ed25519 key the user's messages are checked with ([`UserProfile::verify_key`]).
    ///
    /// [`UserProfile::verify_key`]: dm3::profile::UserProfile::verify_key
    pub fn verify_key(&self) -> Result<VerifyKey, ProfileError> {
        match self.signing_key {
            Some(key) => Ok(key),
            None => self.profile.profile().verify_key(),
        }
    }
}

/// Verified lookups of user and delivery-service profiles.
#[derive(Clone)]
pub struct Directory {
    resolver: Arc<dyn NameResolver>,
    links: Arc<dyn LinkFetcher>,
    verified: Arc<VerifiedSignatures>,
}

/// Profiles already checked against an address, with their parsed signing keys. The check
/// is an ECDSA recovery, the most expensive step of a submit after the key exchanges, and a
/// node sees the same few senders over and over; the answer depends only on (address, signed
/// profile), so it never goes stale. Bounded: when full it starts over, which only costs
/// re-verification.
#[derive(Default)]
struct VerifiedSignatures {
    pairs: std::sync::Mutex<std::collections::HashMap<(Address, String), Option<VerifyKey>>>,
}

impl VerifiedSignatures {
    const MAX_ENTRIES: usize = 10_000;

    /// `None` if `profile` is not signed by `address`; otherwise its parsed signing key, if
    /// it has a usable one.
    fn check(&self, profile: &SignedUserProfile, address: &Address) -> Option<Option<VerifyKey>> {
        let key = (*address, profile.canonical());
        if let Some(signing_key) = self.pairs.lock().ok().and_then(|pairs| pairs.get(&key).copied()) {
            return Some(signing_key);
        }
        profile.verify_against_address(address).ok()?;
        let signing_key = profile.profile().verify_key().ok();
        if let Ok(mut pairs) = self.pairs.lock() {
            if pairs.len() >= Self::MAX_ENTRIES {
                pairs.clear();
            }
            pairs.insert(key, signing_key);
        }
        Some(signing_key)
    }
}

impl Directory {
    pub fn new(resolver: Arc<dyn NameResolver>, links: Arc<dyn LinkFetcher>) -> Self {
        Self { resolver, links, verified: Arc::default() }
    }

    pub fn resolver(&self) -> &Arc<dyn NameResolver> {
        &self.resolver
    }

    /// The same directory over another resolver (e.g. one that puts the node's own names in
    /// front of this one's), following links the same way.
    pub fn with_resolver(&self, resolver: Arc<dyn NameResolver>) -> Self {
        Self { resolver, links: self.links.clone(), verified: self.verified.clone() }
    }

    /// `addr(name)`.
    pub async fn address(&self, name: &EnsName) -> Result<Option<Address>, DirectoryError> {
        Ok(self.resolver.address(name).await?)
    }

    /// The user's verified profile; `None` when the name has no profile record
    /// (it is not a DM3 user).
    pub async fn user_profile(&self, name: &EnsName) -> Result<Option<VerifiedProfile>, DirectoryError> {
        let Some(record) = self.resolver.text(name, USER_PROFILE_KEY).await? else {
            return Ok(None);
        };
        let document = self.document(name, &record).await?;
        let profile = SignedUserProfile::from_value(document).map_err(|e| invalid(name, e))?;
        let address = self
            .resolver
            .address(name)
            .await?
            .ok_or_else(|| DirectoryError::NoAddress { name: name.to_string() })?;
        let Some(signing_key) = self.verified.check(&profile, &address) else {
            return Err(DirectoryError::NotSignedByAddress { name: name.to_string(), address });
        };
        Ok(Some(VerifiedProfile { name: name.clone(), address, profile, signing_key }))
    }

    /// The delivery service's profile; `None` when the name has no such record.
    pub async fn delivery_service(
        &self,
        name: &EnsName,
    ) -> Result<Option<DeliveryServiceProfile>, DirectoryError> {
        let Some(record) = self.resolver.text(name, DELIVERY_SERVICE_KEY).await? else {
            return Ok(None);
        };
        let document = self.document(name, &record).await?;
        DeliveryServiceProfile::from_value(document).map(Some).map_err(|e| invalid(name, e))
    }

    async fn document(&self, name: &EnsName, record: &str) -> Result<Value, DirectoryError> {
        let record = ProfileRecord::parse(record).map_err(|e| invalid(name, e))?;
        let url = match &record {
            ProfileRecord::Inline(document) => return Ok(document.clone()),
            ProfileRecord::Link { url, .. } => url.clone(),
            ProfileRecord::Ipfs { cid } => ProfileRecord::ipfs_gateway_url(cid),
        };
        let document = self.links.fetch_json(&url).await?;
        record.check_fetched(&document).map_err(|e| invalid(name, e))?;
        Ok(document)
    }
}

fn invalid(name: &EnsName, reason: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::InvalidProfile { name: name.to_string(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::names::static_resolver::StaticResolver;
    use dm3::crypto::eth::Wallet;
    use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
    use dm3::profile::UserProfile;

    fn user(wallet: &Wallet) -> SignedUserProfile {
        let keys = ProfileKeys::from_wallet(wallet, DEFAULT_NONCE);
        UserProfile::from_keys(&keys, ["ds.example.eth"]).sign(wallet)
    }

    #[tokio::test]
    async fn profiles_are_verified_against_the_resolved_address() {
        let alice: EnsName = "alice.eth".parse().unwrap();
        let mallory: EnsName = "mallory.eth".parse().unwrap();
        let nobody: EnsName = "nobody.eth".parse().unwrap();
        let wallet = Wallet::generate();
        let other = Wallet::generate();
        let resolver = StaticResolver::new()
            .with_user(alice.clone(), wallet.address(), &user(&wallet))
            // Mallory publishes Alice's profile under an address Alice's wallet does not own.
            .with_user(mallory.clone(), other.address(), &user(&wallet));
        let directory = Directory::new(Arc::new(resolver), Arc::new(NoLinks));
        let found = directory.user_profile(&alice).await.unwrap().unwrap();
        assert_eq!(found.address, wallet.address());
        assert!(matches!(
            directory.user_profile(&mallory).await,
            Err(DirectoryError::NotSignedByAddress { .. })
        ));
        assert_eq!(directory.user_profile(&nobody).await, Ok(None));
    }
}
