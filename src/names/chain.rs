//! The node's chain of resolvers (not the blockchain), built from `[names]`.
//!
//! Order and why:
//! 1. `[[names.static]]`: a name the operator listed is answered from the config alone, ENS is
//!    not asked about it, so an air-gapped node works and a pinned peer cannot be changed by
//!    whoever controls its ENS records. A listed name without some record has no such record.
//! 2. The ENS client, when `names.ens_rpc_url` is set, behind the cache. Only ENS answers are
//!    cached: static answers are a map lookup already, and keeping them out of the cache leaves
//!    its capacity to the answers that are expensive to get.
//!
//! Profile links and CCIP-read gateways are fetched by one guarded [`HttpFetcher`] (time, size
//! and address bounds from `[names]`). The JSON-RPC node gets its own fetcher with the same
//! time and size bounds but allowed to be on a private address: its URL is the operator's
//! choice, and a chain node on the same host or network is the common setup.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use dm3::crypto::eth::parse_address;
use dm3::ens::EnsName;
use dm3::text_record::{DELIVERY_SERVICE_KEY, ProfileRecord, USER_PROFILE_KEY};
use dm3_bridge_connector::BoxFuture;

use super::budget::{BudgetedResolver, LookupBudget};
use super::cache::{CacheSettings, CachingResolver};
use super::directory::Directory;
use super::ens_client::EnsClient;
use super::http_fetch::{ClientBuildError, FetchLimits, HttpFetcher};
use super::json_rpc::JsonRpc;
use super::static_resolver::StaticResolver;

use super::{NameResolver, ResolveError};
use crate::config::NamesConfig;

