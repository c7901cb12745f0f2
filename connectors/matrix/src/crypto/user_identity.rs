//! A Matrix user's cross-signing identity as `/keys/query` relays it: their master key, and the
//! self-signing key it signed, which signs the devices the user verified.
//!
//! The homeserver relays these keys, so nothing in them is believed unchecked: each key object
//! must name its user and usage and hold exactly one Ed25519 key, and the self-signing key must
//! carry the master key's signature (Matrix signed JSON, [`super::signing`], checked as
//! [`super::recipients`] checks a device's own signature). That still leaves the master key
//! itself as the homeserver says; what keeps a homeserver from swapping it is the pin
//! ([`super::identity_pins`]), not anything here.
//!
//! The two objects are kept beside the user's device list as one JSON text
//! ([`kept_identity`]), so that a device-list change, which outdates the list, outdates them too.

use ruma::UserId;
use serde_json::{Map, Value, json};
use vodozemac::Ed25519PublicKey;

use super::recipients::signed_by;

/// The checked keys of a user's cross-signing identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    pub master: Ed25519PublicKey,
    pub self_signing: Ed25519PublicKey,
}

/// Why a user's published keys are not a usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityFault {
    #[error("no cross-signing keys are published")]
    Missing,
    #[error("the published {0} key is malformed")]
    Malformed(&'static str),
    #[error("the self-signing key does not carry the master key's signature")]
    NotSignedByMaster,
}

impl UserIdentity {
    /// `user`'s identity from the master and self-signing key objects, checked.
    pub fn from_keys(
        user: &UserId,
        master: Option<&Map<String, Value>>,
        self_signing: Option<&Map<String, Value>>,
    ) -> Result<Self, IdentityFault> {
        let (Some(master_object), Some(self_signing_object)) = (master, self_signing) else {
            return Err(IdentityFault::Missing);
        };
        let master = only_key(user, master_object, "master").ok_or(IdentityFault::Malformed("master"))?;
        let self_signing = only_key(user, self_signing_object, "self_signing")
            .ok_or(IdentityFault::Malformed("self-signing"))?;
        if !signed_by(self_signing_object, user, &key_id(master), master) {
            return Err(IdentityFault::NotSignedByMaster);
        }
        Ok(Self { master, self_signing })
    }

    /// `user`'s identity from what [`kept_identity`] made of their keys.
    pub fn from_kept(user: &UserId, kept: Option<&str>) -> Result<Self, IdentityFault> {
        let kept: Option<Map<String, Value>> = kept.and_then(|text| serde_json::from_str(text).ok());
        let object = |name: &str| kept.as_ref().and_then(|k| k.get(name)).and_then(Value::as_object);
        Self::from_keys(user, object("master_key"), object("self_signing_key"))
    }

    /// Whether `user`'s device object carries this identity's self-signing signature: the user
    /// verified the device.
    pub fn vouches_for(&self, user: &UserId, device: &Map<String, Value>) -> bool {
        signed_by(device, user, &key_id(self.self_signing), self.self_signing)
    }

    /// The master key, unpadded base64: what is pinned.
    pub fn master_base64(&self) -> String {
        self.master.to_base64()
    }
}

/// The key objects as kept beside a device list; `None` when the user published neither.
pub fn kept_identity(
    master: Option<&Map<String, Value>>,
    self_signing: Option<&Map<String, Value>>,
) -> Option<String> {
    if master.is_none() && self_signing.is_none() {
        return None;
    }
    Some(json!({"master_key": master, "self_signing_key": self_signing}).to_string())
}

fn key_id(key: Ed25519PublicKey) -> String {
    format!("ed25519:{}", key.to_base64())
}

