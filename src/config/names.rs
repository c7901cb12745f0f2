//! `[names]`: where the node looks names up (docs/protocol.md P15, §4.3, §4.4).
//!
//! Kept apart from the other sections because it is the only one that describes *other*
//! parties: the chain to ask, how far to trust what comes back (time, size, internal
//! addresses), and peers pinned by the operator. Addresses, URLs and records stay strings
//! here, like every other key, so that loading never fails on them; [`super::Config::problems`]
//! reports each malformed one by key, and `names::chain::build_directory` parses them.

use serde::{Deserialize, Serialize};

/// The ENS registry's address, the same on mainnet and the main testnets.
pub const MAINNET_ENS_REGISTRY: &str = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e";

/// `[names]`: the ENS client, its cache and limits, and names fixed in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamesConfig {
    /// JSON-RPC endpoint of an Ethereum node. Absent: no ENS lookups, only `[[names.static]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ens_rpc_url: Option<String>,
    /// The ENS registry contract on that chain.
    pub ens_registry: String,
    /// How long an answer (also "no such record") is reused, in seconds; 0 disables the cache.
    pub cache_ttl_secs: u64,
    /// How long a failed lookup (no answer in time, a broken gateway) is answered from the
    /// cache, in seconds; 0 asks again every time. Short: it only stops a caller from making
    /// the node repeat the same failing work.
    pub failure_cache_secs: u64,
    /// How many answers the cache holds at most; the oldest go first.
    pub cache_max_entries: usize,
    /// Bound on one whole name lookup (resolver, records, gateways, profile link), in
    /// milliseconds, waiting for a free slot included.
    pub lookup_timeout_ms: u64,
    /// How many name lookups may be out at once; more wait for a slot, within their deadline.
    pub max_concurrent_lookups: usize,
    /// Bound on each HTTP request (JSON-RPC, CCIP gateway, profile link), in milliseconds,
    /// from connecting to the last byte of the body.
    pub request_timeout_ms: u64,
    /// Largest response body accepted from any of them, in bytes.
    pub max_response_bytes: usize,
    /// Let gateways and profile links point at loopback, private, link-local and unique-local
    /// addresses. Off by default: those URLs come from whoever owns a name.
    pub allow_private_addresses: bool,
    /// Names answered from the config, before (and instead of) ENS.
    #[serde(rename = "static")]
    pub static_names: Vec<StaticNameConfig>,
}

impl Default for NamesConfig {
    fn default() -> Self {
        Self {
            ens_rpc_url: None,
            ens_registry: MAINNET_ENS_REGISTRY.to_owned(),
            cache_ttl_secs: 300,
            failure_cache_secs: 30,
            cache_max_entries: 10_000,
            lookup_timeout_ms: 10_000,
            max_concurrent_lookups: 32,
            request_timeout_ms: 5_000,
            max_response_bytes: 256 * 1024,
            allow_private_addresses: false,
            static_names: Vec::new(),
        }
    }
}

/// `[[names.static]]`: one name and its records, as ENS would answer them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNameConfig {
    /// The ENS name, normalized (`alice.example.eth`).
    pub name: String,
    /// `addr(name)`, `0x` + 40 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The `network.dm3.profile` text record: `data:application/json,…` or an
    /// `https://…?dm3Hash=…` link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The `network.dm3.deliveryService` text record, in the same forms (bare JSON too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_service: Option<String>,
}
