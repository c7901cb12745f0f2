//! The handler's answer to a record query: the `result` the gateway signs.
//!
//! The reference handler (`handleCcipRequest.ts`, §12.3) answers in three shapes,
//! and the on-chain verifier unpacks them differently (§12.2):
//! - `text` → `abi.encode(string)`; the verifier's `resolveWithProof` returns it as
//!   `bytes`, which is what the ENSIP-10 caller decodes as the string;
//! - `addr` → the **raw 20 address bytes**, not ABI-encoded; the verifier's
//!   `resolveWithAddress` reads them with `address(bytes20(result))`;
//! - not found → empty, which the handler's HTTP body writes as `"0x"`.
//!
//! The HTTP body is that result as `0x`-hex text. The DM3 profile record is
//! `data:application/json,` + the canonical JSON of the signed profile, raw (P16).
//!
//! Decoding ([`Answer::decode`]) is for clients that verified a gateway response
//! and must read the record. It is stricter than `address(bytes20(result))`, which
//! would silently pad or cut an address of the wrong length.

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::SolValue as _;
use serde_json::Value;

use super::Query;
use crate::canonical;
use crate::encoding::{EncodingError, hex_decode, hex_encode};

/// The text record key under which DM3 publishes a user's signed profile.
pub const PROFILE_TEXT_KEY: &str = "network.dm3.profile";

/// Why a result does not decode as the answer to its query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the text answer is not an ABI-encoded UTF-8 string")]
    MalformedText,
    #[error("the address answer is {0} bytes long, not 20")]
    AddressLength(usize),
    #[error("the handler body is not 0x-hex: {0}")]
    Body(#[from] EncodingError),
}

/// A record as the resolver answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Text(String),
    Addr(Address),
    NotFound,
}

impl Answer {
    /// The `result` bytes, exactly as the reference handler produces them.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Text(value) => value.abi_encode(),
            Self::Addr(address) => address.to_vec(),
            Self::NotFound => Vec::new(),
        }
    }

    /// The handler's HTTP body: `0x`-hex of [`encode`](Self::encode), `"0x"` if not found.
    pub fn to_body(&self) -> String {
        hex_encode(&self.encode())
    }

    /// Reads a verified `result` as the answer to `query`. Empty means not found,
    /// for either kind, as the reference handler writes it. `addr(bytes32,uint256)`
    /// answers are read like `addr(bytes32)`: the reference's (unreachable) branch
    /// for them writes the same raw 20 bytes.
    pub fn decode(query: &Query, result: &[u8]) -> Result<Self, AnswerError> {
        if result.is_empty() {
            return Ok(Self::NotFound);
        }
        match query {
            Query::Text { .. } => {
                // Lenient about padding like ethers, but never lossy: ethers refuses
                // invalid UTF-8, and so do we (hence bytes, then UTF-8).
                let bytes = Bytes::abi_decode(result).map_err(|_| AnswerError::MalformedText)?;
                String::from_utf8(bytes.to_vec()).map(Self::Text).map_err(|_| AnswerError::MalformedText)
            }
            Query::Addr { .. } | Query::AddrCoin { .. } => Address::try_from(result)
                .map(Self::Addr)
                .map_err(|_| AnswerError::AddressLength(result.len())),
        }
    }
}

/// Parses a handler's HTTP body (`0x`-hex) into the `result` bytes the gateway signs.
pub fn parse_handler_body(body: &str) -> Result<Vec<u8>, AnswerError> {
    Ok(hex_decode(body.trim())?)
}

/// The value of the `network.dm3.profile` text record for a signed profile:
/// `data:application/json,` + canonical JSON, not percent-encoded (P16).
pub fn profile_text_record(signed_profile: &Value) -> String {
    format!("data:application/json,{}", canonical::stringify(signed_profile))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ens::{EnsName, namehash};

    fn queries() -> (Query, Query) {
        let name = EnsName::parse("alice.eth").unwrap();
        (Query::text(&name, PROFILE_TEXT_KEY), Query::Addr { node: namehash(&name) })
    }

    #[test]
    fn answers_round_trip() {
        let (text, addr) = queries();
        let answer = Answer::Text("data:application/json,{}".into());
        assert_eq!(Answer::decode(&text, &answer.encode()).unwrap(), answer);
        let answer = Answer::Addr(Address::repeat_byte(0xab));
        assert_eq!(answer.encode().len(), 20);
        assert_eq!(Answer::decode(&addr, &answer.encode()).unwrap(), answer);
        assert_eq!(Answer::NotFound.to_body(), "0x");
        assert_eq!(Answer::decode(&addr, &parse_handler_body("0x").unwrap()).unwrap(), Answer::NotFound);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let (text, addr) = queries();
        assert_eq!(Answer::decode(&addr, &[1; 32]), Err(AnswerError::AddressLength(32)));
        assert_eq!(Answer::decode(&text, &[1; 20]), Err(AnswerError::MalformedText));
        assert!(parse_handler_body("zz").is_err());
    }
}
