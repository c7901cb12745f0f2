//! The offchain resolver's claim API: request bodies and their signatures (§12.4).
//!
//! A user first publishes a profile under `<address>.<subdomain>` (for example
//! `0x….addr.dm3.eth`), proven by the wallet's profile signature. A readable
//! alias (`alice.user.dm3.eth`) is then claimed or removed with an **Ed25519**
//! signature of the profile's signing key over `"alias: " + dm3Name` or
//! `"remove: " + dm3Name` (`packages/offchain-resolver/src/http/profile.ts`).
//!
//! The signed text is the `dm3Name` string *as sent*, so the request types keep
//! the strings as received and verify over them; [`ClaimNameRequest::dm3_name`]
//! gives the normalized name for storage. The field names are those the
//! messenger sends (`offchainResolverApi.ts`); the older `{alias, name, signature}`
//! of `dm3-lib-offchain-resolver-api` is not used on the wire. Bodies serialize
//! with the reference's key order.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::CryptoError;
use crate::crypto::eth::{checksum, parse_address};
use crate::crypto::signing::{SigningKeyPair, VerifyKey};
use crate::ens::{EnsName, EnsNameError};

/// `POST` route of [`ClaimAddressRequest`].
pub const CLAIM_ADDRESS_PATH: &str = "/profile/address";
/// `POST` route of [`ClaimNameRequest`].
pub const CLAIM_NAME_PATH: &str = "/profile/name";
/// `POST` route of [`DeleteNameRequest`].
pub const DELETE_NAME_PATH: &str = "/profile/deleteName";

/// Why a claim request is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverApiError {
    #[error("the request body is not the expected JSON: {0}")]
    Json(String),
    #[error("the address is invalid")]
    Address,
    #[error("the name is invalid: {0}")]
    Name(#[from] EnsNameError),
    #[error("the signature is malformed: {0}")]
    Signature(#[from] CryptoError),
}

/// `POST /profile/address`: publish a signed profile under `<address>.<subdomain>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimAddressRequest {
    /// The signed profile, kept as JSON: its signature covers its canonical form (P2).
    pub signed_user_profile: Value,
    pub address: String,
    pub subdomain: String,
}

impl ClaimAddressRequest {
    /// A request with the address in EIP-55 form, as the messenger sends it.
    pub fn new(signed_user_profile: Value, address: &Address, subdomain: &EnsName) -> Self {
        Self { signed_user_profile, address: checksum(address), subdomain: subdomain.to_string() }
    }

    pub fn from_json(body: &str) -> Result<Self, ResolverApiError> {
        serde_json::from_str(body).map_err(|error| ResolverApiError::Json(error.to_string()))
    }

    pub fn to_json(&self) -> String {
        json(self)
    }

    pub fn address(&self) -> Result<Address, ResolverApiError> {
        parse_address(&self.address).map_err(|_| ResolverApiError::Address)
    }

    /// The name the profile is stored under, `<address>.<subdomain>`, normalized.
    pub fn name(&self) -> Result<EnsName, ResolverApiError> {
        Ok(EnsName::parse(&format!("{}.{}", self.address, self.subdomain))?)
    }
}

/// `POST /profile/name`: claim `dm3Name` as an alias of the profile at `addressName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimNameRequest {
    pub dm3_name: String,
    pub address_name: String,
    /// Base64 Ed25519 signature over [`alias_message`]`(dm3_name)`.
    pub signature: String,
}

impl ClaimNameRequest {
    /// Signs the claim with the profile's signing key.
    pub fn sign(dm3_name: &EnsName, address_name: &EnsName, key: &SigningKeyPair) -> Self {
        let dm3_name = dm3_name.to_string();
        let signature = key.sign_b64(&alias_message(&dm3_name));
        Self { dm3_name, address_name: address_name.to_string(), signature }
    }

    pub fn from_json(body: &str) -> Result<Self, ResolverApiError> {
        serde_json::from_str(body).map_err(|error| ResolverApiError::Json(error.to_string()))
    }

    pub fn to_json(&self) -> String {
        json(self)
    }

