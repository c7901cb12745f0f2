//! The calldata a CCIP-read gateway receives: `resolve` / `resolveWithContext`.
//!
//! The on-chain `ERC3668Resolver` wraps the client's ENSIP-10 call
//! `resolve(dnsName, query)` into `resolveWithContext(dnsName, query,
//! abi.encodePacked(nodeOwner))` and puts it in the `OffchainLookup` (§12.1). The
//! reference handler accepts either, DNS-decodes the name, decodes the inner
//! record query and refuses a query whose node is not `namehash(name)` (§12.3,
//! `decodeText.ts`/`decodeAddr.ts`). [`ResolveRequest::decode`] does the same, so a
//! decoded request always names one record of one name.
//!
//! Divergences, all on input the reference also refuses or mangles: the DNS name
//! is decoded strictly (see `ens::dns`), a `text` key that is not UTF-8 is an
//! error rather than U+FFFD, and `addr(bytes32,uint256)` is decoded (the
//! reference's handler has a branch for it, but its ABI interface lacks the
//! function, so it answers 400).

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::{SolCall as _, SolType as _, sol_data};

use super::abi::{addr_0Call, addr_1Call, resolveCall, resolveWithContextCall, textCall};
use crate::encoding::hex_encode;
use crate::ens::{DnsError, EnsName, EnsNode, dns_decode, dns_encode, namehash};

/// Why calldata is not a resolve request we can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalldataError {
    #[error("calldata is shorter than a 4-byte selector")]
    TooShort,
    #[error("calldata calls {}, which is neither resolve nor resolveWithContext", hex_encode(.selector))]
    UnknownFunction { selector: [u8; 4] },
    #[error("malformed ABI encoding of the {0}")]
    Abi(&'static str),
    #[error("the DNS-encoded name is invalid: {0}")]
    Name(#[from] DnsError),
    #[error("unsupported record query {}", hex_encode(.selector))]
    UnsupportedQuery { selector: [u8; 4] },
    #[error("the text record key is not UTF-8")]
    KeyNotUtf8,
    #[error("the query is for node {query}, but the name hashes to {name}")]
    NodeMismatch { name: EnsNode, query: EnsNode },
}

/// A record query, the `data` argument of `resolve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `text(bytes32 node, string key)`, selector `0x59d1d43c`.
    Text { node: EnsNode, key: String },
    /// `addr(bytes32 node)`, selector `0x3b3b57de`.
    Addr { node: EnsNode },
    /// `addr(bytes32 node, uint256 coinType)` (ENSIP-9), selector `0xf1cb7e06`.
    AddrCoin { node: EnsNode, coin_type: U256 },
}

impl Query {
    pub fn text(name: &EnsName, key: &str) -> Self {
        Self::Text { node: namehash(name), key: key.to_owned() }
    }

    pub fn addr(name: &EnsName) -> Self {
        Self::Addr { node: namehash(name) }
    }

    pub fn node(&self) -> EnsNode {
        match self {
            Self::Text { node, .. } | Self::Addr { node } | Self::AddrCoin { node, .. } => *node,
        }
    }

    pub fn selector(&self) -> [u8; 4] {
        match self {
            Self::Text { .. } => textCall::SELECTOR,
            Self::Addr { .. } => addr_0Call::SELECTOR,
            Self::AddrCoin { .. } => addr_1Call::SELECTOR,
        }
    }

    /// The ABI-encoded call, as ethers' `encodeFunctionData` writes it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Text { node, key } => {
                textCall { node: B256::from(*node.as_bytes()), key: key.clone() }.abi_encode()
            }
            Self::Addr { node } => addr_0Call { node: B256::from(*node.as_bytes()) }.abi_encode(),
            Self::AddrCoin { node, coin_type } => {
                addr_1Call { node: B256::from(*node.as_bytes()), coinType: *coin_type }.abi_encode()
            }
        }
    }

    /// Decodes a record query. Like ethers' lenient decoder, padding is not checked.
    pub fn decode(data: &[u8]) -> Result<Self, CalldataError> {
        let (selector, args) = split_selector(data)?;
        if selector == textCall::SELECTOR {
            // Decoded as bytes so that a non-UTF-8 key is an error, not U+FFFD.
            type TextAsBytes = (sol_data::FixedBytes<32>, sol_data::Bytes);
            let (node, key) =
                TextAsBytes::abi_decode_sequence(args).map_err(|_| CalldataError::Abi("text query"))?;
            let key = String::from_utf8(key.to_vec()).map_err(|_| CalldataError::KeyNotUtf8)?;
            Ok(Self::Text { node: EnsNode::from_bytes(node.0), key })
        } else if selector == addr_0Call::SELECTOR {
            let call = addr_0Call::abi_decode_raw(args).map_err(|_| CalldataError::Abi("addr query"))?;
            Ok(Self::Addr { node: EnsNode::from_bytes(call.node.0) })
        } else if selector == addr_1Call::SELECTOR {
            let call = addr_1Call::abi_decode_raw(args).map_err(|_| CalldataError::Abi("addr query"))?;
            Ok(Self::AddrCoin { node: EnsNode::from_bytes(call.node.0), coin_type: call.coinType })
        } else {
            Err(CalldataError::UnsupportedQuery { selector })
        }
    }
}

/// A decoded `resolve(name, data)` or `resolveWithContext(name, data, context)`
/// whose query node is the name's namehash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    name: EnsName,
    query: Query,
    context: Option<Vec<u8>>,
}

