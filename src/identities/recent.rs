//! Identity rows read in the last moment, reused instead of read again.
//!
//! Every DM3 message for or from a virtual identity read the identity's rows several times:
//! the relay resolves the receiver's address and profile before it accepts an envelope, and
//! the engine reads the identity (disabled?) and its key versions to open or sign each
//! message. Each read is a round trip to SQLite, and together they were a good part of a
//! message's cost (docs/benchmarks.md, "Bridge engine"). A row read less than
//! [`RecentIdentities::TTL`] ago is reused instead:
//! - for name resolution this is well within what the gateway promises anyway: its answers
//!   are signed as valid for `identities.answer_ttl_secs` (ten minutes by default), so every
//!   other resolver may already use an answer that old;
//! - for the engine it bounds how long a change made elsewhere takes to reach it: a message
//!   opened or signed within a second after another replica or the admin CLI disabled,
//!   rotated or deleted the identity still uses what was read before. Rotation and deletion
//!   are for keys that may have leaked, which a second does not change, and the published
//!   profile (the gateway's ten-minute answers) lags far more;
//! - only found identities and key versions are kept, never an absence: a new identity
//!   resolves at once;
//! - a change through this process (create, enable, disable, rotate, delete) forgets the
//!   name at once, so the node never contradicts its own admin API; a read that began before
//!   the change is not remembered after it ([`crate::recent_reads::ReadTicket`]).
//!
//! The vault ([`super::vault::IdentityVault`]) owns it, beside its cache of opened keys
//! ([`super::key_cache`]): every read and every change of an identity goes through the vault
//! (the engine's, the admin API's, and name resolution's through [`super::LocalNames`]), so it
//! is the one place that can both serve a recent read and forget it on a change. The store
//! only runs the SQL.
//!
//! Bounded, and let go of once too old to be served (`recent_reads`): what a burst of reads
//! leaves lasts until the node's next sweep.

use std::sync::Mutex;
use std::time::Duration;

use dm3::ens::EnsName;

use crate::recent_reads::{ReadTicket, RecentReads};
use crate::store::{IdentityRecord, SealedKey};

#[derive(Default)]
pub struct RecentIdentities {
    records: Recent<IdentityRecord>,
    keys: Recent<Vec<SealedKey>>,
}

/// Taken before an identity's rows are read ([`RecentIdentities::ticket`]).
#[derive(Debug, Clone, Copy)]
pub struct IdentityReadTicket {
    records: Option<ReadTicket>,
    keys: Option<ReadTicket>,
}

impl RecentIdentities {
    /// How long a read is reused.
    pub const TTL: Duration = Duration::from_secs(1);

    /// The record of `name` if it was read less than [`Self::TTL`] ago.
    pub fn get(&self, name: &EnsName) -> Option<IdentityRecord> {
        self.records.get(name)
    }

    /// To take before reading what [`remember`](Self::remember) or
    /// [`remember_keys`](Self::remember_keys) will keep.
    pub fn ticket(&self) -> IdentityReadTicket {
        IdentityReadTicket { records: self.records.ticket(), keys: self.keys.ticket() }
    }

    /// Remembers `record`, read since `read` was taken, unless a change came in between.
    pub fn remember(&self, record: &IdentityRecord, read: IdentityReadTicket) {
        self.records.remember(&record.name, record.clone(), read.records);
    }

    /// The key versions of `name` if they were read less than [`Self::TTL`] ago.
    pub fn keys(&self, name: &EnsName) -> Option<Vec<SealedKey>> {
        self.keys.get(name)
    }

    /// Remembers the key versions of `name`, read since `read` was taken, unless a change came
    /// in between; none (an unknown name) are not remembered.
    pub fn remember_keys(&self, name: &EnsName, keys: &[SealedKey], read: IdentityReadTicket) {
        if !keys.is_empty() {
            self.keys.remember(name, keys.to_vec(), read.keys);
        }
    }

    /// Forgets everything read of `name` (it changed).
    pub fn forget(&self, name: &EnsName) {
        self.records.forget(name);
        self.keys.forget(name);
    }

    /// Lets go of every read too old to be served (`recent_reads`).
    pub fn sweep(&self) {
        self.records.sweep();
        self.keys.sweep();
    }
}

/// Values per name, each with the moment it was read.
struct Recent<V> {
    reads: Mutex<RecentReads<EnsName, V>>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self { reads: Mutex::new(RecentReads::new(RecentIdentities::TTL, Self::MAX_ENTRIES)) }
    }
}

impl<V> Recent<V> {
    const MAX_ENTRIES: usize = 10_000;
}

impl<V: Clone> Recent<V> {
    fn get(&self, name: &EnsName) -> Option<V> {
        self.reads.lock().ok()?.get(name)
    }

    fn ticket(&self) -> Option<ReadTicket> {
        Some(self.reads.lock().ok()?.ticket())
    }

    fn remember(&self, name: &EnsName, value: V, read: Option<ReadTicket>) {
        if let (Ok(mut reads), Some(read)) = (self.reads.lock(), read) {
            reads.remember(name.clone(), value, read);
        }
    }

    fn forget(&self, name: &EnsName) {
        if let Ok(mut reads) = self.reads.lock() {
            reads.forget(name);
        }
    }

    fn sweep(&self) {
        if let Ok(mut reads) = self.reads.lock() {
            reads.sweep();
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
            custody: crate::store::Custody::Custodial { key_version: 1 },
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
        recent.remember(&record("tg-42.tg.bridge.eth", false), recent.ticket());
        assert_eq!(recent.get(&name).map(|r| r.disabled_at_ms), Some(None));
        // A change replaces what was remembered once it is read again.
        recent.forget(&name);
        assert!(recent.get(&name).is_none());
        recent.remember(&record("tg-42.tg.bridge.eth", true), recent.ticket());
        assert_eq!(recent.get(&name).map(|r| r.disabled_at_ms), Some(Some(1)));
    }

    #[test]
    fn key_versions_are_served_until_the_name_changes() {
        let recent = RecentIdentities::default();
        let name = EnsName::parse("tg-42.tg.bridge.eth").unwrap();
        let key = SealedKey {
            version: 1,
            address: crate::identities::keys::IdentityKeys::generate(1).address(),
            sealed: vec![1, 2, 3],
            created_at_ms: 0,
            retired_at_ms: None,
        };
        recent.remember_keys(&name, &[], recent.ticket());
        assert!(recent.keys(&name).is_none(), "an absence is never remembered");
        recent.remember(&record("tg-42.tg.bridge.eth", false), recent.ticket());
        recent.remember_keys(&name, std::slice::from_ref(&key), recent.ticket());
        assert_eq!(recent.keys(&name), Some(vec![key]));
        // Any change of the name forgets its record and its keys together.
        recent.forget(&name);
        assert!(recent.keys(&name).is_none());
        assert!(recent.get(&name).is_none());
    }

    #[test]
    fn a_record_read_before_a_disable_is_not_remembered_after_it() {
        let recent = RecentIdentities::default();
        let name = EnsName::parse("tg-42.tg.bridge.eth").unwrap();
        // The engine starts reading the enabled row; the admin API disables and forgets it.
        let read_began = recent.ticket();
        recent.forget(&name);
        recent.remember(&record("tg-42.tg.bridge.eth", false), read_began);
        assert!(recent.get(&name).is_none(), "the disabled row is read again, not the old one served");
    }
}
