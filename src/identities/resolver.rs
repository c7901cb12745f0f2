//! The names this node answers for itself, read straight from its own tables.
//!
//! Two consumers, one source of truth:
//! - the CCIP-read gateway ([`crate::gateway`]) signs what [`LocalNames::answer`] says;
//! - the node's own [`Directory`](crate::names::directory::Directory) resolves its virtual
//!   identities through the [`NameResolver`] implementation, so it can verify their profiles
//!   without a chain (a node whose identities only resolve through its own gateway would
//!   otherwise ask the chain to ask itself). Names that are not the node's go to the fallback
//!   resolver, if one is set (the ENS client).
//!
//! The records, and nothing else:
//! - an enabled identity: `addr` (and ENSIP-9 `addr(node, 60)`) → its wallet address,
//!   `text("network.dm3.profile")` → the `data:` URI of its signed profile (P16);
//! - a Telegram username's alias, on a node that runs Telegram: the same records of its derived
//!   identity, bound or not (docs/names.md section 8; [`super::vault`]'s `alias`);
//! - the node's own name: `text("network.dm3.deliveryService")` → its delivery-service
//!   profile (`data:` URI, §4.4);
//! - anything else (other keys, disabled or unknown identities, the parent and sub-parents):
//!   not found. A name under a network sub-parent whose label the scheme cannot produce is an
//!   error, so the gateway can answer it with a clear 400.

use std::sync::Arc;

use alloy_primitives::{Address, U256};
use dm3::ccip::{Answer, Query};
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::network::Network;
use dm3::text_record::{DELIVERY_SERVICE_KEY, USER_PROFILE_KEY};
use dm3_bridge_connector::BoxFuture;

use super::error::IdentityError;
use super::label::LabelError;
use super::scheme::{NameScheme, ParsedName};
use super::vault::IdentityVault;
use crate::names::{NameResolver, ResolveError};
use dm3::profile::SignedUserProfile;

/// ENSIP-9 / SLIP-44 coin type of Ethereum: `addr(node, 60)` is `addr(node)`.
const ETH_COIN_TYPE: u64 = 60;

/// Why a local lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{name} is not a valid identity name: {source}")]
    InvalidName { name: String, source: LabelError },
    #[error(transparent)]
    Store(#[from] IdentityError),
}

/// The node's own names as records.
#[derive(Clone)]
pub struct LocalNames {
    /// Identities are read through the vault, which keeps what it read in the last second.
    vault: IdentityVault,
    scheme: Option<NameScheme>,
    node_name: EnsName,
    ds_record: String,
    fallback: Option<Arc<dyn NameResolver>>,
}

impl LocalNames {
    /// The names of `vault`'s scheme, and its delivery service (the node's own name), which
    /// publishes `ds_profile` as `network.dm3.deliveryService`.
    pub fn new(vault: IdentityVault, ds_profile: &DeliveryServiceProfile) -> Self {
        let scheme = vault.scheme().cloned();
        let node_name = vault.delivery_service().clone();
        Self { vault, scheme, node_name, ds_record: ds_profile.to_text_record(), fallback: None }
    }

