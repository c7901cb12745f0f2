//! The ENS client: `addr` and `text` records read from an Ethereum node over JSON-RPC, with
//! ENSIP-10 wildcard resolution and EIP-3668 CCIP-read (docs/protocol.md P15, §4.3, §12).
//!
//! Why hand-written over `eth_call` and not alloy's provider: alloy 2.5's HTTP transport pulls
//! reqwest 0.13 and with it a second TLS stack, next to the reqwest 0.12 (rustls) the node and
//! teloxide already use. The client needs four view calls and the CCIP-read loop; with the
//! ABI from `alloy_sol_types::sol!` and the EIP-3668 codec from `dm3::ccip` that is less code
//! than the dependency, and every request goes through the node's own bounded fetcher.
//!
//! Resolution follows ENSIP-10:
//! 1. Find the resolver: `registry.resolver(namehash(n))` for the name, then each parent up to
//!    the root; the first non-zero address wins.
//! 2. If it supports `IExtendedResolver` (`supportsInterface(0x9061b923)`), call
//!    `resolve(dnsEncode(name), recordCall)` and ABI-decode the returned `bytes` as the
//!    record's return value. Otherwise, only if it was found on the name itself, call the
//!    record function (`text`, `addr`) directly; a resolver found on a parent that does not
//!    support ENSIP-10 does not resolve the name.
//!
//! Either call may revert with `OffchainLookup`; [`super::ccip_read`] follows it.
//!
//! Answers, as ethers v5 (the reference's library) gives them: no resolver, an empty answer,
//! an empty text, the zero address, or a resolver that simply reverts all mean "no record"
//! (`Ok(None)`). A resolver that *rejects the gateway's answer* (bad signature, expired) is
//! an error, [`ResolveError::Invalid`]: someone served a forged or stale record. A chain node
//! or gateway that does not answer is [`ResolveError::Unavailable`].

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::{SolCall as _, SolValue as _};
use dm3::ens::{EnsName, EnsNode, dns_encode, namehash};
use dm3_bridge_connector::BoxFuture;

use super::ccip_read::{self, CcipError};
use super::http_fetch::HttpFetcher;
use super::json_rpc::{CallOutcome, JsonRpc};

use super::{NameResolver, ResolveError};

mod abi {
    alloy_sol_types::sol! {
        // The ENS registry.
        function resolver(bytes32 node) external view returns (address);
        // ERC-165.
        function supportsInterface(bytes4 interfaceId) external view returns (bool);
        // ENSIP-10 IExtendedResolver; its interface id is this one selector, 0x9061b923.
        function resolve(bytes name, bytes data) external view returns (bytes);
        // The record functions (EIP-137, EIP-634).
        function addr(bytes32 node) external view returns (address);
        function text(bytes32 node, string key) external view returns (string);
    }
}

/// Names deeper than this are refused rather than walked: each level costs a registry call,
/// and names arrive from outside. Real names have a handful of labels.
pub const MAX_NAME_DEPTH: usize = 32;

/// A resolver found in the registry, and whether it was found on the name itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    resolver: Address,
    exact: bool,
}

/// ENS over JSON-RPC. See the module documentation.
pub struct EnsClient {
    rpc: JsonRpc,
    registry: Address,
    gateways: HttpFetcher,
}

impl EnsClient {
    /// `gateways` fetches CCIP-read gateway URLs; it should be the guarded fetcher that also
    /// follows profile links.
    pub fn new(rpc: JsonRpc, registry: Address, gateways: HttpFetcher) -> Self {
        Self { rpc, registry, gateways }
    }

    /// `addr(name)`.
    pub async fn address(&self, name: &EnsName) -> Result<Option<Address>, ResolveError> {
        let call = abi::addrCall { node: node_word(&namehash(name)) };
        let Some(data) = self.record(name, call.abi_encode()).await? else {
            return Ok(None);
        };
        let address = abi::addrCall::abi_decode_returns_validate(&data)
            .map_err(|_| invalid(name, "the addr record is not an ABI-encoded address"))?;
        Ok((address != Address::ZERO).then_some(address))
    }

    /// `text(name, key)`.
    pub async fn text(&self, name: &EnsName, key: &str) -> Result<Option<String>, ResolveError> {
        let call = abi::textCall { node: node_word(&namehash(name)), key: key.to_owned() };
        let Some(data) = self.record(name, call.abi_encode()).await? else {
            return Ok(None);
        };
        // Decoded as bytes and then UTF-8, so that invalid UTF-8 is refused, never replaced.
        let bytes = Bytes::abi_decode(&data)
            .map_err(|_| invalid(name, "the text record is not an ABI-encoded string"))?;
        let text =
            String::from_utf8(bytes.to_vec()).map_err(|_| invalid(name, "the text record is not UTF-8"))?;
        Ok((!text.is_empty()).then_some(text))
    }

