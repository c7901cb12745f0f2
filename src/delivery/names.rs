//! Names from clients, normalized once at the edge.
//!
//! Every name a client sends (a path segment, `deliveryInformation.to/from`, an
//! acknowledgement's `contactAddress`) is normalized here before it is compared, looked up or
//! stored, so `Alice.eth` and `alice.eth` are one account (docs/protocol.md §2.2: the reference
//! normalizes with `normalizeEnsName` before every lookup). [`EnsName`] implements
//! a subset of ENSIP-15: for ASCII names, and for full-width ASCII (`ａｌｉｃｅ.eth`), it gives
//! the text and namehash ethers 5.7.2 gives (`sdk/tests/interop_ens.rs` checks it live); it
//! refuses some names ethers would accept (other compatibility forms, docs in `dm3::ens`), and
//! then says so in the error instead of resolving another name.
//!
//! What the result is used as (the directory's key, the store's) is the same [`EnsName`]; what
//! this adds is the edge's rule: the root (the empty name) names nobody, and any refusal is
//! the client's invalid request, quoting (a bounded part of) what the client sent.

use dm3::ens::EnsName;

use crate::protocol::DeliveryError;

/// Normalizes `input`; anything that is not a non-empty ENS name is an invalid request.
pub(crate) fn parse_name(input: &str) -> Result<EnsName, DeliveryError> {
    let invalid = |reason: String| {
        // Bounded: the input comes from the client.
        let shown: String = input.chars().take(80).collect();
        DeliveryError::InvalidRequest(format!("{shown:?} is not an ENS name: {reason}"))
    };
    let name = EnsName::parse(input).map_err(|e| invalid(e.to_string()))?;
    if name.is_root() {
        return Err(invalid("it is empty".to_owned()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_lowercased_and_empty_ones_refused() {
        let name = parse_name("0xABC.Addr.DM3.eth").unwrap();
        assert_eq!(name.as_str(), "0xabc.addr.dm3.eth");
        for bad in ["", "a b.eth", "a..eth", "x".repeat(2_000).as_str()] {
            assert!(matches!(parse_name(bad), Err(DeliveryError::InvalidRequest(_))), "{bad:.20}");
        }
    }
}