impl ResolveRequest {
    /// A request for `query` on `name`; `context` makes it a `resolveWithContext`.
    pub fn new(name: EnsName, query: Query, context: Option<Vec<u8>>) -> Result<Self, CalldataError> {
        let expected = namehash(&name);
        if query.node() != expected {
            return Err(CalldataError::NodeMismatch { name: expected, query: query.node() });
        }
        Ok(Self { name, query, context })
    }

    /// Decodes gateway calldata as the reference handler does (§12.3).
    pub fn decode(calldata: &[u8]) -> Result<Self, CalldataError> {
        let (selector, args) = split_selector(calldata)?;
        let (dns_name, data, context) = if selector == resolveWithContextCall::SELECTOR {
            let call = resolveWithContextCall::abi_decode_raw(args)
                .map_err(|_| CalldataError::Abi("resolveWithContext call"))?;
            (call.name, call.data, Some(call.context.to_vec()))
        } else if selector == resolveCall::SELECTOR {
            let call = resolveCall::abi_decode_raw(args).map_err(|_| CalldataError::Abi("resolve call"))?;
            (call.name, call.data, None)
        } else {
            return Err(CalldataError::UnknownFunction { selector });
        };
        let name = dns_decode(&dns_name)?;
        let query = Query::decode(&data)?;
        Self::new(name, query, context)
    }

    /// The calldata: `resolveWithContext` if there is a context, else `resolve`.
    pub fn encode(&self) -> Vec<u8> {
        let name = Bytes::from(dns_encode(&self.name));
        let data = Bytes::from(self.query.encode());
        match &self.context {
            Some(context) => {
                resolveWithContextCall { name, data, context: Bytes::from(context.clone()) }.abi_encode()
            }
            None => resolveCall { name, data }.abi_encode(),
        }
    }

    pub fn name(&self) -> &EnsName {
        &self.name
    }

    pub fn node(&self) -> EnsNode {
        self.query.node()
    }

    pub fn query(&self) -> &Query {
        &self.query
    }

    pub fn context(&self) -> Option<&[u8]> {
        self.context.as_deref()
    }

    /// The name's owner, when the context is `abi.encodePacked(address)` as the
    /// `ERC3668Resolver` writes it.
    pub fn context_owner(&self) -> Option<Address> {
        self.context.as_deref().and_then(|context| Address::try_from(context).ok())
    }
}

fn split_selector(data: &[u8]) -> Result<([u8; 4], &[u8]), CalldataError> {
    let (selector, rest) = data.split_first_chunk::<4>().ok_or(CalldataError::TooShort)?;
    Ok((*selector, rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name() -> EnsName {
        EnsName::parse("alice.eth").unwrap()
    }

    #[test]
    fn requests_round_trip() {
        let queries = [
            Query::text(&name(), "network.dm3.profile"),
            Query::addr(&name()),
            Query::AddrCoin { node: namehash(&name()), coin_type: U256::from(60) },
        ];
        for query in queries {
            for context in [None, Some(vec![1u8; 20])] {
                let request = ResolveRequest::new(name(), query.clone(), context).unwrap();
                assert_eq!(ResolveRequest::decode(&request.encode()).unwrap(), request);
            }
        }
    }

    #[test]
    fn node_must_match_the_name() {
        let other = Query::addr(&EnsName::parse("bob.eth").unwrap());
        let error = ResolveRequest::new(name(), other.clone(), None).unwrap_err();
        assert!(matches!(error, CalldataError::NodeMismatch { .. }));
        let forged =
            resolveCall { name: dns_encode(&name()).into(), data: other.encode().into() }.abi_encode();
        assert!(matches!(ResolveRequest::decode(&forged), Err(CalldataError::NodeMismatch { .. })));
    }

    #[test]
    fn unknown_selectors_are_typed_errors() {
        assert_eq!(ResolveRequest::decode(&[0x90, 0x61]), Err(CalldataError::TooShort));
        assert_eq!(
            ResolveRequest::decode(&[1, 2, 3, 4, 5]),
            Err(CalldataError::UnknownFunction { selector: [1, 2, 3, 4] })
        );
        let contenthash = [0xbc, 0x1c, 0x58, 0xd1];
        let mut data = contenthash.to_vec();
        data.extend_from_slice(namehash(&name()).as_bytes());
        let call = resolveCall { name: dns_encode(&name()).into(), data: data.into() }.abi_encode();
        assert_eq!(
            ResolveRequest::decode(&call),
            Err(CalldataError::UnsupportedQuery { selector: contenthash })
        );
        assert_eq!(ResolveRequest::decode(&resolveCall::SELECTOR), Err(CalldataError::Abi("resolve call")));
    }

    #[test]
    fn non_utf8_text_key_is_refused() {
        let mut query = Query::text(&name(), "ab").encode();
        let len = query.len();
        query[len - 32] = 0xff;
        assert_eq!(Query::decode(&query), Err(CalldataError::KeyNotUtf8));
    }

    #[test]
    fn context_owner_reads_a_packed_address() {
        let owner = Address::repeat_byte(7);
        let request = ResolveRequest::new(name(), Query::addr(&name()), Some(owner.to_vec())).unwrap();
        assert_eq!(request.context_owner(), Some(owner));
        let plain = ResolveRequest::new(name(), Query::addr(&name()), None).unwrap();
        assert_eq!(plain.context_owner(), None);
    }
}
