//! A sender's device believed only if they cross-signed it (`[matrix] sender_trust =
//! "cross-signed"`, docs/engine.md, "Encrypted rooms: plan").
//!
//! Listed is not enough: the homeserver lists every device that logged in to the account, so a
//! stolen access token that logs in a new device would speak as its user. A device the user
//! verified carries their self-signing key's signature, and that key carries their master
//! key's ([`super::user_identity`]); the master key is pinned on first sight
//! ([`super::identity_pins`]), so a homeserver that swaps it later cannot vouch for a device
//! of its own either.
//!
//! The keys come from the user's kept list, which keeps their cross-signing keys beside their
//! devices under one generation ([`super::device_lists`]): a device-list change (Synapse
//! announces a new cross-signing key as one) outdates both. As the listed check asks once more
//! when the device is missing, a device the kept keys do not vouch for is asked for once more
//! before it is refused: the user may have verified it since the list was kept.

use std::sync::Arc;

use ruma::{OwnedDeviceId, UserId};
use serde_json::{Map, Value};

use super::device_list_store::DeviceList;
use super::device_lists::listed_in;
use super::devices::{DeviceError, GhostDevices};
use super::identity_pins::{IdentityPins, TrustRefusal};
use super::recipients::Recipient;
use super::user_identity::{IdentityFault, UserIdentity};

/// Why a sender's device is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// The sender's device list does not show it.
    Unlisted,
    /// Listed, but the sender's self-signing key did not sign it.
    NotCrossSigned(OwnedDeviceId),
    /// The sender has no usable cross-signing identity.
    NoIdentity(IdentityFault),
    /// The sender's master key is not the one pinned when the bridge first saw them.
    IdentityChanged,
}

impl Untrusted {
    /// How the service counts it; an unlisted device is refused under `listed` too, and is not
    /// counted here.
    pub fn refusal(&self) -> Option<TrustRefusal> {
        match self {
            Untrusted::Unlisted => None,
            Untrusted::NotCrossSigned(_) => Some(TrustRefusal::NotCrossSigned),
            Untrusted::NoIdentity(_) => Some(TrustRefusal::NoIdentity),
            Untrusted::IdentityChanged => Some(TrustRefusal::IdentityChanged),
        }
    }
}

impl GhostDevices {
    /// Pins senders' master keys in `pins`; the first set stays.
    pub fn set_identity_pins(&self, pins: Arc<dyn IdentityPins>) {
        if self.identity_pins.set(pins).is_err() {
            tracing::warn!("the identity pins were set twice; the first stays");
        }
    }

    /// `user`'s device whose Curve25519 key is `curve25519`, if `user` cross-signed it with the
    /// identity pinned for them (pinned now if none was): from the kept list, asked for again
    /// once if that does not vouch for it. A refusal is told to the pins' owner for counting.
    pub async fn cross_signed_device(
        &self,
        ghost: &UserId,
        user: &UserId,
        curve25519: &str,
    ) -> Result<Result<Recipient, Untrusted>, DeviceError> {
        let pins = self.identity_pins.get().ok_or(DeviceError::NoPins)?;
        let verdict = self
            .judged_list(ghost, user, |lists| {
                Box::pin(async move { judge(pins.as_ref(), user, curve25519, &lists).await })
            })
            .await?;
        if let Err(reason) = verdict.as_ref().map_err(Untrusted::refusal)
            && let Some(reason) = reason
        {
            pins.refused(reason);
        }
        Ok(verdict)
    }
}

