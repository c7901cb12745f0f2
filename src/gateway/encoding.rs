//! The bytes of a gateway `result`, in the form the asking resolver contract expects.
//!
//! Two offchain-resolver designs meet here, and they disagree on `addr`:
//! - DM3's `ERC3668Resolver` (docs/protocol.md §12.1) asks with `resolveWithContext(name, data,
//!   context)` and its verifier widens a **raw 20-byte** address itself
//!   (`address(bytes20(result))`, §12.2); the reference handler answers that way (§12.3).
//! - The ENS offchain-resolver design (ours in `tests/contracts/OffchainResolver.sol`, and the
//!   ENS reference gateway's) asks with `resolve(name, data)` and returns `result` verbatim to
//!   the client, which ABI-decodes it: `addr` must be a 32-byte ABI word, ENSIP-9
//!   `addr(node, coinType)` an ABI-encoded `bytes`. A raw 20-byte answer makes ethers return
//!   null there.
//!
//! The calldata's function tells the two apart, so the gateway serves both. Text answers are
//! `abi.encode(string)` for both, and "not found" is empty for both (§12.3).

use alloy_primitives::Bytes;
use alloy_sol_types::SolValue as _;
use dm3::ccip::{Answer, Query, ResolveRequest};

/// Which resolver contract design sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverFlavor {
    /// `resolveWithContext`: DM3's `ERC3668Resolver`.
    Dm3,
    /// `resolve`: the ENS offchain-resolver design.
    Ens,
}

impl ResolverFlavor {
    pub fn of(request: &ResolveRequest) -> Self {
        if request.context().is_some() { Self::Dm3 } else { Self::Ens }
    }
}

/// The `result` to sign for `answer` to `query`.
pub fn encode_result(answer: &Answer, query: &Query, flavor: ResolverFlavor) -> Vec<u8> {
    match (answer, flavor) {
        (Answer::Addr(address), ResolverFlavor::Ens) => match query {
            Query::AddrCoin { .. } => Bytes::copy_from_slice(address.as_slice()).abi_encode(),
            _ => address.abi_encode(),
        },
        // The reference handler's shapes: raw address, abi.encode(string), empty.
        (answer, _) => answer.encode(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use alloy_primitives::{Address, U256};
    use dm3::ens::{EnsName, namehash};

    #[test]
    fn addresses_follow_the_flavor() {
        let name = EnsName::parse("tg-1.tg.bridge.eth").unwrap();
        let address = Address::repeat_byte(0xab);
        let addr = Query::addr(&name);
        let coin = Query::AddrCoin { node: namehash(&name), coin_type: U256::from(60) };
        let answer = Answer::Addr(address);
        assert_eq!(encode_result(&answer, &addr, ResolverFlavor::Dm3), address.to_vec());
        let word = encode_result(&answer, &addr, ResolverFlavor::Ens);
        assert_eq!(Address::abi_decode(&word).unwrap(), address);
        let bytes = encode_result(&answer, &coin, ResolverFlavor::Ens);
        assert_eq!(Bytes::abi_decode(&bytes).unwrap().as_ref(), address.as_slice());
        let text = encode_result(&Answer::Text("x".into()), &Query::text(&name, "k"), ResolverFlavor::Ens);
        assert_eq!(String::abi_decode(&text).unwrap(), "x");
        assert!(encode_result(&Answer::NotFound, &addr, ResolverFlavor::Ens).is_empty());
    }
}