/// Why `[names]` cannot be turned into resolvers. `Config::problems` reports the same
/// mistakes by key; this is for callers that skipped it.
#[derive(Debug, thiserror::Error)]
pub enum NamesSetupError {
    #[error("names.ens_registry: {0:?} is not an address")]
    Registry(String),
    #[error("names.static[{index}].{field}: {reason}")]
    Static { index: usize, field: &'static str, reason: String },
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// Static names first, then (if configured) ENS. See the module documentation.
pub struct ResolverChain {
    fixed: StaticResolver,
    ens: Option<Arc<dyn NameResolver>>,
}

impl ResolverChain {
    pub fn new(fixed: StaticResolver, ens: Option<Arc<dyn NameResolver>>) -> Self {
        Self { fixed, ens }
    }
}

impl NameResolver for ResolverChain {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        match &self.ens {
            Some(ens) if !self.fixed.contains(name) => ens.address(name),
            _ => self.fixed.address(name),
        }
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        match &self.ens {
            Some(ens) if !self.fixed.contains(name) => ens.text(name, key),
            _ => self.fixed.text(name, key),
        }
    }
}

/// The node's [`Directory`]: its resolver chain and its profile-link fetcher, from `[names]`.
pub fn build_directory(config: &NamesConfig) -> Result<Directory, NamesSetupError> {
    let limits = FetchLimits {
        timeout: Duration::from_millis(config.request_timeout_ms),
        max_bytes: config.max_response_bytes,
        allow_private_addresses: config.allow_private_addresses,
    };
    let guarded = HttpFetcher::new(limits)?;
    let fixed = static_resolver(config)?;
    let ens = match &config.ens_rpc_url {
        Some(url) => {
            let registry = parse_address(&config.ens_registry)
                .map_err(|_| NamesSetupError::Registry(config.ens_registry.clone()))?;
            let rpc_http = HttpFetcher::new(FetchLimits { allow_private_addresses: true, ..limits })?;
            let client = EnsClient::new(JsonRpc::new(rpc_http, url.clone()), registry, guarded.clone());
            let budget = LookupBudget {
                deadline: Duration::from_millis(config.lookup_timeout_ms),
                max_concurrent: config.max_concurrent_lookups,
            };
            let settings = CacheSettings {
                ttl: Duration::from_secs(config.cache_ttl_secs),
                failure_ttl: Duration::from_secs(config.failure_cache_secs),
                max_entries: config.cache_max_entries,
            };
            let budgeted = BudgetedResolver::new(client, budget);
            Some(Arc::new(CachingResolver::new(budgeted, settings)) as Arc<dyn NameResolver>)
        }
        None => None,
    };
    Ok(Directory::new(Arc::new(ResolverChain::new(fixed, ens)), Arc::new(guarded)))
}

/// The `[[names.static]]` entries as a resolver.
pub fn static_resolver(config: &NamesConfig) -> Result<StaticResolver, NamesSetupError> {
    let mut resolver = StaticResolver::new();
    for (index, entry) in config.static_names.iter().enumerate() {
        let bad = |field, reason: String| NamesSetupError::Static { index, field, reason };
        let name = EnsName::parse(&entry.name).map_err(|e| bad("name", e.to_string()))?;
        resolver = resolver.with_name(name.clone());
        if let Some(address) = &entry.address {
            let address = parse_address(address).map_err(|e| bad("address", e.to_string()))?;
            resolver = resolver.with_address(name.clone(), address);
        }
        for (field, key, record) in [
            ("profile", USER_PROFILE_KEY, &entry.profile),
            ("delivery_service", DELIVERY_SERVICE_KEY, &entry.delivery_service),
        ] {
            if let Some(record) = record {
                ProfileRecord::parse(record).map_err(|e| bad(field, e.to_string()))?;
                resolver = resolver.with_text(name.clone(), key, record.clone());
            }
        }
    }
    Ok(resolver)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::StaticNameConfig;
    use dm3::crypto::eth::Wallet;
    use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
    use dm3::profile::UserProfile;

    /// Answers every name with one address; stands in for ENS.
    struct Everyone(Address);

    impl NameResolver for Everyone {
        fn address<'a>(&'a self, _: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
            let address = self.0;
            Box::pin(async move { Ok(Some(address)) })
        }

        fn text<'a>(
            &'a self,
            _: &'a EnsName,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
            Box::pin(async move { Ok(Some("from ens".to_owned())) })
        }
    }

    fn entry(name: &str) -> StaticNameConfig {
        StaticNameConfig { name: name.to_owned(), ..Default::default() }
    }

    #[tokio::test]
    async fn static_names_are_answered_from_the_config_alone() {
        let config = NamesConfig {
            static_names: vec![StaticNameConfig {
                address: Some(format!("0x{}", "11".repeat(20))),
                ..entry("pinned.eth")
            }],
            ..NamesConfig::default()
        };
        let ens = Arc::new(Everyone(Address::repeat_byte(0x22)));
        let chain = ResolverChain::new(static_resolver(&config).unwrap(), Some(ens));
        let pinned: EnsName = "pinned.eth".parse().unwrap();
        let other: EnsName = "other.eth".parse().unwrap();
        assert_eq!(chain.address(&pinned).await, Ok(Some(Address::repeat_byte(0x11))));
        assert_eq!(chain.text(&pinned, USER_PROFILE_KEY).await, Ok(None));
        assert_eq!(chain.address(&other).await, Ok(Some(Address::repeat_byte(0x22))));
        assert_eq!(chain.text(&other, USER_PROFILE_KEY).await, Ok(Some("from ens".into())));
    }

    #[tokio::test]
    async fn a_directory_from_static_config_verifies_profiles() {
        let wallet = Wallet::generate();
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        let profile = UserProfile::from_keys(&keys, ["ds.example.eth"]).sign(&wallet);
        let config = NamesConfig {
            static_names: vec![StaticNameConfig {
                address: Some(wallet.address().to_string()),
                profile: Some(profile.to_text_record()),
                ..entry("alice.example.eth")
            }],
            ..NamesConfig::default()
        };
        let directory = build_directory(&config).unwrap();
        let alice: EnsName = "alice.example.eth".parse().unwrap();
        let found = directory.user_profile(&alice).await.unwrap().unwrap();
        assert_eq!(found.address, wallet.address());
        // Without ens_rpc_url, other names simply do not resolve.
        assert_eq!(directory.user_profile(&"bob.example.eth".parse().unwrap()).await, Ok(None));
    }

    #[test]
    fn malformed_static_entries_are_refused_by_key() {
        for (entry, expected) in [
            (entry("Not A Name!"), "names.static[0].name"),
            (StaticNameConfig { address: Some("0x12".into()), ..entry("a.eth") }, "names.static[0].address"),
            (StaticNameConfig { profile: Some("hello".into()), ..entry("a.eth") }, "names.static[0].profile"),
        ] {
            let config = NamesConfig { static_names: vec![entry], ..NamesConfig::default() };
            let error = static_resolver(&config).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
        let config = NamesConfig {
            ens_rpc_url: Some("http://127.0.0.1:8545".into()),
            ens_registry: "nope".into(),
            ..NamesConfig::default()
        };
        assert!(matches!(build_directory(&config), Err(NamesSetupError::Registry(_))));
    }
}
