//! User profiles: the public keys and delivery services a DM3 user publishes,
//! signed with their Ethereum wallet (docs/protocol.md §4.1, §4.2).
//!
//! A [`SignedUserProfile`] is `{profile, signature}`. The signature is EIP-191
//! `personal_sign` over a fixed SIWE-like text that ends in
//! `stringify(profile)` ([`profile_creation_message`]). Both objects are kept
//! as the JSON maps they were received or built as, with typed accessors
//! beside them, because the signature and the `dm3Hash` cover their canonical
//! form (P2) and must never come from a re-serialized struct.
//!
//! Schema: all fields are required and have the types the reference schema
//! gives. Extra fields are **refused**, as the reference's
//! `additionalProperties:false` refuses them: the offchain resolver, the
//! delivery service and every messenger validate profiles against that
//! schema, so a profile with extra fields reaches nobody in the network and
//! accepting it would only let us believe in a user others cannot write to.
//! Keys are only required to be strings here, as in the schema; the typed
//! accessors [`UserProfile::encryption_key`] and [`UserProfile::verify_key`]
//! decode them when they are used.
//!
//! Nothing ties a profile to a *name*: `verify_against_address` checks it
//! against the address the name resolves to, and the profile carries no
//! timestamp, so an older signed profile can be replayed (§4.2).

use alloy_primitives::Address;
use serde_json::{Map, Value};

use crate::canonical;
use crate::crypto::eth::{EthSignature, Wallet, checksum};
use crate::crypto::signing::VerifyKey;
use crate::encoding::b64_decode_array;
use crate::keys::ProfileKeys;
use crate::text_record::{Dm3Hash, ProfileRecord};

/// Why a JSON value is not a valid profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("the {0} must be a JSON object")]
    NotAnObject(&'static str),
    #[error("profile field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("unknown profile field `{0}`: the reference schema allows no extra fields")]
    UnknownField(String),
    #[error("the profile's {0} is not a base64 32-byte key")]
    MalformedKey(&'static str),
}

/// Why a signed profile does not belong to an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileVerifyError {
    #[error("the profile signature is not 0x and 65 hex-encoded bytes")]
    MalformedSignature,
    #[error("no address can be recovered from the profile signature")]
    Unrecoverable,
    /// The signature is not by this address's key. No "actual signer" is
    /// reported: the signed text contains the address, so recovering under a
    /// wrong one yields a meaningless address.
    #[error("the profile is not signed by {0}")]
    NotSignedBy(Address),
}

/// `getProfileCreationMessage(stringify(profile), address)`: the text a wallet
/// signs. Note "wants you register" (no "to"); the address is EIP-55.
pub fn profile_creation_message(profile_canonical: &str, address: &Address) -> String {
    format!(
        "dm3.chat wants you register your dm3 profile with your Ethereum account:\n{}\n\n\
         This is required only once!\n\
         (There is no paid transaction initiated. The signature is used off-chain only.)\n\n\
         URI: https://dm3.chat\nVersion: 1\ndm3 Profile: {profile_canonical}",
        checksum(address)
    )
}

/// The unsigned profile `{publicEncryptionKey, publicSigningKey, deliveryServices}`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserProfile {
    raw: Map<String, Value>,
}

impl UserProfile {
    const FIELDS: [&'static str; 3] = ["publicEncryptionKey", "publicSigningKey", "deliveryServices"];

    /// A profile from base64 public keys and delivery-service ENS names.
    pub fn new<S: Into<String>>(
        public_encryption_key: impl Into<String>,
        public_signing_key: impl Into<String>,
        delivery_services: impl IntoIterator<Item = S>,
    ) -> Self {
        let services = delivery_services.into_iter().map(|name| Value::String(name.into())).collect();
        let mut raw = Map::new();
        raw.insert("publicEncryptionKey".into(), Value::String(public_encryption_key.into()));
        raw.insert("publicSigningKey".into(), Value::String(public_signing_key.into()));
        raw.insert("deliveryServices".into(), Value::Array(services));
        Self { raw }
    }

    /// The profile `createProfile` publishes for derived keys.
    pub fn from_keys<S: Into<String>>(
        keys: &ProfileKeys,
        delivery_services: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::new(keys.encryption.public_b64(), keys.signing.public_b64(), delivery_services)
    }

    /// Checks the reference schema and keeps the object as it is.
    pub fn from_value(value: Value) -> Result<Self, ProfileError> {
        let Value::Object(raw) = value else {
            return Err(ProfileError::NotAnObject("profile"));
        };
        check_only_fields(&raw, &Self::FIELDS)?;
        require_str(&raw, "publicEncryptionKey")?;
        require_str(&raw, "publicSigningKey")?;
        let services = raw.get("deliveryServices").and_then(Value::as_array);
        if !services.is_some_and(|list| list.iter().all(Value::is_string)) {
            return Err(ProfileError::Field("deliveryServices"));
        }
        Ok(Self { raw })
    }

    crate::raw_json::raw_json_object!();

    /// `stringify(profile)`, the text the signature covers.
    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }

