//! Rows read in the last moment, kept for reuse and then let go.
//!
//! The identity vault (`identities::recent`) and the store's portals (`store::recent_portals`)
//! reuse a row read less than a second ago instead of reading it again: the reads were a good
//! part of a bridged message's cost (docs/benchmarks.md). Both used to keep every read until
//! their map held 10,000 entries and only then start over, so a burst of reads stayed in memory
//! for good although none of it could be served a second later: 10,000 identities read
//! through the admin API kept 17 MiB at rest (docs/benchmarks.md, "Idle memory"). This map
//! lets go of them: [`RecentReads::sweep`] drops what is too old to be served and gives back
//! the map's spare capacity, a full map sweeps before it starts over, and the node sweeps
//! every map on a timer (`housekeeping`), so what a node keeps at rest is at most the reads of
//! the last sweep interval.
//!
//! A read is remembered only if nothing was forgotten since it began ([`ReadTicket`]): a read
//! that races a change (it read the row before the change's commit, and would remember it after
//! the change forgot it) would otherwise serve the old row for a whole TTL, and the node would
//! contradict a change it made itself.
//!
//! Not synchronized: the owner locks it, together with whatever else must change at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Values by key, each with the moment it was read; served for `ttl`, at most `max_entries`.
pub struct RecentReads<K, V> {
    entries: HashMap<K, (V, Instant)>,
    ttl: Duration,
    max_entries: usize,
    /// How many times something was forgotten: a read that began before the last one is stale.
    forgets: u64,
}

/// Taken before a read of the database; the read is remembered only if nothing was forgotten
/// since ([`RecentReads::remember`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTicket(u64);

impl<K, V> RecentReads<K, V> {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self { entries: HashMap::new(), ttl, max_entries: max_entries.max(1), forgets: 0 }
    }

    /// To take before reading what [`remember`](Self::remember) will keep.
    pub fn ticket(&self) -> ReadTicket {
        ReadTicket(self.forgets)
    }

    /// Forgets everything (what was read may have changed, all of it).
    pub fn forget_all(&mut self) {
        self.forgets += 1;
        self.entries.clear();
    }
}

impl<K: Eq + Hash, V: Clone> RecentReads<K, V> {
    /// The value remembered for `key` if it was read less than the TTL ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let (value, read_at) = self.entries.get(key)?;
        (read_at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Remembers `value`, read now, unless something was forgotten since `read` was taken: the
    /// read may predate that change. A full map first lets go of what is too old, and starts
    /// over if that freed nothing: losing fresh reads costs a read each, never a wrong answer.
    pub fn remember(&mut self, key: K, value: V, read: ReadTicket) {
        if read != self.ticket() {
            return;
        }
        if self.entries.len() >= self.max_entries {
            self.sweep();
            if self.entries.len() >= self.max_entries {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (value, Instant::now()));
    }

    pub fn forget(&mut self, key: &K) {
        self.forgets += 1;
        self.entries.remove(key);
    }

    /// Drops every entry too old to be served, and the map's capacity beyond twice what is left.
    pub fn sweep(&mut self) {
        let ttl = self.ttl;
        self.entries.retain(|_, (_, read_at)| read_at.elapsed() < ttl);
        if self.entries.capacity() > 2 * self.entries.len() + 16 {
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Makes the entry of `key` as old as `age`, as if it had been read that long ago.
    #[cfg(test)]
    pub fn age(&mut self, key: &K, age: Duration) {
        if let Some((_, read_at)) = self.entries.get_mut(key)
            && let Some(then) = Instant::now().checked_sub(age)
        {
            *read_at = then;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TTL: Duration = Duration::from_secs(1);

    #[test]
    fn a_read_is_served_within_the_ttl_and_not_after() {
        let mut reads = RecentReads::new(TTL, 10);
        reads.remember("a", 1, reads.ticket());
        assert_eq!(reads.get(&"a"), Some(1));
        reads.age(&"a", TTL);
        assert_eq!(reads.get(&"a"), None);
        reads.forget(&"a");
        assert_eq!(reads.len(), 0);
    }

    #[test]
    fn a_sweep_lets_go_of_a_burst_of_reads_once_they_are_too_old() {
        let mut reads = RecentReads::new(TTL, 100_000);
        for key in 0..10_000 {
            reads.remember(key, vec![0_u8; 64], reads.ticket());
        }
        for key in 0..9_990 {
            reads.age(&key, TTL);
        }
        reads.sweep();
        assert_eq!(reads.len(), 10, "only the fresh reads stay");
        assert!(reads.capacity() <= 64, "the map's memory is given back: capacity {}", reads.capacity());
        assert_eq!(reads.get(&9_995), Some(vec![0_u8; 64]));
    }

    #[test]
    fn a_full_map_keeps_its_fresh_reads_when_old_ones_make_room() {
        let mut reads = RecentReads::new(TTL, 4);
        for key in 0..4 {
            reads.remember(key, key, reads.ticket());
        }
        reads.age(&0, TTL);
        reads.remember(4, 4, reads.ticket());
        assert_eq!(reads.len(), 4);
        assert_eq!(reads.get(&1), Some(1), "a fresh read survives the sweep");
        // All fresh: the map starts over rather than grow past its bound.
        reads.remember(5, 5, reads.ticket());
        assert_eq!(reads.len(), 1);
        assert_eq!(reads.get(&5), Some(5));
    }

    #[test]
    fn a_read_that_began_before_a_change_is_not_remembered_after_it() {
        let mut reads = RecentReads::new(TTL, 10);
        // A read of the old row begins; the change commits and forgets; the read comes back.
        let before_the_change = reads.ticket();
        reads.forget(&"portal");
        reads.remember("portal", "old conversation", before_the_change);
        assert_eq!(reads.get(&"portal"), None, "the old row is read again, not served");
        let before_forgetting_all = reads.ticket();
        reads.forget_all();
        reads.remember("portal", "old conversation", before_forgetting_all);
        assert_eq!(reads.get(&"portal"), None);
        // A read that began after the change is the new row.
        reads.remember("portal", "new conversation", reads.ticket());
        assert_eq!(reads.get(&"portal"), Some("new conversation"));
    }
}
