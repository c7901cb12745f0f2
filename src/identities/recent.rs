//! Identity records read in the last moment, for name resolution.
//!
//! Every DM3 message for a virtual identity resolves the identity's name at least twice (the
//! relay looks up the receiver's address and profile before it accepts the envelope), and each
//! lookup read the identity's row. The answers are what this node's CCIP-read gateway signs as
//! valid for `identities.answer_ttl_secs` (ten minutes by default), so every other resolver may
//! already use an answer that old; reusing a row read less than [`RecentIdentities::TTL`] ago
//! is well within that. So:
//! - only found identities are kept, never an absence: a new identity resolves at once;
//! - a change through this process (create, enable, disable, rotate, delete) forgets the
//!   name at once, so the node never contradicts its own admin API; a change by another
//!   replica or the admin CLI is seen within the TTL;
//! - the engine's own reads (the vault: keys, disabled state) are not served from here.
//!
//! Bounded: when full it starts over, which only costs a read per name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dm3::ens::EnsName;

use super::store::IdentityRecord;

#[derive(Default)]
pub struct RecentIdentities {
    records: Mutex<HashMap<EnsName, (IdentityRecord, Instant)>>,
}

impl RecentIdentities {
    /// How long a read is reused.
    pub const TTL: Duration = Duration::from_secs(1);
    const MAX_ENTRIES: usize = 10_000;

    /// The record of `name` if it was read less than [`Self::TTL`] ago.
    pub fn get(&self, name: &EnsName) -> Option<IdentityRecord> {
        let records = self.records.lock().ok()?;
        let (record, read_at) = records.get(name)?;
        (read_at.elapsed() < Self::TTL).then(|| record.clone())
    }

    pub fn remember(&self, record: &IdentityRecord) {
        if let Ok(mut records) = self.records.lock() {
            if records.len() >= Self::MAX_ENTRIES {
                records.clear();
            }
            records.insert(record.name.clone(), (record.clone(), Instant::now()));
        }
    }

    pub fn forget(&self, name: &EnsName) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::identities::network::NetworkUserId;

    fn record(name: &str, disabled: bool) -> IdentityRecord {
        let user = NetworkUserId::parse(crate::identities::network::Network::Telegram, "42").unwrap();
        let keys = crate::identities::keys::IdentityKeys::generate(1);
        IdentityRecord {
            name: EnsName::parse(name).unwrap(),
            label: "tg-42".to_owned(),
            user,
            address: keys.address(),
            key_version: 1,
            profile: keys.signed_profile(&EnsName::parse("ds.example.eth").unwrap()),
            created_at_ms: 0,
            updated_at_ms: 0,
            disabled_at_ms: disabled.then_some(1),
        }
    }

    #[test]
    fn a_remembered_record_is_served_until_forgotten() {
        let recent = RecentIdentities::default();
        let name = EnsName::parse("tg-42.tg.bridge.eth").unwrap();
        assert!(recent.get(&name).is_none());
        recent.remember(&record("tg-42.tg.bridge.eth", false));
        assert_eq!(recent.get(&name).map(|r| r.disabled_at_ms), Some(None));
        // A change replaces what was remembered once it is read again.
        recent.forget(&name);
        assert!(recent.get(&name).is_none());
        recent.remember(&record("tg-42.tg.bridge.eth", true));
        assert_eq!(recent.get(&name).map(|r| r.disabled_at_ms), Some(Some(1)));
    }
}