    /// The X25519 public key, base64 as published.
    pub fn public_encryption_key(&self) -> &str {
        self.raw.get("publicEncryptionKey").and_then(Value::as_str).unwrap_or_default()
    }

    /// The Ed25519 public key, base64 as published.
    pub fn public_signing_key(&self) -> &str {
        self.raw.get("publicSigningKey").and_then(Value::as_str).unwrap_or_default()
    }

    /// The delivery services' ENS names, in the published order (P13: send to all).
    pub fn delivery_services(&self) -> Vec<&str> {
        let list = self.raw.get("deliveryServices").and_then(Value::as_array);
        list.map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
    }

    /// The decoded X25519 public key messages are encrypted to.
    pub fn encryption_key(&self) -> Result<[u8; 32], ProfileError> {
        b64_decode_array(self.public_encryption_key())
            .map_err(|_| ProfileError::MalformedKey("publicEncryptionKey"))
    }

    /// The Ed25519 key the user's messages and auth challenges are checked with.
    pub fn verify_key(&self) -> Result<VerifyKey, ProfileError> {
        VerifyKey::from_b64(self.public_signing_key())
            .map_err(|_| ProfileError::MalformedKey("publicSigningKey"))
    }

    /// Signs the profile with the wallet whose address it will be checked against.
    pub fn sign(self, wallet: &Wallet) -> SignedUserProfile {
        let message = profile_creation_message(&self.canonical(), &wallet.address());
        let signature = wallet.personal_sign(message.as_bytes()).to_hex();
        let mut raw = Map::new();
        raw.insert("profile".into(), Value::Object(self.raw.clone()));
        raw.insert("signature".into(), Value::String(signature));
        SignedUserProfile { raw, profile: self }
    }
}

/// `{profile, signature}`, as published in `network.dm3.profile`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedUserProfile {
    raw: Map<String, Value>,
    profile: UserProfile,
}

impl SignedUserProfile {
    /// Checks the reference schema (both levels) and keeps the object as it is.
    pub fn from_value(value: Value) -> Result<Self, ProfileError> {
        let Value::Object(raw) = value else {
            return Err(ProfileError::NotAnObject("signed profile"));
        };
        check_only_fields(&raw, &["profile", "signature"])?;
        require_str(&raw, "signature")?;
        let profile = raw.get("profile").cloned().ok_or(ProfileError::Field("profile"))?;
        let profile = UserProfile::from_value(profile)?;
        Ok(Self { raw, profile })
    }

    /// Parses signed-profile JSON text.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let value = serde_json::from_str(text).map_err(|_| ProfileError::NotAnObject("signed profile"))?;
        Self::from_value(value)
    }

    pub fn profile(&self) -> &UserProfile {
        &self.profile
    }

    /// The signature as published (`0x` + 130 hex digits when well formed).
    pub fn signature(&self) -> &str {
        self.raw.get("signature").and_then(Value::as_str).unwrap_or_default()
    }

    crate::raw_json::raw_json_object!();

    /// `stringify(signedUserProfile)`.
    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }

    /// `sha256(stringify(signedUserProfile))`, the hash a profile link carries (§4.3).
    pub fn dm3_hash(&self) -> Dm3Hash {
        Dm3Hash::of_json(&self.to_value())
    }

    /// The inline text record value (`data:application/json,…`, P16).
    pub fn to_text_record(&self) -> String {
        ProfileRecord::inline(&self.to_value())
    }

    /// `checkUserProfileWithAddress`: the profile must be signed by `address`,
    /// the address the user's ENS name resolves to (§4.2). The creation message
    /// is built with `address` and the signer recovered from it.
    pub fn verify_against_address(&self, address: &Address) -> Result<(), ProfileVerifyError> {
        let signature =
            EthSignature::parse(self.signature()).map_err(|_| ProfileVerifyError::MalformedSignature)?;
        let message = profile_creation_message(&self.profile.canonical(), address);
        let signer =
            signature.recover_personal(message.as_bytes()).ok_or(ProfileVerifyError::Unrecoverable)?;
        if signer == *address { Ok(()) } else { Err(ProfileVerifyError::NotSignedBy(*address)) }
    }
}

