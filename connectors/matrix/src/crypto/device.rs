//! A ghost's device: the ghost and the device id its Olm account answers to.
//!
//! The device id is chosen at random when the account is made and kept beside it, not derived
//! from the ghost: an account lost (a database restored from before it) must come back under a
//! new id, since clients remember a device's keys by its id and treat new keys under an old id
//! as an attack. The `DM3` prefix lets a Matrix user's device list tell the bridge's device
//! from their own.

use ruma::{OwnedDeviceId, OwnedUserId};

/// Letters of a new device id after its prefix: 8 of 32 symbols, 40 bits, so two accounts of
/// one ghost (which only a lost database makes) do not meet.
const RANDOM_LETTERS: usize = 8;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A ghost's Matrix device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GhostDevice {
    pub user: OwnedUserId,
    pub device: OwnedDeviceId,
}

impl GhostDevice {
    /// The key id of the device's Ed25519 key (`ed25519:{device}`), under which it signs.
    pub fn ed25519_key_id(&self) -> String {
        format!("ed25519:{}", self.device)
    }

    /// The ghost and device a call is made as (`?user_id=…&device_id=…`).
    pub fn as_device(&self) -> crate::client::AsDevice<'_> {
        (&self.user, &self.device)
    }

    /// The key id of the device's Curve25519 identity key.
    pub fn curve25519_key_id(&self) -> String {
        format!("curve25519:{}", self.device)
    }
}

/// A new device id, `DM3` and 8 random letters; `None` if the system has no randomness.
pub fn new_device_id() -> Option<OwnedDeviceId> {
    let mut bytes = [0u8; RANDOM_LETTERS];
    getrandom::fill(&mut bytes).ok()?;
    let letters: String = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b % 32)])).collect();
    Some(OwnedDeviceId::from(format!("DM3{letters}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn device_ids_are_prefixed_and_differ() {
        let (a, b) = (new_device_id().unwrap(), new_device_id().unwrap());
        assert!(a.as_str().starts_with("DM3") && a.as_str().len() == 11, "{a}");
        assert_ne!(a, b);
    }
}