    /// Sends lookups of names that are not the node's to `fallback`.
    pub fn with_fallback(mut self, fallback: Arc<dyn NameResolver>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    pub fn node_name(&self) -> &EnsName {
        &self.node_name
    }

    /// Whether the node has virtual identities (`[identities] parent` is set).
    pub fn bridges(&self) -> bool {
        self.scheme.is_some()
    }

    /// Whether `name` is a name under the parent, so possibly one of the node's virtual identities.
    pub fn is_virtual_identity_name(&self, name: &EnsName) -> bool {
        *name != self.node_name && self.scheme.as_ref().is_some_and(|s| name.is_within(s.parent()))
    }

    /// Whether `name` is one of the node's enabled virtual identities, as the gateway would
    /// publish it, without building its records and reading them back (the relay asks this
    /// of every envelope's receiver).
    pub async fn is_enabled_identity(&self, name: &EnsName) -> Result<bool, ResolveError> {
        self.enabled_identity(name).await.map(|found| found.is_some())
    }

    /// The enabled virtual identity called `name`, as the gateway would publish it.
    pub async fn enabled_identity(&self, name: &EnsName) -> Result<Option<Published>, ResolveError> {
        resolved(self.identity(name).await)
    }

    /// The network whose user `name` stands for, if it is a virtual identity's name.
    pub fn network_of(&self, name: &EnsName) -> Option<Network> {
        match self.scheme.as_ref()?.parse(name) {
            Ok(ParsedName::Identity { network, .. }) => Some(network),
            Ok(ParsedName::TelegramAlias { .. }) => Some(Network::Telegram),
            _ => None,
        }
    }

    /// Whether the node answers for `name`: its own name or anything under the parent.
    pub fn serves(&self, name: &EnsName) -> bool {
        *name == self.node_name || self.scheme.as_ref().is_some_and(|s| name.is_within(s.parent()))
    }

    /// The answer to one record query, as the gateway signs it.
    pub async fn answer(&self, name: &EnsName, query: &Query) -> Result<Answer, LookupError> {
        let wants_address = match query {
            Query::Addr { .. } => true,
            Query::AddrCoin { coin_type, .. } => *coin_type == U256::from(ETH_COIN_TYPE),
            Query::Text { .. } => false,
        };
        if let Query::Text { key, .. } = query {
            return Ok(self.text_record(name, key).await?.map_or(Answer::NotFound, Answer::Text));
        }
        if !wants_address {
            return Ok(Answer::NotFound);
        }
        Ok(self.identity(name).await?.map_or(Answer::NotFound, |identity| Answer::Addr(identity.address)))
    }

    async fn text_record(&self, name: &EnsName, key: &str) -> Result<Option<String>, LookupError> {
        if *name == self.node_name {
            return Ok((key == DELIVERY_SERVICE_KEY).then(|| self.ds_record.clone()));
        }
        if key != USER_PROFILE_KEY {
            // Still validate the name, so a malformed one is reported whatever the key.
            self.identity(name).await?;
            return Ok(None);
        }
        Ok(self.identity(name).await?.map(|identity| identity.profile.to_text_record()))
    }

    /// What is published for the enabled identity called `name`, if any.
    async fn identity(&self, name: &EnsName) -> Result<Option<Published>, LookupError> {
        let Some(scheme) = &self.scheme else { return Ok(None) };
        if *name == self.node_name {
            // The node's name is never an identity, wherever the operator put it.
            return Ok(None);
        }
        match scheme.parse(name) {
            Err(source) => Err(LookupError::InvalidName { name: name.to_string(), source }),
            Ok(ParsedName::Foreign | ParsedName::Structural) => Ok(None),
            // Derived, bound or not, and only on a node that runs Telegram (docs/names.md,
            // "Telegram username aliases").
            Ok(ParsedName::TelegramAlias { .. }) => Ok(self
                .vault
                .alias_published(name)?
                .map(|(address, profile)| Published { address, profile, self_custody: false })),
            Ok(ParsedName::Identity { .. }) => Ok(self
                .vault
                .recent_identity(name)
                .await?
                .filter(|identity| identity.disabled_at_ms.is_none())
                .map(|identity| Published {
                    address: identity.address,
                    self_custody: identity.custody.is_self_custody(),
                    profile: identity.profile,
                })),
        }
    }
}

/// What the gateway publishes for an identity (an alias has no row, only these), and whether
/// its keys are the user's own.
pub struct Published {
    pub address: Address,
    pub profile: SignedUserProfile,
    pub self_custody: bool,
}

/// Invalid names are "no record" to a resolver's caller; a database failure may pass.
fn resolved<T>(result: Result<Option<T>, LookupError>) -> Result<Option<T>, ResolveError> {
    match result {
        Ok(found) => Ok(found),
        Err(LookupError::InvalidName { .. }) => Ok(None),
        Err(LookupError::Store(e)) => Err(ResolveError::Unavailable(e.to_string())),
    }
}

impl NameResolver for LocalNames {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(async move {
            if !self.serves(name) {
                return match &self.fallback {
                    Some(fallback) => fallback.address(name).await,
                    None => Ok(None),
                };
            }
            resolved(self.identity(name).await.map(|found| found.map(|identity| identity.address)))
        })
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(async move {
            if !self.serves(name) {
                return match &self.fallback {
                    Some(fallback) => fallback.text(name, key).await,
                    None => Ok(None),
                };
            }
            resolved(self.text_record(name, key).await)
        })
    }
}