/// `additionalProperties:false`: the object has no field outside `allowed`.
pub(crate) fn check_only_fields(raw: &Map<String, Value>, allowed: &[&str]) -> Result<(), ProfileError> {
    match raw.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(extra) => Err(ProfileError::UnknownField(extra.clone())),
        None => Ok(()),
    }
}

/// A required string field.
pub(crate) fn require_str(raw: &Map<String, Value>, field: &'static str) -> Result<(), ProfileError> {
    if raw.get(field).is_some_and(Value::is_string) { Ok(()) } else { Err(ProfileError::Field(field)) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn profile_json() -> Value {
        json!({"publicEncryptionKey": "ZW5j", "publicSigningKey": "c2ln", "deliveryServices": ["ds.eth"]})
    }

    #[test]
    fn schema_requires_every_field_with_its_type() {
        assert!(UserProfile::from_value(profile_json()).is_ok());
        for (field, bad) in [("publicEncryptionKey", json!(1)), ("deliveryServices", json!(["a", 1]))] {
            let mut value = profile_json();
            value[field] = bad;
            assert_eq!(UserProfile::from_value(value), Err(ProfileError::Field(field)));
        }
        let mut missing = profile_json();
        missing.as_object_mut().unwrap().remove("publicSigningKey");
        assert_eq!(UserProfile::from_value(missing), Err(ProfileError::Field("publicSigningKey")));
        let mut extra = profile_json();
        extra["deliveryService"] = json!("ds.eth");
        assert_eq!(UserProfile::from_value(extra), Err(ProfileError::UnknownField("deliveryService".into())));
        assert_eq!(UserProfile::from_value(json!([])), Err(ProfileError::NotAnObject("profile")));
    }

    #[test]
    fn signed_profile_refuses_extra_fields_and_bad_profiles() {
        let signed = json!({"profile": profile_json(), "signature": "0x00"});
        assert!(SignedUserProfile::from_value(signed.clone()).is_ok());
        let mut extra = signed.clone();
        extra["nonce"] = json!(1);
        assert_eq!(SignedUserProfile::from_value(extra), Err(ProfileError::UnknownField("nonce".into())));
        let mut no_signature = signed.clone();
        no_signature["signature"] = json!(null);
        assert_eq!(SignedUserProfile::from_value(no_signature), Err(ProfileError::Field("signature")));
        assert_eq!(
            SignedUserProfile::from_value(json!({"profile": "x", "signature": "0x"})),
            Err(ProfileError::NotAnObject("profile"))
        );
    }

    #[test]
    fn signing_and_verifying_round_trip() {
        let wallet = Wallet::generate();
        let other = Wallet::generate();
        let signed = UserProfile::from_value(profile_json()).unwrap().sign(&wallet);
        let parsed = SignedUserProfile::parse(&signed.canonical()).unwrap();
        assert_eq!(parsed.verify_against_address(&wallet.address()), Ok(()));
        assert_eq!(
            parsed.verify_against_address(&other.address()),
            Err(ProfileVerifyError::NotSignedBy(other.address()))
        );
        let forged = SignedUserProfile::from_value(json!({"profile": profile_json(), "signature": "0x1234"}));
        assert_eq!(
            forged.unwrap().verify_against_address(&wallet.address()),
            Err(ProfileVerifyError::MalformedSignature)
        );
    }

    #[test]
    fn keys_are_decoded_only_when_used() {
        let profile = UserProfile::from_value(profile_json()).unwrap();
        assert_eq!(profile.encryption_key(), Err(ProfileError::MalformedKey("publicEncryptionKey")));
        assert_eq!(profile.verify_key().err(), Some(ProfileError::MalformedKey("publicSigningKey")));
        assert_eq!(profile.delivery_services(), ["ds.eth"]);
    }
}
