//! Name resolution: what the node needs to know about ENS names.
//!
//! Everything in DM3 hangs off names (docs/protocol.md P15): a receiver's account is
//! found through `addr(name)`, a sender's keys through its `network.dm3.profile`
//! text record, and a delivery service's keys and URL through its
//! `network.dm3.deliveryService` record. The node reads all three through one
//! small trait, [`NameResolver`], so the source can be swapped without touching
//! the protocol code:
//! - [`static_resolver`]: names and records from config, for tests and
//!   air-gapped deployments;
//! - [`ens_client`]: ENS over JSON-RPC with ENSIP-10 wildcards and EIP-3668
//!   CCIP-read ([`ccip_read`], [`json_rpc`]);
//! - the names the node serves itself (its virtual identities).
//!
//! [`cache`] keeps answers (and, briefly, failures) for a TTL, [`budget`] bounds each
//! whole lookup and how many run at once, [`chain`] puts the sources in order from
//! `[names]` and builds the node's [`directory::Directory`], and [`http_fetch`]
//! (with [`address_guard`]) bounds every request a name can make the node send.
//!
//! [`directory::Directory`] sits on top: it turns raw records into *verified*
//! profiles (a user profile must be signed by the address its name resolves
//! to, §4.2), so no caller handles an unverified profile by accident.

pub mod address_guard;
pub mod budget;
pub mod cache;
pub mod ccip_read;
pub mod chain;
pub mod directory;
pub mod ens_client;
pub mod http_fetch;
pub mod json_rpc;
pub mod static_resolver;

use std::sync::Arc;

use alloy_primitives::Address;
use dm3::ens::EnsName;
use dm3_bridge_connector::BoxFuture;

/// Why a name could not be resolved. "The name has no such record" is not an
/// error: resolvers answer `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The source (chain RPC, gateway, profile host) did not answer in time or
    /// answered garbage; retrying later may help.
    #[error("name source unavailable: {0}")]
    Unavailable(String),
    /// The source answered, but the answer is invalid (bad CCIP signature,
    /// malformed record, oversized body); retrying will not help.
    #[error("invalid answer for {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// The raw ENS lookups the node needs.
pub trait NameResolver: Send + Sync + 'static {
    /// `addr(name)`: the Ethereum address the name resolves to.
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>>;

    /// `text(name, key)`: a text record.
    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>>;
}

/// A shared resolver is a resolver, so wrappers such as the cache can hold an `Arc`.
impl<T: NameResolver + ?Sized> NameResolver for Arc<T> {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        (**self).address(name)
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        (**self).text(name, key)
    }
}
