//! Names and records fixed in advance: for tests and for air-gapped deployments
//! where the operator lists the peers the node may talk to.

use std::collections::HashMap;

use alloy_primitives::Address;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use dm3::text_record::{DELIVERY_SERVICE_KEY, USER_PROFILE_KEY};
use dm3_bridge_connector::BoxFuture;

use super::{NameResolver, ResolveError};

/// One name's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticRecords {
    pub address: Option<Address>,
    pub text: HashMap<String, String>,
}

/// A resolver over a fixed table of names.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: HashMap<EnsName, StaticRecords>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists `name`, with no records yet: a listed name is answered from this table alone.
    pub fn with_name(mut self, name: EnsName) -> Self {
        self.names.entry(name).or_default();
        self
    }

    /// Whether `name` is listed (with or without records).
    pub fn contains(&self, name: &EnsName) -> bool {
        self.names.contains_key(name)
    }

    /// Sets `addr(name)`.
    pub fn with_address(mut self, name: EnsName, address: Address) -> Self {
        self.names.entry(name).or_default().address = Some(address);
        self
    }

    /// Sets a text record.
    pub fn with_text(mut self, name: EnsName, key: &str, value: String) -> Self {
        self.names.entry(name).or_default().text.insert(key.to_owned(), value);
        self
    }

    /// A DM3 user: its address and its profile record, published as the
    /// reference resolver does (`data:application/json,` + canonical JSON).
    pub fn with_user(self, name: EnsName, address: Address, profile: &SignedUserProfile) -> Self {
        self.with_address(name.clone(), address).with_text(name, USER_PROFILE_KEY, profile.to_text_record())
    }

    /// A delivery service: its `network.dm3.deliveryService` record.
    pub fn with_delivery_service(self, name: EnsName, profile: &DeliveryServiceProfile) -> Self {
        self.with_text(name, DELIVERY_SERVICE_KEY, profile.to_text_record())
    }
}

impl NameResolver for StaticResolver {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        let address = self.names.get(name).and_then(|records| records.address);
        Box::pin(async move { Ok(address) })
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        let text = self.names.get(name).and_then(|records| records.text.get(key).cloned());
        Box::pin(async move { Ok(text) })
    }
}
