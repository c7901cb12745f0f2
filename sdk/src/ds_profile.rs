//! Delivery-service profiles and keys (docs/protocol.md §3.2, §4.4).
//!
//! A delivery service publishes `{publicEncryptionKey, publicSigningKey, url}`
//! in the ENS text record `network.dm3.deliveryService` of its name. The
//! profile is **not signed**: trust comes from ENS ownership. Senders encrypt
//! `deliveryInformation` to its X25519 key, receivers check postmarks with its
//! Ed25519 key, and `url` is the base of every HTTP call.
//!
//! The object is kept as parsed, like the signed objects, so that a `dm3Hash`
//! link check (§4.3) hashes what was fetched. The schema is the reference's:
//! three required strings and no other field (`additionalProperties:false`).
//! Publishers write the record with insertion-order `JSON.stringify` (setup
//! helper) or as bare JSON (CLI); [`crate::text_record::ProfileRecord`] reads
//! all of them, and we always publish the canonical `data:` form.
//!
//! [`DeliveryServiceKeys`] holds the service's two key pairs as the reference
//! reads them from its environment, and derives the secret the reference uses
//! for its JWTs.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::canonical;
use crate::crypto::kx::KxKeyPair;
use crate::crypto::signing::{SigningKeyPair, VerifyKey};
use crate::encoding::b64_decode_array;
use crate::hash::sha256;
use crate::profile::{ProfileError, check_only_fields, require_str};
use crate::text_record::ProfileRecord;

/// `{publicEncryptionKey, publicSigningKey, url}` of a delivery service.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryServiceProfile {
    raw: Map<String, Value>,
}