/// The one Ed25519 key of a cross-signing key object for `usage`, if it names `user`.
fn only_key(user: &UserId, object: &Map<String, Value>, usage: &str) -> Option<Ed25519PublicKey> {
    if object.get("user_id").and_then(Value::as_str) != Some(user.as_str()) {
        return None;
    }
    let usages = object.get("usage").and_then(Value::as_array)?;
    if !usages.iter().any(|u| u.as_str() == Some(usage)) {
        return None;
    }
    let keys = object.get("keys").and_then(Value::as_object)?;
    let [(id, key)] = keys.iter().collect::<Vec<_>>()[..] else { return None };
    let key = key.as_str()?;
    // The key id is the key itself after `ed25519:`.
    if id.strip_prefix("ed25519:") != Some(key) {
        return None;
    }
    Ed25519PublicKey::from_base64(key).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use vodozemac::Ed25519SecretKey;

    use super::*;
    use crate::crypto::signing::{object, sign_object};

    struct Keys {
        master: Ed25519SecretKey,
        self_signing: Ed25519SecretKey,
    }

    impl Keys {
        fn new() -> Self {
            Self { master: Ed25519SecretKey::new(), self_signing: Ed25519SecretKey::new() }
        }
    }

    fn key_object(user: &str, usage: &str, key: &Ed25519SecretKey) -> Map<String, Value> {
        let public = key.public_key().to_base64();
        object(json!({"user_id": user, "usage": [usage], "keys": {format!("ed25519:{public}"): public}}))
    }

    fn published(user: &str, keys: &Keys) -> (Map<String, Value>, Map<String, Value>) {
        let mut master = key_object(user, "master", &keys.master);
        let mut self_signing = key_object(user, "self_signing", &keys.self_signing);
        let master_id = format!("ed25519:{}", keys.master.public_key().to_base64());
        sign_object(&mut self_signing, user, &master_id, |m| keys.master.sign(m)).unwrap();
        sign_object(&mut master, user, &master_id, |m| keys.master.sign(m)).unwrap();
        (master, self_signing)
    }

    fn device(user: &str) -> Map<String, Value> {
        object(json!({"user_id": user, "device_id": "PHONE", "keys": {"ed25519:PHONE": "x"}}))
    }

    #[test]
    fn a_device_signed_by_the_self_signing_key_is_vouched_for_and_another_is_not() {
        let user = UserId::parse("@bob:hs").unwrap();
        let keys = Keys::new();
        let (master, self_signing) = published("@bob:hs", &keys);
        let kept = kept_identity(Some(&master), Some(&self_signing));
        let identity = UserIdentity::from_kept(&user, kept.as_deref()).unwrap();
        assert_eq!(identity.master_base64(), keys.master.public_key().to_base64());

        let mut signed = device("@bob:hs");
        let ssk_id = format!("ed25519:{}", keys.self_signing.public_key().to_base64());
        sign_object(&mut signed, "@bob:hs", &ssk_id, |m| keys.self_signing.sign(m)).unwrap();
        assert!(identity.vouches_for(&user, &signed));
        // Signed by the master key under the self-signing key's id, or by nobody: not verified.
        let mut by_master = device("@bob:hs");
        sign_object(&mut by_master, "@bob:hs", &ssk_id, |m| keys.master.sign(m)).unwrap();
        assert!(!identity.vouches_for(&user, &by_master));
        assert!(!identity.vouches_for(&user, &device("@bob:hs")));
    }

    #[test]
    fn a_self_signing_key_the_master_did_not_sign_is_no_identity() {
        let user = UserId::parse("@bob:hs").unwrap();
        let keys = Keys::new();
        let (master, _) = published("@bob:hs", &keys);
        let (_, foreign) = published("@bob:hs", &Keys::new());
        assert_eq!(
            UserIdentity::from_keys(&user, Some(&master), Some(&foreign)),
            Err(IdentityFault::NotSignedByMaster)
        );
        assert_eq!(UserIdentity::from_keys(&user, None, None), Err(IdentityFault::Missing));
        assert_eq!(UserIdentity::from_kept(&user, None), Err(IdentityFault::Missing));
        // Keys filed under another user.
        let (eves_master, eves_self_signing) = published("@eve:hs", &keys);
        assert_eq!(
            UserIdentity::from_keys(&user, Some(&eves_master), Some(&eves_self_signing)),
            Err(IdentityFault::Malformed("master"))
        );
    }
}
