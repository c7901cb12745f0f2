//! A TTL cache in front of any [`NameResolver`].
//!
//! Every submitted envelope needs its sender's profile (docs/protocol.md P15), and resolving one
//! on ENS costs several chain calls and a gateway round trip; senders repeat, so answers are
//! reused for a while. The design is as small as the job:
//! - answers are reused for one TTL, whether positive or "no such record" (a flood of
//!   envelopes from an unregistered name must not become a flood of chain calls);
//! - failures are reused too, for a much shorter `failure_ttl`: a name whose gateways are slow
//!   or broken once cost the node 32 fetches and 140 s per request, and nothing stopped a client
//!   from asking again. A short TTL keeps what a failure cached costs small: an unavailable
//!   gateway is asked again after it, and a forged answer hides a correct one for no longer;
//! - at most `max_entries` answers; inserting into a full cache evicts the oldest entry, which,
//!   with one TTL for all, is also the one closest to expiry;
//! - a hand-written map with an insertion-order index rather than `moka`: the needs are
//!   covered in a page, and `moka` would bring a dozen crates and its own threads.
//!
//! Concurrent misses on the same name each ask the inner resolver; the lock is never held
//! across a lookup. That costs a few duplicate lookups under a burst, which the bounds on each
//! lookup already keep cheap.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use dm3::ens::EnsName;
use dm3_bridge_connector::BoxFuture;

use super::{NameResolver, ResolveError};

/// How long answers are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    /// How long a failed lookup is answered from the cache; zero caches no failure.
    pub failure_ttl: Duration,
    pub max_entries: usize,
}

/// The time source; a parameter so that tests can move time without sleeping.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(EnsName),
    Text(EnsName, String),
}

#[derive(Debug, Clone)]
enum Answer {
    Address(Option<Address>),
    Text(Option<String>),
    Failed(ResolveError),
}

struct Entry {
    answer: Answer,
    expires: Instant,
    seq: u64,
}

/// The entries, and their keys in insertion order (`seq`), oldest first.
#[derive(Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

impl Table {
    fn get(&mut self, key: &Key, now: Instant) -> Option<Answer> {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            return Some(entry.answer.clone());
        }
        let seq = entry.seq;
        self.entries.remove(key);
        self.order.remove(&seq);
        None
    }

    fn insert(&mut self, key: Key, answer: Answer, now: Instant, settings: &CacheSettings) {
        let ttl = if matches!(answer, Answer::Failed(_)) { settings.failure_ttl } else { settings.ttl };
        if ttl.is_zero() {
            return;
        }
        // A TTL too large for the clock (config validation refuses it) caches nothing
        // rather than overflowing.
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.seq);
        }
        // Expired entries first (they are the oldest), then the oldest live ones while full.
        while let Some(entry) = self.order.first_key_value().and_then(|(_, k)| self.entries.get(k)) {
            if entry.expires > now && self.entries.len() < settings.max_entries {
                break;
            }
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(key, Entry { answer, expires, seq });
    }
}

/// A [`NameResolver`] that remembers the answers of another one.
pub struct CachingResolver<R> {
    inner: R,
    settings: CacheSettings,
    clock: Clock,
    table: Mutex<Table>,
}

impl<R: NameResolver> CachingResolver<R> {
    /// A cache over `inner`. A zero TTL or capacity caches nothing.
    pub fn new(inner: R, settings: CacheSettings) -> Self {
        Self::with_clock(inner, settings, Arc::new(Instant::now))
    }

    pub fn with_clock(inner: R, settings: CacheSettings, clock: Clock) -> Self {
        Self { inner, settings, clock, table: Mutex::new(Table::default()) }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// How many answers are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table inconsistent in a way that matters for a
        // cache: keep using it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enabled(&self) -> bool {
        !self.settings.ttl.is_zero() && self.settings.max_entries > 0
    }

    fn lookup(&self, key: &Key) -> Option<Answer> {
        if !self.enabled() {
            return None;
        }
        let now = (self.clock)();
        self.table().get(key, now)
    }

    fn remember(&self, key: Key, answer: Answer) {
        if self.enabled() {
            let now = (self.clock)();
            self.table().insert(key, answer, now, &self.settings);
        }
    }
}