impl DeliveryServiceProfile {
    const FIELDS: [&'static str; 3] = ["publicEncryptionKey", "publicSigningKey", "url"];

    pub fn new(
        public_encryption_key: impl Into<String>,
        public_signing_key: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        let mut raw = Map::new();
        raw.insert("publicEncryptionKey".into(), Value::String(public_encryption_key.into()));
        raw.insert("publicSigningKey".into(), Value::String(public_signing_key.into()));
        raw.insert("url".into(), Value::String(url.into()));
        Self { raw }
    }

    /// Checks the reference schema and keeps the object as it is.
    pub fn from_value(value: Value) -> Result<Self, ProfileError> {
        let Value::Object(raw) = value else {
            return Err(ProfileError::NotAnObject("delivery-service profile"));
        };
        check_only_fields(&raw, &Self::FIELDS)?;
        for field in Self::FIELDS {
            require_str(&raw, field)?;
        }
        Ok(Self { raw })
    }

    crate::raw_json::raw_json_object!();

    pub fn canonical(&self) -> String {
        canonical::stringify_object(&self.raw)
    }

    /// The canonical `data:` text record value (§4.4: always publish this form).
    pub fn to_text_record(&self) -> String {
        ProfileRecord::inline(&self.to_value())
    }

    fn field(&self, name: &str) -> &str {
        self.raw.get(name).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn public_encryption_key(&self) -> &str {
        self.field("publicEncryptionKey")
    }

    pub fn public_signing_key(&self) -> &str {
        self.field("publicSigningKey")
    }

    /// The base URL of the service's HTTP API (§9).
    pub fn url(&self) -> &str {
        self.field("url")
    }

    /// The X25519 key `deliveryInformation` is encrypted to.
    pub fn encryption_key(&self) -> Result<[u8; 32], ProfileError> {
        b64_decode_array(self.public_encryption_key())
            .map_err(|_| ProfileError::MalformedKey("publicEncryptionKey"))
    }

    /// The Ed25519 key its postmarks are checked with.
    pub fn verify_key(&self) -> Result<VerifyKey, ProfileError> {
        VerifyKey::from_b64(self.public_signing_key())
            .map_err(|_| ProfileError::MalformedKey("publicSigningKey"))
    }
}

/// Why the delivery-service keys from the environment are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsKeysError {
    #[error("{0} is not a valid base64 key")]
    Malformed(&'static str),
    #[error("{0} does not belong to the matching private key")]
    PublicKeyMismatch(&'static str),
}

/// A delivery service's X25519 and Ed25519 key pairs.
#[derive(Debug, Clone)]
pub struct DeliveryServiceKeys {
    pub encryption: KxKeyPair,
    pub signing: SigningKeyPair,
}

impl DeliveryServiceKeys {
    /// Key pairs from two 32-byte seeds (`crypto_kx_seed_keypair`, `crypto_sign_seed_keypair`).
    pub fn from_seeds(encryption_seed: &[u8; 32], signing_seed: &[u8; 32]) -> Self {
        Self {
            encryption: KxKeyPair::from_seed(encryption_seed),
            signing: SigningKeyPair::from_seed(signing_seed),
        }
    }

    /// `readKeysFromEnv`: `ENCRYPTION_PUBLIC_KEY`, `ENCRYPTION_PRIVATE_KEY`,
    /// `SIGNING_PUBLIC_KEY`, `SIGNING_PRIVATE_KEY` (base64; the signing secret is
    /// libsodium's 64 bytes). The reference trusts the public halves as given;
    /// we check they belong to the private keys, since a mismatch would make
    /// every peer fail to decrypt or verify.
    pub fn from_env(
        encryption_public: &str,
        encryption_private: &str,
        signing_public: &str,
        signing_private: &str,
    ) -> Result<Self, DsKeysError> {
        let encryption = KxKeyPair::from_secret_b64(encryption_private)
            .map_err(|_| DsKeysError::Malformed("ENCRYPTION_PRIVATE_KEY"))?;
        let signing = SigningKeyPair::from_secret_b64(signing_private)
            .map_err(|_| DsKeysError::Malformed("SIGNING_PRIVATE_KEY"))?;
        let encryption_public: [u8; 32] = b64_decode_array(encryption_public)
            .map_err(|_| DsKeysError::Malformed("ENCRYPTION_PUBLIC_KEY"))?;
        let signing_public: [u8; 32] =
            b64_decode_array(signing_public).map_err(|_| DsKeysError::Malformed("SIGNING_PUBLIC_KEY"))?;
        if encryption_public != *encryption.public() {
            return Err(DsKeysError::PublicKeyMismatch("ENCRYPTION_PUBLIC_KEY"));
        }
        if signing_public != signing.public() {
            return Err(DsKeysError::PublicKeyMismatch("SIGNING_PUBLIC_KEY"));
        }
        Ok(Self { encryption, signing })
    }

    /// The profile to publish for these keys.
    pub fn profile(&self, url: impl Into<String>) -> DeliveryServiceProfile {
        DeliveryServiceProfile::new(self.encryption.public_b64(), self.signing.public_b64(), url)
    }

    /// The reference's JWT `serverSecret`: `sha256` over the 64 decoded bytes of
    /// `SIGNING_PRIVATE_KEY`, as `0x`-hex. `jsonwebtoken` uses the UTF-8 of this
    /// *string* as the HMAC key (§3.2). Only the issuer needs it.
    pub fn jwt_server_secret(&self) -> Zeroizing<String> {
        let digest = Zeroizing::new(sha256(self.signing.libsodium_secret().as_ref()));
        Zeroizing::new(crate::encoding::hex_encode(digest.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn schema_is_three_strings_and_nothing_else() {
        let good = json!({"url": "https://h/ds", "publicSigningKey": "a", "publicEncryptionKey": "b"});
        let profile = DeliveryServiceProfile::from_value(good.clone()).unwrap();
        assert_eq!(profile.url(), "https://h/ds");
        let mut extra = good.clone();
        extra["name"] = json!("x");
        assert_eq!(DeliveryServiceProfile::from_value(extra), Err(ProfileError::UnknownField("name".into())));
        let mut wrong = good;
        wrong["url"] = json!(7);
        assert_eq!(DeliveryServiceProfile::from_value(wrong), Err(ProfileError::Field("url")));
    }

    #[test]
    fn env_keys_must_match_their_private_halves() {
        let keys = DeliveryServiceKeys::from_seeds(&[1; 32], &[2; 32]);
        let (enc_pub, enc_priv) = (keys.encryption.public_b64(), keys.encryption.secret_b64());
        let (sign_pub, sign_priv) = (keys.signing.public_b64(), keys.signing.secret_b64());
        assert!(DeliveryServiceKeys::from_env(&enc_pub, &enc_priv, &sign_pub, &sign_priv).is_ok());
        assert_eq!(
            DeliveryServiceKeys::from_env(&sign_pub, &enc_priv, &sign_pub, &sign_priv).err(),
            Some(DsKeysError::PublicKeyMismatch("ENCRYPTION_PUBLIC_KEY"))
        );
        assert_eq!(
            DeliveryServiceKeys::from_env(&enc_pub, &enc_priv, &sign_pub, "AAAA").err(),
            Some(DsKeysError::Malformed("SIGNING_PRIVATE_KEY"))
        );
    }
}
