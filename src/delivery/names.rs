//! Names from clients, normalized once at the edge.
//!
//! Every name a client sends (a path segment, `deliveryInformation.to/from`, an
//! acknowledgement's `contactAddress`) is normalized here before it is compared, looked up or
//! stored, so `Alice.eth` and `alice.eth` are one account (docs/protocol.md §2.2: the reference
//! normalizes with `normalizeEnsName` before every lookup). [`dm3::ens::EnsName`] implements
//! a subset of ENSIP-15: for ASCII names, and for full-width ASCII (`ａｌｉｃｅ.eth`), it gives
//! the text and namehash ethers 5.7.2 gives (`sdk/tests/interop_ens.rs` checks it live); it
//! refuses some names ethers would accept (other compatibility forms, docs in `dm3::ens`), and
//! then says so in the error instead of resolving another name.
//!
//! A [`Name`] carries both forms the node needs: the SDK's name, for resolution, and the
//! store's key.

use crate::protocol::DeliveryError;
use crate::store;

/// A normalized name, in the two types it is used as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// For the [`crate::names::directory::Directory`].
    pub ens: dm3::ens::EnsName,
    /// For the store's rows.
    pub key: store::EnsName,
}

impl Name {
    /// Normalizes `input`; anything that is not a non-empty ENS name is an invalid request.
    pub fn parse(input: &str) -> Result<Self, DeliveryError> {
        let invalid = |reason: String| {
            // Bounded: the input comes from the client.
            let shown: String = input.chars().take(80).collect();
            DeliveryError::InvalidRequest(format!("{shown:?} is not an ENS name: {reason}"))
        };
        let ens = dm3::ens::EnsName::parse(input).map_err(|e| invalid(e.to_string()))?;
        if ens.is_root() {
            return Err(invalid("it is empty".to_owned()));
        }
        let key = store::EnsName::new(ens.as_str()).map_err(|e| invalid(e.to_string()))?;
        Ok(Self { ens, key })
    }

    pub fn as_str(&self) -> &str {
        self.key.as_str()
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_lowercased_and_empty_ones_refused() {
        let name = Name::parse("0xABC.Addr.DM3.eth").unwrap();
        assert_eq!(name.as_str(), "0xabc.addr.dm3.eth");
        assert_eq!(name.ens.as_str(), name.key.as_str());
        for bad in ["", "a b.eth", "a..eth", "x".repeat(2_000).as_str()] {
            assert!(matches!(Name::parse(bad), Err(DeliveryError::InvalidRequest(_))), "{bad:.20}");
        }
    }
}