    /// The ABI-encoded return value of `record_call` for `name`, or `None` for no record.
    async fn record(&self, name: &EnsName, record_call: Vec<u8>) -> Result<Option<Vec<u8>>, ResolveError> {
        let Some(found) = self.find_resolver(name).await? else {
            return Ok(None);
        };
        let returned = if self.supports_extended_resolver(found.resolver).await? {
            let call = abi::resolveCall { name: dns_encode(name).into(), data: record_call.into() };
            let Some(outer) = self.call(name, found.resolver, call.abi_encode()).await? else {
                return Ok(None);
            };
            abi::resolveCall::abi_decode_returns(&outer)
                .map_err(|_| invalid(name, "resolve() did not return ABI-encoded bytes"))?
                .to_vec()
        } else if found.exact {
            match self.call(name, found.resolver, record_call).await? {
                Some(returned) => returned,
                None => return Ok(None),
            }
        } else {
            // ENSIP-10: a parent's resolver answers for its subnames only through resolve().
            return Ok(None);
        };
        // The DM3 handler answers "not found" with an empty result (§12.3).
        Ok((!returned.is_empty()).then_some(returned))
    }

    /// ENSIP-10 step 1: the first resolver set on the name or one of its parents.
    async fn find_resolver(&self, name: &EnsName) -> Result<Option<Found>, ResolveError> {
        let labels: Vec<&str> = name.labels().collect();
        if labels.len() > MAX_NAME_DEPTH {
            return Err(invalid(name, &format!("more than {MAX_NAME_DEPTH} labels")));
        }
        // nodes[i] is the node of labels[i..]; the last one is the root.
        let mut nodes = vec![EnsNode::ROOT; labels.len() + 1];
        for (i, label) in labels.iter().enumerate().rev() {
            nodes[i] = nodes[i + 1].child(label);
        }
        for (depth, node) in nodes.iter().enumerate() {
            let call = abi::resolverCall { node: node_word(node) };
            let returned = match self.rpc.eth_call(&self.registry, &call.abi_encode()).await? {
                CallOutcome::Returned(returned) => returned,
                CallOutcome::Reverted(_) => return Err(registry_broken(self.registry, "reverted")),
            };
            // A registry address without code answers with no bytes at all.
            let resolver = abi::resolverCall::abi_decode_returns_validate(&returned)
                .map_err(|_| registry_broken(self.registry, "did not return an address"))?;
            if resolver != Address::ZERO {
                return Ok(Some(Found { resolver, exact: depth == 0 }));
            }
        }
        Ok(None)
    }

    /// ERC-165 `supportsInterface(IExtendedResolver)`; a resolver that reverts or answers
    /// garbage does not support it.
    async fn supports_extended_resolver(&self, resolver: Address) -> Result<bool, ResolveError> {
        let call = abi::supportsInterfaceCall { interfaceId: abi::resolveCall::SELECTOR.into() };
        Ok(match self.rpc.eth_call(&resolver, &call.abi_encode()).await? {
            CallOutcome::Returned(returned) => {
                abi::supportsInterfaceCall::abi_decode_returns_validate(&returned).unwrap_or(false)
            }
            CallOutcome::Reverted(_) => false,
        })
    }

    /// A resolver call with CCIP-read; `None` when the resolver reverts without a lookup.
    async fn call(
        &self,
        name: &EnsName,
        to: Address,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, ResolveError> {
        match ccip_read::call(&self.rpc, &self.gateways, to, data).await {
            Ok(returned) => Ok(Some(returned)),
            Err(CcipError::Reverted(_)) => Ok(None),
            Err(e) if e.is_transient() => Err(ResolveError::Unavailable(format!("{name}: {e}"))),
            Err(e) => Err(invalid(name, &e.to_string())),
        }
    }
}

impl NameResolver for EnsClient {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(EnsClient::address(self, name))
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(EnsClient::text(self, name, key))
    }
}

fn node_word(node: &EnsNode) -> B256 {
    B256::from(*node.as_bytes())
}

fn invalid(name: &EnsName, reason: &str) -> ResolveError {
    ResolveError::Invalid { name: name.to_string(), reason: reason.to_owned() }
}

/// The registry is the operator's setting, so its failures are not the name's fault.
fn registry_broken(registry: Address, what: &str) -> ResolveError {
    ResolveError::Unavailable(format!(
        "the ENS registry at {registry} {what}: is names.ens_registry the registry of this chain?"
    ))
}
