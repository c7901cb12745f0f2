//! Fixtures for the tests of this module: DM3 users with SDK-generated keys, a directory that
//! knows them, and envelopes in the relay's stored form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use ::dm3::crypto::kx::KxKeyPair;
use ::dm3::ds_profile::{DeliveryServiceKeys, DeliveryServiceProfile};
use ::dm3::ens::EnsName;
use ::dm3::envelope::{DeliveryInformation, Envelope};
use ::dm3::message::{Message, MessageBuilder};
use alloy_primitives::Address;
use dm3_bridge_connector::BoxFuture;

use crate::identities::keys::IdentityKeys;
use crate::names::directory::{Directory, NoLinks};
use crate::names::static_resolver::StaticResolver;
use crate::names::{NameResolver, ResolveError};

/// A DM3 user (or virtual identity): a name and one key version.
pub struct User {
    pub name: EnsName,
    pub keys: IdentityKeys,
}

impl User {
    pub fn new(name: &str) -> Self {
        Self::with_version(name, 1)
    }

    pub fn with_version(name: &str, version: u32) -> Self {
        Self { name: name.parse().unwrap(), keys: IdentityKeys::generate(version) }
    }

    pub fn builder_to(&self, to: &User, timestamp: u64) -> MessageBuilder {
        MessageBuilder::new(to.name.as_str(), self.name.as_str(), timestamp)
    }

    pub fn sign(&self, message: Message) -> Message {
        message.sign(&self.keys.profile_keys().signing)
    }

    pub fn encryption(&self) -> &KxKeyPair {
        &self.keys.profile_keys().encryption
    }
}

/// A delivery service's keys and profile at `url`.
pub fn delivery_service(seed: u8, url: &str) -> (DeliveryServiceKeys, DeliveryServiceProfile) {
    let keys = DeliveryServiceKeys::from_seeds(&[seed; 32], &[seed.wrapping_add(1); 32]);
    let profile = keys.profile(url);
    (keys, profile)
}

/// A resolver that knows `users` (profiles naming `services`' names) and `services`.
pub fn resolver(users: &[&User], services: &[(&str, &DeliveryServiceProfile)]) -> StaticResolver {
    let names: Vec<EnsName> = services.iter().map(|(name, _)| name.parse().unwrap()).collect();
    let ds_names: Vec<&str> = names.iter().map(EnsName::as_str).collect();
    let mut resolver = StaticResolver::new();
    for user in users {
        let profile = ::dm3::profile::UserProfile::from_keys(user.keys.profile_keys(), ds_names.clone())
            .sign(user.keys.wallet());
        resolver = resolver.with_user(user.name.clone(), user.keys.address(), &profile);
    }
    for (name, profile) in names.into_iter().zip(services.iter().map(|(_, p)| *p)) {
        resolver = resolver.with_delivery_service(name, profile);
    }
    resolver
}

pub fn directory(resolver: StaticResolver) -> Directory {
    Directory::new(Arc::new(resolver), Arc::new(NoLinks))
}

/// A name source that never answers.
pub struct Unreachable;

impl NameResolver for Unreachable {
    fn address<'a>(&'a self, _: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(async { Err(ResolveError::Unavailable("test: chain down".into())) })
    }

    fn text<'a>(&'a self, _: &'a EnsName, _: &'a str) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(async { Err(ResolveError::Unavailable("test: chain down".into())) })
    }
}

/// `message` (signed by `from`) sealed to `to_key` and stored as the relay stores it: with the
/// delivery information `{to, from}` in clear and a postmark.
pub fn stored(message: &Message, from: &User, to_key: &[u8; 32], delivery: &DeliveryInformation) -> String {
    let ds = KxKeyPair::generate();
    let envelope = Envelope::seal(message, &from.keys.profile_keys().signing, to_key, ds.public()).unwrap();
    envelope.to_stored(delivery, "postmark").to_value().to_string()
}

/// The usual case: from `from` to `to`, delivery information matching the message.
pub fn stored_for(message: &Message, from: &User, to: &User) -> String {
    stored(
        message,
        from,
        to.encryption().public(),
        &DeliveryInformation::new(to.name.as_str(), from.name.as_str()),
    )
}
