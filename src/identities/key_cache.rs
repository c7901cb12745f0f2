//! Opened identity keys, kept in memory per (identity, key version, sealed bytes).
//!
//! Opening a key version derives its X25519 and Ed25519 keys from a secp256k1 signature of the
//! wallet (docs/protocol.md §3.1): milliseconds of curve arithmetic that the engine used to repeat
//! for every message it opened or signed. A key version never changes once sealed, so the
//! opened form is cached. The entry is keyed by the sealed bytes too: a deleted and recreated
//! identity, or a re-sealed row, never gets another row's keys; the store is still read on
//! every use, so a deleted identity stops opening at once. The secrets stay in their own
//! zeroize-on-drop types and are dropped (and wiped) when evicted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use dm3::ens::EnsName;

use super::keys::{IdentityKeys, OpenKeysError};
use crate::vault::MasterKey;

/// Most key versions kept; when full, the cache starts over (a rare full re-derivation is
/// cheaper than tracking recency on every message).
const MAX_ENTRIES: usize = 4_096;

/// An identity's name and key version.
type KeyVersion = (String, u32);

/// The sealed bytes an entry was opened from, and what they opened to.
type Opened = (Vec<u8>, IdentityKeys);

#[derive(Default)]
pub struct KeyCache {
    opened: Mutex<HashMap<KeyVersion, Opened>>,
}

impl KeyCache {
    /// The opened keys of `sealed`, from the cache or opened (and cached) now.
    pub fn open(
        &self,
        master: &MasterKey,
        name: &EnsName,
        version: u32,
        sealed: &[u8],
    ) -> Result<IdentityKeys, OpenKeysError> {
        let key = (name.to_string(), version);
        {
            let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((cached_sealed, keys)) = opened.get(&key)
                && cached_sealed.as_slice() == sealed
            {
                return Ok(keys.clone());
            }
        }
        let keys = IdentityKeys::open(master, name, version, sealed)?;
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if opened.len() >= MAX_ENTRIES {
            opened.clear();
        }
        opened.insert(key, (sealed.to_vec(), keys.clone()));
        Ok(keys)
    }

    /// Drops every cached version of `name` (its keys were deleted).
    pub fn forget(&self, name: &EnsName) {
        let name = name.to_string();
        self.opened.lock().unwrap_or_else(PoisonError::into_inner).retain(|(cached, _), _| *cached != name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cached_version_opens_to_the_same_keys_and_other_bytes_are_opened_again() {
        let master = MasterKey::generate().unwrap();
        let alice = EnsName::parse("tg-1.tg.bridge.eth").unwrap();
        let first = IdentityKeys::generate(1);
        let sealed = first.seal(&master, &alice).unwrap();
        let cache = KeyCache::default();
        let opened = cache.open(&master, &alice, 1, &sealed).unwrap();
        let again = cache.open(&master, &alice, 1, &sealed).unwrap();
        assert_eq!(opened.address(), first.address());
        assert_eq!(again.address(), first.address());
        // The same identity and version recreated with another wallet: not the cached keys.
        let second = IdentityKeys::generate(1);
        let resealed = second.seal(&master, &alice).unwrap();
        assert_eq!(cache.open(&master, &alice, 1, &resealed).unwrap().address(), second.address());
        // A wrong master key still fails even when the bytes are cached under another key.
        let other = MasterKey::generate().unwrap();
        let tampered = first.seal(&other, &alice).unwrap();
        assert!(cache.open(&master, &alice, 1, &tampered).is_err());
        cache.forget(&alice);
        assert!(cache.opened.lock().unwrap().is_empty());
    }
}