    /// `checkSignature(profile.publicSigningKey, "alias: " + dm3Name, signature)`.
    pub fn verify(&self, key: &VerifyKey) -> Result<bool, ResolverApiError> {
        Ok(key.verify_b64(&alias_message(&self.dm3_name), &self.signature)?)
    }

    pub fn dm3_name(&self) -> Result<EnsName, ResolverApiError> {
        Ok(EnsName::parse(&self.dm3_name)?)
    }

    pub fn address_name(&self) -> Result<EnsName, ResolverApiError> {
        Ok(EnsName::parse(&self.address_name)?)
    }
}

/// `POST /profile/deleteName`: remove the alias `dm3Name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteNameRequest {
    pub dm3_name: String,
    /// Base64 Ed25519 signature over [`remove_message`]`(dm3_name)`.
    pub signature: String,
}

impl DeleteNameRequest {
    pub fn sign(dm3_name: &EnsName, key: &SigningKeyPair) -> Self {
        let dm3_name = dm3_name.to_string();
        let signature = key.sign_b64(&remove_message(&dm3_name));
        Self { dm3_name, signature }
    }

    pub fn from_json(body: &str) -> Result<Self, ResolverApiError> {
        serde_json::from_str(body).map_err(|error| ResolverApiError::Json(error.to_string()))
    }

    pub fn to_json(&self) -> String {
        json(self)
    }

    /// `checkSignature(profile.publicSigningKey, "remove: " + dm3Name, signature)`.
    pub fn verify(&self, key: &VerifyKey) -> Result<bool, ResolverApiError> {
        Ok(key.verify_b64(&remove_message(&self.dm3_name), &self.signature)?)
    }

    pub fn dm3_name(&self) -> Result<EnsName, ResolverApiError> {
        Ok(EnsName::parse(&self.dm3_name)?)
    }
}

/// The text signed to claim an alias: `"alias: " + dm3Name`.
pub fn alias_message(dm3_name: &str) -> String {
    format!("alias: {dm3_name}")
}

/// The text signed to remove an alias: `"remove: " + dm3Name`.
pub fn remove_message(dm3_name: &str) -> String {
    format!("remove: {dm3_name}")
}

fn json<T: Serialize>(value: &T) -> String {
    // These structs hold only strings and JSON values, whose serialization cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(text: &str) -> EnsName {
        EnsName::parse(text).unwrap()
    }

    #[test]
    fn claim_and_delete_verify_with_the_signing_key_only() {
        let key = SigningKeyPair::generate();
        let public = VerifyKey::from_bytes(&key.public()).unwrap();
        let other = VerifyKey::from_bytes(&SigningKeyPair::generate().public()).unwrap();
        let claim = ClaimNameRequest::sign(&name("bob.user.dm3.eth"), &name("0xab.addr.dm3.eth"), &key);
        let claim = ClaimNameRequest::from_json(&claim.to_json()).unwrap();
        assert_eq!(claim.verify(&public), Ok(true));
        assert_eq!(claim.verify(&other), Ok(false));
        let delete = DeleteNameRequest::sign(&name("bob.user.dm3.eth"), &key);
        assert_eq!(delete.verify(&public), Ok(true));
        // A claim signature does not remove, and the reverse.
        let swapped = DeleteNameRequest { signature: claim.signature.clone(), ..delete };
        assert_eq!(swapped.verify(&public), Ok(false));
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        assert!(matches!(ClaimNameRequest::from_json("{}"), Err(ResolverApiError::Json(_))));
        let bad = ClaimNameRequest { dm3_name: "a".into(), address_name: "b".into(), signature: "!!".into() };
        let key = VerifyKey::from_bytes(&SigningKeyPair::generate().public()).unwrap();
        assert!(matches!(bad.verify(&key), Err(ResolverApiError::Signature(_))));
        let claim = ClaimAddressRequest {
            signed_user_profile: Value::Null,
            address: "0x12".into(),
            subdomain: "addr.dm3.eth".into(),
        };
        assert_eq!(claim.address(), Err(ResolverApiError::Address));
    }
}
