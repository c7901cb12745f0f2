//! A ghost device's Olm account: its keys, made and counted here, and what `/keys/upload`
//! publishes of them.
//!
//! The account is vodozemac's; this file decides only the Matrix side: how many one-time keys
//! the homeserver should hold (half of what the account can keep, as Element and
//! matrix-sdk-crypto do, so that keys claimed but not yet used are not forgotten when new ones
//! are made), that one fallback key is always published (a device whose one-time keys ran out
//! can still be reached), and the signed JSON each key is published as.
//!
//! Keys are made, then the account is stored, then published, then marked published and
//! stored again ([`crate::crypto::devices`]). A crash between the steps publishes the same keys
//! again, which the homeserver accepts: keys never reach the homeserver before their private
//! halves are durable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vodozemac::olm::{Account, IdentityKeys};

pub use crate::client::KeysUpload;

use super::cross_signing::{CrossSigning, CrossSigningPickle};
use super::device::GhostDevice;
use super::pickle::SecretPickle;
use super::signing::{SigningError, object, sign_object};

/// The algorithms a ghost device speaks, as published in its device keys.
pub const OLM_ALGORITHM: &str = "m.olm.v1.curve25519-aes-sha2";
pub const MEGOLM_ALGORITHM: &str = "m.megolm.v1.aes-sha2";
/// The only one-time key algorithm Matrix uses.
pub const SIGNED_CURVE25519: &str = "signed_curve25519";

/// Why an account could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The stored pickle is not an account (a bug, or a row written by something else).
    #[error("the stored Olm account cannot be read: {0}")]
    Unpickle(String),
    #[error("the Olm account cannot be pickled: {0}")]
    Pickle(String),
}

/// A ghost device's Olm account, with the ghost's cross-signing keys.
pub struct GhostAccount {
    account: Account,
    cross_signing: Option<CrossSigning>,
    /// Whether the cross-signing keys and the device's signature by them are published.
    cross_signed: bool,
}

/// What the sealed pickle holds: vodozemac's account pickle and the cross-signing keys.
#[derive(Serialize, Deserialize)]
struct Pickle {
    account: vodozemac::olm::AccountPickle,
    #[serde(default)]
    cross_signing: Option<CrossSigningPickle>,
    #[serde(default)]
    cross_signed: bool,
}

impl std::fmt::Debug for GhostAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public keys only: the account's private keys never print.
        f.debug_struct("GhostAccount")
            .field("curve25519", &self.account.curve25519_key().to_base64())
            .finish()
    }
}

impl Default for GhostAccount {
    fn default() -> Self {
        Self::new()
    }
}

impl GhostAccount {
    /// A new account with fresh identity keys and no one-time keys yet.
    pub fn new() -> Self {
        Self { account: Account::new(), cross_signing: None, cross_signed: false }
    }

    /// The account `pickle` holds.
    pub fn from_pickle(pickle: &SecretPickle) -> Result<Self, AccountError> {
        let pickle: Pickle =
            serde_json::from_slice(pickle.expose()).map_err(|e| AccountError::Unpickle(e.to_string()))?;
        let cross_signing = pickle
            .cross_signing
            .as_ref()
            .map(CrossSigning::from_pickle)
            .transpose()
            .map_err(|e| AccountError::Unpickle(e.to_string()))?;
        Ok(Self {
            account: Account::from_pickle(pickle.account),
            cross_signing,
            cross_signed: pickle.cross_signed,
        })
    }

    /// The account's pickle, to be sealed by the store.
    pub fn pickle(&self) -> Result<SecretPickle, AccountError> {
        let pickle = Pickle {
            account: self.account.pickle(),
            cross_signing: self.cross_signing.as_ref().map(CrossSigning::pickle),
            cross_signed: self.cross_signed,
        };
        serde_json::to_vec(&pickle)
            .map(SecretPickle::from_bytes)
            .map_err(|e| AccountError::Pickle(e.to_string()))
    }

    /// The ghost's cross-signing keys, made if it had none; `None` once they and the device's
    /// signature by them are published.
    pub fn cross_signing_to_publish(&mut self) -> Option<&CrossSigning> {
        if self.cross_signed {
            return None;
        }
        Some(self.cross_signing.get_or_insert_with(CrossSigning::new))
    }

