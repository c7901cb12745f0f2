//! A ghost's cross-signing keys: the master key, and the self-signing key that vouches for the
//! ghost's devices.
//!
//! Clients show a device that its owner's self-signing key did not sign as an unverified
//! stranger, and some refuse to share room keys with it. The bridge is the ghost's only
//! holder, so it makes both keys with the ghost's first device, publishes them
//! (`/keys/device_signing/upload`: the first set needs no user-interactive auth, MSC3967, and
//! an appservice may replace it, MSC4190) and signs the device with the self-signing key
//! (`/keys/signatures/upload`). No user-signing key: ghosts verify nobody.
//!
//! The keys are kept with the Olm account in its sealed pickle ([`super::account`]), so they
//! are saved before they are published, like every other key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vodozemac::Ed25519SecretKey;

use super::signing::{SigningError, object, sign_object};

/// A ghost's master and self-signing keys.
pub struct CrossSigning {
    master: Ed25519SecretKey,
    self_signing: Ed25519SecretKey,
}

/// The keys as the pickle holds them (unpadded base64 seeds).
#[derive(Serialize, Deserialize)]
pub struct CrossSigningPickle {
    master: String,
    self_signing: String,
}

impl Drop for CrossSigningPickle {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.master);
        zeroize::Zeroize::zeroize(&mut self.self_signing);
    }
}

/// What `/keys/device_signing/upload` publishes.
#[derive(Debug, Clone)]
pub struct SigningKeysUpload {
    pub master: Map<String, Value>,
    pub self_signing: Map<String, Value>,
}

impl Default for CrossSigning {
    fn default() -> Self {
        Self::new()
    }
}

impl CrossSigning {
    pub fn new() -> Self {
        Self { master: Ed25519SecretKey::new(), self_signing: Ed25519SecretKey::new() }
    }

    pub fn pickle(&self) -> CrossSigningPickle {
        CrossSigningPickle { master: self.master.to_base64(), self_signing: self.self_signing.to_base64() }
    }

    pub fn from_pickle(pickle: &CrossSigningPickle) -> Result<Self, vodozemac::KeyError> {
        Ok(Self {
            master: Ed25519SecretKey::from_base64(&pickle.master)?,
            self_signing: Ed25519SecretKey::from_base64(&pickle.self_signing)?,
        })
    }

    /// The public master key, unpadded base64 (also its key id after `ed25519:`).
    pub fn master_public(&self) -> String {
        self.master.public_key().to_base64()
    }

    /// The public self-signing key.
    pub fn self_signing_public(&self) -> String {
        self.self_signing.public_key().to_base64()
    }

    /// The master key and the self-signing key signed by it, as `user` publishes them.
    pub fn signing_keys(&self, user: &str) -> Result<SigningKeysUpload, SigningError> {
        let (master, self_signing) = (self.master_public(), self.self_signing_public());
        let master_key = object(json!({
            "user_id": user, "usage": ["master"], "keys": {format!("ed25519:{master}"): master},
        }));
        let mut self_signing_key = object(json!({
            "user_id": user, "usage": ["self_signing"], "keys": {format!("ed25519:{self_signing}"): self_signing},
        }));
        sign_object(&mut self_signing_key, user, &format!("ed25519:{master}"), |m| self.master.sign(m))?;
        Ok(SigningKeysUpload { master: master_key, self_signing: self_signing_key })
    }

    /// `device_keys` (as the device published them) with the self-signing key's signature
    /// added, for `/keys/signatures/upload`.
    pub fn sign_device(
        &self,
        user: &str,
        device_keys: &Map<String, Value>,
    ) -> Result<Map<String, Value>, SigningError> {
        let mut signed = device_keys.clone();
        let key_id = format!("ed25519:{}", self.self_signing_public());
        sign_object(&mut signed, user, &key_id, |m| self.self_signing.sign(m))?;
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use vodozemac::{Ed25519PublicKey, Ed25519Signature};

    use super::super::signing::signed_bytes;
    use super::*;

    fn verify(object: &Map<String, Value>, user: &str, public: &str) {
        let signature = object["signatures"][user][format!("ed25519:{public}")].as_str().unwrap();
        Ed25519PublicKey::from_base64(public)
            .unwrap()
            .verify(
                signed_bytes(object).unwrap().as_bytes(),
                &Ed25519Signature::from_base64(signature).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn the_master_key_vouches_for_the_self_signing_key_which_vouches_for_the_device() {
        let keys = CrossSigning::from_pickle(&CrossSigning::new().pickle()).unwrap();
        let user = "@_dm3_alice.eth:hs";
        let upload = keys.signing_keys(user).unwrap();
        assert_eq!(upload.master["usage"], json!(["master"]));
        verify(&upload.self_signing, user, &keys.master_public());
        let device = object(json!({"user_id": user, "device_id": "DM3X", "keys": {}}));
        verify(&keys.sign_device(user, &device).unwrap(), user, &keys.self_signing_public());
    }
}
