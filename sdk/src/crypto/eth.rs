//! secp256k1 wallets: EIP-191 `personal_sign`, address recovery, EIP-55 addresses.
//!
//! Profiles are signed with the user's Ethereum wallet (docs/protocol.md §4.2), and
//! DM3 keys are derived from a wallet signature *string* (P7), so signatures
//! must come out byte-identical to ethers v5: RFC 6979 deterministic nonces,
//! low-`s`, `v` = 27/28, lowercase hex.

use alloy_primitives::{Address, B256, Signature};
use k256::ecdsa::SigningKey;
use zeroize::Zeroizing;

use super::CryptoError;
use crate::encoding::{hex_decode, hex_decode_array, hex_encode};
use crate::hash::eip191_hash;

/// A secp256k1 private key that signs like an ethers `Wallet`.
#[derive(Clone)]
pub struct Wallet {
    key: SigningKey,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("address", &self.address()).finish_non_exhaustive()
    }
}

impl Wallet {
    /// A wallet from its 32-byte private key.
    pub fn from_bytes(secret: &[u8; 32]) -> Result<Self, CryptoError> {
        SigningKey::from_slice(secret)
            .map(|key| Self { key })
            .map_err(|_| CryptoError::InvalidSecretKey("not a secp256k1 private key"))
    }

    /// A wallet from `0x`-hex, as ethers takes it.
    pub fn from_hex(secret: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(hex_decode_array::<32>(secret)?);
        Self::from_bytes(&bytes)
    }

    /// A fresh random wallet.
    pub fn generate() -> Self {
        loop {
            let bytes = Zeroizing::new(super::random_bytes::<32>());
            if let Ok(wallet) = Self::from_bytes(&bytes) {
                return wallet;
            }
        }
    }

    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes().into())
    }

    pub fn address(&self) -> Address {
        Address::from_public_key(self.key.verifying_key())
    }

    /// Signs a 32-byte digest as it is (no EIP-191 framing).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> EthSignature {
        // k256 signing of a valid key over 32 bytes cannot fail.
        #[allow(clippy::expect_used)]
        let (signature, recovery) =
            self.key.sign_prehash_recoverable(digest).expect("secp256k1 signing of a 32-byte digest");
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&signature.to_bytes());
        bytes[64] = 27 + recovery.to_byte();
        EthSignature(bytes)
    }

    /// ethers' `signMessage`: EIP-191 `personal_sign` over the message bytes.
    pub fn personal_sign(&self, message: &[u8]) -> EthSignature {
        self.sign_digest(&eip191_hash(message))
    }
}

/// A 65-byte `r ‖ s ‖ v` signature with `v` = 27/28.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthSignature([u8; 65]);

impl EthSignature {
    /// Parses `0x` + 130 hex digits; `v` may be 0/1 or 27/28.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let bytes = hex_decode(text)?;
        let mut array: [u8; 65] = bytes.try_into().map_err(|_| CryptoError::MalformedSignature)?;
        array[64] = match array[64] {
            0 | 27 => 27,
            1 | 28 => 28,
            _ => return Err(CryptoError::MalformedSignature),
        };
        Ok(Self(array))
    }

    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// The string ethers prints: `0x` + 130 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// The address that signed `digest`, or `None` if the signature is invalid.
    pub fn recover_from_digest(&self, digest: &[u8; 32]) -> Option<Address> {
        let signature = Signature::from_raw_array(&self.0).ok()?;
        signature.recover_address_from_prehash(&B256::from(*digest)).ok()
    }

    /// ethers' `verifyMessage`: the address behind a `personal_sign` signature.
    pub fn recover_personal(&self, message: &[u8]) -> Option<Address> {
        self.recover_from_digest(&eip191_hash(message))
    }
}

impl std::fmt::Display for EthSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Parses an address in any case; checksummed input must have a valid checksum,
/// as ethers' `getAddress` requires.
pub fn parse_address(text: &str) -> Result<Address, CryptoError> {
    let digits = text.strip_prefix("0x").ok_or(CryptoError::MalformedPayload("address"))?;
    let mixed =
        digits.chars().any(|c| c.is_ascii_lowercase()) && digits.chars().any(|c| c.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(text, None).map_err(|_| CryptoError::MalformedPayload("address checksum"))
    } else {
        text.parse().map_err(|_| CryptoError::MalformedPayload("address"))
    }
}

/// EIP-55 checksum form, as ethers' `getAddress` prints it.
pub fn checksum(address: &Address) -> String {
    address.to_checksum(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn personal_sign_recovers_the_signer() {
        let wallet = Wallet::generate();
        let signature = wallet.personal_sign(b"hello");
        let parsed = EthSignature::parse(&signature.to_hex()).unwrap();
        assert_eq!(parsed.recover_personal(b"hello"), Some(wallet.address()));
        assert_ne!(parsed.recover_personal(b"hellO"), Some(wallet.address()));
    }

    #[test]
    fn addresses_parse_with_checksum_rules() {
        let good = "0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13";
        let address = parse_address(good).unwrap();
        assert_eq!(checksum(&address), good);
        assert!(parse_address(&good.to_lowercase()).is_ok());
        assert!(parse_address("0x9bE6CD40aB351621A61CE4b9E31117F7AcdAFF13").is_err());
        assert!(parse_address("9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13").is_err());
    }
}