    /// Whether the cross-signing keys and the device's signature are published.
    pub fn is_cross_signed(&self) -> bool {
        self.cross_signed
    }

    /// Records that the cross-signing keys and the device's signature are published.
    pub fn mark_cross_signed(&mut self) {
        self.cross_signed = true;
    }

    /// The public identity keys.
    pub fn identity_keys(&self) -> IdentityKeys {
        self.account.identity_keys()
    }

    /// How many one-time keys the homeserver should hold for the device.
    pub fn one_time_key_target(&self) -> u64 {
        (self.account.max_number_of_one_time_keys() / 2) as u64
    }

    /// Makes the one-time keys that bring the homeserver's `on_server` up to the target, and
    /// a fallback key unless the homeserver still holds an unused one; `true` if it made any.
    /// Keys made before and not yet published count as on their way, so a retried top-up does
    /// not make them twice.
    pub fn top_up(&mut self, on_server: u64, unused_fallback_on_server: bool) -> bool {
        let unpublished = self.account.one_time_keys().len() as u64;
        // Never more than the account has room for: a count that is stale (sent before our
        // last upload was seen) would otherwise make keys that push out private halves of
        // keys still on the server. The fallback key keeps the device reachable meanwhile.
        let room = (self.account.max_number_of_one_time_keys() as u64)
            .saturating_sub(self.account.stored_one_time_key_count() as u64);
        let wanted =
            self.one_time_key_target().saturating_sub(on_server.saturating_add(unpublished)).min(room);
        let mut made = false;
        if wanted > 0 {
            self.account.generate_one_time_keys(usize::try_from(wanted).unwrap_or(usize::MAX));
            made = true;
        }
        if !unused_fallback_on_server && self.account.fallback_key().is_empty() {
            self.account.generate_fallback_key();
            made = true;
        }
        made
    }

    /// Whether keys were made that the homeserver has not acknowledged yet.
    pub fn has_unpublished_keys(&self) -> bool {
        !self.account.one_time_keys().is_empty() || !self.account.fallback_key().is_empty()
    }

    /// What to publish: the unpublished one-time and fallback keys, and the device keys if
    /// `with_device_keys`, all signed by the device.
    pub fn upload(&self, device: &GhostDevice, with_device_keys: bool) -> Result<KeysUpload, SigningError> {
        let user = device.user.as_str();
        let key_id = device.ed25519_key_id();
        let sign =
            |object: &mut Map<String, Value>| sign_object(object, user, &key_id, |m| self.account.sign(m));
        let mut upload = KeysUpload::default();
        if with_device_keys {
            upload.device_keys = Some(self.device_keys(device)?);
        }
        for (id, key) in self.account.one_time_keys() {
            let mut signed = object(json!({"key": key.to_base64()}));
            sign(&mut signed)?;
            upload
                .one_time_keys
                .insert(format!("{SIGNED_CURVE25519}:{}", id.to_base64()), Value::Object(signed));
        }
        for (id, key) in self.account.fallback_key() {
            let mut signed = object(json!({"key": key.to_base64(), "fallback": true}));
            sign(&mut signed)?;
            upload
                .fallback_keys
                .insert(format!("{SIGNED_CURVE25519}:{}", id.to_base64()), Value::Object(signed));
        }
        Ok(upload)
    }

    /// The device keys, signed by the device (the same object every time: Ed25519 signatures
    /// are deterministic).
    pub fn device_keys(&self, device: &GhostDevice) -> Result<Map<String, Value>, SigningError> {
        let identity = self.identity_keys();
        let key_id = device.ed25519_key_id();
        let mut keys = object(json!({
            "user_id": device.user.as_str(),
            "device_id": device.device.as_str(),
            "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
            "keys": {
                device.curve25519_key_id(): identity.curve25519.to_base64(),
                key_id.clone(): identity.ed25519.to_base64(),
            },
        }));
        sign_object(&mut keys, device.user.as_str(), &key_id, |m| self.account.sign(m))?;
        Ok(keys)
    }

    /// Records that the homeserver holds every key made so far.
    pub fn mark_published(&mut self) {
        self.account.mark_keys_as_published();
    }

