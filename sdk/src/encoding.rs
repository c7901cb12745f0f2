//! Byte encodings as the reference libraries write and read them (docs/protocol.md §2.1).
//!
//! Keys, ciphertexts and Ed25519 signatures travel as standard, padded base64.
//! Node's decoder is lenient (URL-safe alphabet, missing padding), so we emit
//! the strict form and accept the lenient one. Nonces, hashes and Ethereum
//! values are `0x`-prefixed lowercase hex, parsed the way ethers' `arrayify`
//! does: an even number of digits is required.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// What was wrong with an encoded value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("invalid base64")]
    Base64,
    #[error("invalid hex: expected 0x followed by an even number of hex digits")]
    Hex,
    #[error("wrong length: expected {expected} bytes, got {actual}")]
    Length { expected: usize, actual: usize },
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding, as `Buffer.toString("base64")` writes it.
pub fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes base64 the way Node does: standard or URL-safe alphabet, padding optional.
pub fn b64_decode(text: &str) -> Result<Vec<u8>, EncodingError> {
    if text.contains(['-', '_']) {
        let standard: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                other => other,
            })
            .collect();
        return LENIENT.decode(standard).map_err(|_| EncodingError::Base64);
    }
    LENIENT.decode(text).map_err(|_| EncodingError::Base64)
}

/// Decodes base64 into exactly `N` bytes.
pub fn b64_decode_array<const N: usize>(text: &str) -> Result<[u8; N], EncodingError> {
    to_array(b64_decode(text)?)
}

/// `0x` + lowercase hex, as ethers' `hexlify` writes it.
pub fn hex_encode(bytes: &[u8]) -> String {
    format!("0x{}", alloy_primitives::hex::encode(bytes))
}

/// Parses `0x` + an even number of hex digits (either case), as ethers' `arrayify` does.
pub fn hex_decode(text: &str) -> Result<Vec<u8>, EncodingError> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).ok_or(EncodingError::Hex)?;
    if digits.len() % 2 != 0 {
        return Err(EncodingError::Hex);
    }
    alloy_primitives::hex::decode(digits).map_err(|_| EncodingError::Hex)
}

/// Parses `0x`-hex into exactly `N` bytes.
pub fn hex_decode_array<const N: usize>(text: &str) -> Result<[u8; N], EncodingError> {
    to_array(hex_decode(text)?)
}

fn to_array<const N: usize>(bytes: Vec<u8>) -> Result<[u8; N], EncodingError> {
    let actual = bytes.len();
    bytes.try_into().map_err(|_| EncodingError::Length { expected: N, actual })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_accepts_what_node_accepts() {
        let bytes = [0xfb, 0xff, 0x01];
        assert_eq!(b64_encode(&bytes), "+/8B");
        assert_eq!(b64_decode("+/8B").as_deref(), Ok(&bytes[..]));
        assert_eq!(b64_decode("-_8B").as_deref(), Ok(&bytes[..]));
        assert_eq!(b64_decode("AQ").as_deref(), Ok(&[1u8][..]));
        assert_eq!(b64_decode("AQ==").as_deref(), Ok(&[1u8][..]));
        assert_eq!(b64_decode("A*=="), Err(EncodingError::Base64));
    }

    #[test]
    fn hex_requires_prefix_and_even_length() {
        assert_eq!(hex_decode("0x0aFF").as_deref(), Ok(&[0x0a, 0xff][..]));
        assert_eq!(hex_decode("0x123"), Err(EncodingError::Hex));
        assert_eq!(hex_decode("1234"), Err(EncodingError::Hex));
        assert_eq!(hex_encode(&[0xab, 0x01]), "0xab01");
        assert_eq!(hex_decode_array::<3>("0x0102"), Err(EncodingError::Length { expected: 3, actual: 2 }));
    }
}