impl<R: NameResolver> NameResolver for CachingResolver<R> {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(async move {
            let key = Key::Address(name.clone());
            match self.lookup(&key) {
                Some(Answer::Address(address)) => return Ok(address),
                Some(Answer::Failed(error)) => return Err(error),
                _ => {}
            }
            match self.inner.address(name).await {
                Ok(address) => {
                    self.remember(key, Answer::Address(address));
                    Ok(address)
                }
                Err(error) => {
                    self.remember(key, Answer::Failed(error.clone()));
                    Err(error)
                }
            }
        })
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(async move {
            let cache_key = Key::Text(name.clone(), key.to_owned());
            match self.lookup(&cache_key) {
                Some(Answer::Text(text)) => return Ok(text),
                Some(Answer::Failed(error)) => return Err(error),
                _ => {}
            }
            match self.inner.text(name, key).await {
                Ok(text) => {
                    self.remember(cache_key, Answer::Text(text.clone()));
                    Ok(text)
                }
                Err(error) => {
                    self.remember(cache_key, Answer::Failed(error.clone()));
                    Err(error)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers `addr` with a fixed address for names starting with "a", nothing for others,
    /// and fails for names starting with "err"; counts every call.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl Counting {
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl NameResolver for Counting {
        fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = if name.as_str().starts_with("err") {
                Err(ResolveError::Unavailable("gateway down".into()))
            } else {
                Ok(name.as_str().starts_with('a').then_some(Address::repeat_byte(0xaa)))
            };
            Box::pin(async move { answer })
        }

        fn text<'a>(
            &'a self,
            name: &'a EnsName,
            key: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = Ok(Some(format!("{name}/{key}")));
            Box::pin(async move { answer })
        }
    }

    struct Fixture {
        cache: CachingResolver<Counting>,
        now: Arc<Mutex<Instant>>,
    }

    impl Fixture {
        fn new(ttl_secs: u64, max_entries: usize) -> Self {
            let now = Arc::new(Mutex::new(Instant::now()));
            let clock_now = now.clone();
            let clock: Clock = Arc::new(move || *clock_now.lock().unwrap());
            let settings = CacheSettings {
                ttl: Duration::from_secs(ttl_secs),
                failure_ttl: Duration::from_secs(10),
                max_entries,
            };
            Self { cache: CachingResolver::with_clock(Counting::default(), settings, clock), now }
        }

        fn advance(&self, secs: u64) {
            *self.now.lock().unwrap() += Duration::from_secs(secs);
        }

        fn calls(&self) -> usize {
            self.cache.inner().calls()
        }

        async fn address(&self, name: &str) -> Result<Option<Address>, ResolveError> {
            self.cache.address(&name.parse().unwrap()).await
        }
    }

    #[tokio::test]
    async fn answers_are_reused_until_the_ttl_ends() {
        let f = Fixture::new(60, 100);
        assert_eq!(f.address("alice.eth").await, Ok(Some(Address::repeat_byte(0xaa))));
        f.advance(59);
        assert_eq!(f.address("alice.eth").await, Ok(Some(Address::repeat_byte(0xaa))));
        assert_eq!(f.calls(), 1);
        f.advance(1);
        assert_eq!(f.address("alice.eth").await, Ok(Some(Address::repeat_byte(0xaa))));
        assert_eq!(f.calls(), 2);
    }

    #[tokio::test]
    async fn no_record_is_cached_too() {
        let f = Fixture::new(60, 100);
        assert_eq!(f.address("bob.eth").await, Ok(None));
        assert_eq!(f.address("bob.eth").await, Ok(None));
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test]
    async fn failures_are_reused_only_for_the_short_failure_ttl() {
        let f = Fixture::new(60, 100);
        let first = f.address("err.eth").await;
        assert!(matches!(first, Err(ResolveError::Unavailable(_))), "{first:?}");
        f.advance(9);
        assert_eq!(f.address("err.eth").await, first, "the same failure, from the cache");
        assert_eq!(f.calls(), 1);
        f.advance(1);
        assert!(f.address("err.eth").await.is_err());
        assert_eq!(f.calls(), 2, "asked again once the failure TTL ended");
    }

    #[tokio::test]
    async fn text_records_are_keyed_by_name_and_key() {
        let f = Fixture::new(60, 100);
        let name: EnsName = "alice.eth".parse().unwrap();
        assert_eq!(f.cache.text(&name, "a").await, Ok(Some("alice.eth/a".into())));
        assert_eq!(f.cache.text(&name, "b").await, Ok(Some("alice.eth/b".into())));
        assert_eq!(f.cache.text(&name, "a").await, Ok(Some("alice.eth/a".into())));
        // addr of the same name is a different entry.
        f.address("alice.eth").await.unwrap();
        assert_eq!(f.calls(), 3);
        assert_eq!(f.cache.len(), 3);
    }

    #[tokio::test]
    async fn a_full_cache_evicts_the_oldest_entry() {
        let f = Fixture::new(60, 2);
        f.address("a1.eth").await.unwrap();
        f.address("a2.eth").await.unwrap();
        f.address("a3.eth").await.unwrap(); // evicts a1
        assert_eq!(f.cache.len(), 2);
        assert_eq!(f.calls(), 3);
        f.address("a2.eth").await.unwrap();
        f.address("a3.eth").await.unwrap();
        assert_eq!(f.calls(), 3);
        f.address("a1.eth").await.unwrap(); // asked again, evicts a2
        assert_eq!(f.calls(), 4);
        f.address("a2.eth").await.unwrap();
        assert_eq!(f.calls(), 5);
        assert_eq!(f.cache.len(), 2);
    }

    #[tokio::test]
    async fn expired_entries_make_room_first() {
        let f = Fixture::new(60, 3);
        f.address("a1.eth").await.unwrap();
        f.advance(30);
        f.address("a2.eth").await.unwrap();
        f.address("a3.eth").await.unwrap();
        f.advance(40); // a1 expired, a2 and a3 live
        f.address("a4.eth").await.unwrap();
        assert_eq!(f.cache.len(), 3);
        f.address("a2.eth").await.unwrap();
        f.address("a3.eth").await.unwrap();
        assert_eq!(f.calls(), 4);
    }

    #[tokio::test]
    async fn a_zero_or_absurd_ttl_caches_nothing() {
        for ttl in [0, u64::MAX] {
            let f = Fixture::new(ttl, 100);
            f.address("alice.eth").await.unwrap();
            f.address("alice.eth").await.unwrap();
            assert_eq!(f.calls(), 2);
            assert!(f.cache.is_empty());
        }
    }
}