    /// The vodozemac account, for the Olm sessions made with it.
    pub fn olm(&mut self) -> &mut Account {
        &mut self.account
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::{OwnedDeviceId, owned_user_id};
    use vodozemac::olm::{OlmMessage, SessionConfig};
    use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

    use super::super::signing::signed_bytes;
    use super::*;

    fn device() -> GhostDevice {
        GhostDevice { user: owned_user_id!("@_dm3_alice.eth:hs"), device: OwnedDeviceId::from("DM3TESTDEV") }
    }

    fn verify(object: &Map<String, Value>, key: Ed25519PublicKey) {
        let signature = object["signatures"]["@_dm3_alice.eth:hs"]["ed25519:DM3TESTDEV"].as_str().unwrap();
        let signature = Ed25519Signature::from_base64(signature).unwrap();
        key.verify(signed_bytes(object).unwrap().as_bytes(), &signature).unwrap();
    }

    #[test]
    fn a_new_device_publishes_signed_device_keys_one_time_keys_and_a_fallback_key() {
        let mut account = GhostAccount::new();
        assert!(account.top_up(0, false));
        let upload = account.upload(&device(), true).unwrap();
        let ed25519 = account.identity_keys().ed25519;
        let device_keys = upload.device_keys.as_ref().unwrap();
        verify(device_keys, ed25519);
        assert_eq!(device_keys["keys"]["ed25519:DM3TESTDEV"], ed25519.to_base64());
        assert_eq!(upload.one_time_keys.len() as u64, account.one_time_key_target());
        assert_eq!(upload.fallback_keys.len(), 1);
        for key in upload.one_time_keys.values().chain(upload.fallback_keys.values()) {
            verify(key.as_object().unwrap(), ed25519);
        }
        account.mark_published();
        assert!(!account.has_unpublished_keys());
        assert!(account.upload(&device(), false).unwrap().is_empty());
    }

    #[test]
    fn top_up_makes_only_what_the_server_lacks() {
        let mut account = GhostAccount::new();
        let target = account.one_time_key_target();
        assert!(!{
            account.top_up(target, true);
            account.has_unpublished_keys()
        });
        account.top_up(target - 7, true);
        assert_eq!(account.upload(&device(), false).unwrap().one_time_keys.len(), 7);
        // A retry before the upload was acknowledged makes nothing more.
        assert!(!account.top_up(target - 7, true));
        account.mark_published();
        // Stale counts cannot make the account forget keys that are on the server.
        for _ in 0..10 {
            account.top_up(0, true);
            account.mark_published();
        }
        assert!(account.olm().stored_one_time_key_count() as u64 <= 2 * account.one_time_key_target());
        // A used fallback key is replaced.
        assert!(account.top_up(target, false));
        assert_eq!(account.upload(&device(), false).unwrap().fallback_keys.len(), 1);
    }

    #[test]
    fn another_device_reaches_the_ghost_through_a_published_key_after_a_pickle_round_trip() {
        let mut account = GhostAccount::new();
        account.top_up(0, false);
        let upload = account.upload(&device(), true).unwrap();
        account.mark_published();
        let mut account = GhostAccount::from_pickle(&account.pickle().unwrap()).unwrap();

        let bob = Account::new();
        let one_time = upload.one_time_keys.values().next().unwrap()["key"].as_str().unwrap();
        let mut session = bob
            .create_outbound_session(
                SessionConfig::version_1(),
                account.identity_keys().curve25519,
                Curve25519PublicKey::from_base64(one_time).unwrap(),
            )
            .unwrap();
        let OlmMessage::PreKey(message) = session.encrypt("hello ghost").unwrap() else {
            panic!("not a pre-key message")
        };
        let inbound = account
            .olm()
            .create_inbound_session(SessionConfig::version_1(), bob.curve25519_key(), &message)
            .unwrap();
        assert_eq!(inbound.plaintext, b"hello ghost");
    }

    #[test]
    fn a_pickle_that_is_not_an_account_is_an_error() {
        assert!(GhostAccount::from_pickle(&SecretPickle::from_bytes(b"{}".to_vec())).is_err());
        let mut account = GhostAccount::new();
        let master = account.cross_signing_to_publish().unwrap().master_public();
        let back = GhostAccount::from_pickle(&account.pickle().unwrap()).unwrap();
        assert!(!back.is_cross_signed());
        assert_eq!(
            back.cross_signing.as_ref().unwrap().master_public(),
            master,
            "the keys survive the pickle"
        );
        assert!(!format!("{:?}", GhostAccount::new()).contains("signing"));
    }
}