/// Whether `lists` show `user`'s device `curve25519` signed by their identity, and that
/// identity is the pinned one.
async fn judge(
    pins: &dyn IdentityPins,
    user: &UserId,
    curve25519: &str,
    lists: &[DeviceList],
) -> Result<Result<Recipient, Untrusted>, DeviceError> {
    let Some((list, known, recipient)) = listed_in(lists, user, curve25519) else {
        return Ok(Err(Untrusted::Unlisted));
    };
    let identity = match UserIdentity::from_kept(user, list.identity.as_deref()) {
        Ok(identity) => identity,
        Err(fault) => return Ok(Err(Untrusted::NoIdentity(fault))),
    };
    // The object was checked (its own signature) before it was kept, so it parses.
    let object: Map<String, Value> = serde_json::from_str(&known.keys_json).unwrap_or_default();
    if !identity.vouches_for(user, &object) {
        return Ok(Err(Untrusted::NotCrossSigned(known.device.clone())));
    }
    let master = identity.master_base64();
    let pinned = pins.pin(user, &master).await?;
    if pinned != master {
        tracing::warn!(%user, pinned, published = master, "a sender's master key is not the pinned one");
        return Ok(Err(Untrusted::IdentityChanged));
    }
    Ok(Ok(recipient))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Mutex;

    use dm3_bridge_connector::BoxFuture;
    use serde_json::json;
    use vodozemac::{Curve25519SecretKey, Ed25519SecretKey};

    use super::*;
    use crate::crypto::device_list_store::KnownDevice;
    use crate::crypto::signing::{object, sign_object};
    use crate::crypto::store::OlmStoreError;
    use crate::crypto::user_identity::kept_identity;

    /// Pins in memory, and the refusals told.
    #[derive(Default)]
    struct Pins {
        pinned: Mutex<Option<String>>,
        refused: Mutex<Vec<TrustRefusal>>,
    }

    impl IdentityPins for Pins {
        fn pin<'a>(&'a self, _: &'a UserId, master: &'a str) -> BoxFuture<'a, Result<String, OlmStoreError>> {
            Box::pin(async move {
                Ok(self.pinned.lock().unwrap().get_or_insert_with(|| master.to_owned()).clone())
            })
        }

        fn refused(&self, reason: TrustRefusal) {
            self.refused.lock().unwrap().push(reason);
        }
    }

    /// bob's identity, and his list with one device, `signed` by his self-signing key or not.
    fn bobs_list(
        master: &Ed25519SecretKey,
        self_signing: &Ed25519SecretKey,
        signed: bool,
    ) -> (DeviceList, String) {
        let bob = "@bob:hs";
        let key = |key: &Ed25519SecretKey, usage: &str| {
            let public = key.public_key().to_base64();
            object(json!({"user_id": bob, "usage": [usage], "keys": {format!("ed25519:{public}"): public}}))
        };
        let master_id = format!("ed25519:{}", master.public_key().to_base64());
        let mut ssk = key(self_signing, "self_signing");
        sign_object(&mut ssk, bob, &master_id, |m| master.sign(m)).unwrap();
        let device_key = Ed25519SecretKey::new();
        let curve = Curve25519SecretKey::new();
        let curve = vodozemac::Curve25519PublicKey::from(&curve).to_base64();
        let ed = device_key.public_key().to_base64();
        let mut device = object(json!({"user_id": bob, "device_id": "PHONE",
            "keys": {"curve25519:PHONE": curve, "ed25519:PHONE": ed}}));
        sign_object(&mut device, bob, "ed25519:PHONE", |m| device_key.sign(m)).unwrap();
        if signed {
            let ssk_id = format!("ed25519:{}", self_signing.public_key().to_base64());
            sign_object(&mut device, bob, &ssk_id, |m| self_signing.sign(m)).unwrap();
        }
        let known = KnownDevice {
            device: "PHONE".into(),
            curve25519: curve.clone(),
            ed25519: ed,
            keys_json: serde_json::Value::Object(device).to_string(),
        };
        let list = DeviceList {
            user: UserId::parse(bob).unwrap(),
            devices: vec![known],
            identity: kept_identity(Some(&key(master, "master")), Some(&ssk)),
        };
        (list, curve)
    }

    #[tokio::test]
    async fn a_cross_signed_device_pins_the_master_key_and_a_new_master_key_is_refused() {
        let bob = UserId::parse("@bob:hs").unwrap();
        let pins = Pins::default();
        let (master, self_signing) = (Ed25519SecretKey::new(), Ed25519SecretKey::new());
        let (list, curve) = bobs_list(&master, &self_signing, true);
        let trusted = judge(&pins, &bob, &curve, &[list]).await.unwrap();
        assert_eq!(trusted.map(|device| device.device), Ok("PHONE".into()));
        assert_eq!(pins.pinned.lock().unwrap().clone(), Some(master.public_key().to_base64()));

        // The homeserver publishes a new master key that vouches for the same device.
        let (list, curve) = bobs_list(&Ed25519SecretKey::new(), &Ed25519SecretKey::new(), true);
        assert_eq!(judge(&pins, &bob, &curve, &[list]).await.unwrap(), Err(Untrusted::IdentityChanged));
        assert_eq!(
            pins.pinned.lock().unwrap().clone(),
            Some(master.public_key().to_base64()),
            "not overwritten"
        );
    }

    #[tokio::test]
    async fn an_unsigned_device_or_a_user_without_identity_is_refused_and_pins_nothing() {
        let bob = UserId::parse("@bob:hs").unwrap();
        let pins = Pins::default();
        let (list, curve) = bobs_list(&Ed25519SecretKey::new(), &Ed25519SecretKey::new(), false);
        let verdict = judge(&pins, &bob, &curve, std::slice::from_ref(&list)).await.unwrap();
        assert_eq!(verdict, Err(Untrusted::NotCrossSigned("PHONE".into())));
        let without = DeviceList { identity: None, ..list.clone() };
        let verdict = judge(&pins, &bob, &curve, &[without]).await.unwrap();
        assert_eq!(verdict, Err(Untrusted::NoIdentity(IdentityFault::Missing)));
        assert_eq!(judge(&pins, &bob, "another curve key", &[list]).await.unwrap(), Err(Untrusted::Unlisted));
        assert_eq!(*pins.pinned.lock().unwrap(), None);
    }
}
