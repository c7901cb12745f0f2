//! Wall-clock time in the protocol's unit: milliseconds since the Unix epoch, on the database's
//! clock.
//!
//! The postmark's `incommingTimestamp`, `messageTTL` and every stored timestamp use it
//! (docs/protocol.md §8, P12). The store takes time as an argument, so this is the one place that
//! reads the clock.
//!
//! Replicas of a node compare times that other replicas wrote: a job's lease and its retry time,
//! a message's TTL, a session's or a challenge's expiry. Read from each host's clock, a replica
//! whose clock runs 30 s ahead takes jobs whose leases another replica holds, and one 30 s behind
//! expires messages early (docs/scaling.md, "Clocks"). So the node keeps one clock, the
//! database's: [`follow`] is told the database's time every few seconds
//! (`crate::database_clock`), and [`now_ms`] carries the last reading forward on the monotonic
//! clock, which no clock step moves. Until the first reading it is this host's clock.
//!
//! Why not `now()` in every statement instead: the store takes time as an argument (its tests
//! drive the queue's time), and the same skew reaches every other time the node writes (a
//! submit's TTL and postmark, sessions, challenges, the admin console's cookie): one correction
//! here covers them all, to within half the round trip of a reading.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A correction smaller than this is not applied, so that readings' own jitter (a few ms of
/// round trip) does not make the clock step back and forth.
const DEAD_BAND_MS: i64 = 25;

/// The node's clock: a monotonic origin and the wall-clock time (ms) it stands for.
struct Clock {
    origin: Instant,
    origin_ms: AtomicI64,
}

impl Clock {
    fn starting_now() -> Self {
        Clock { origin: Instant::now(), origin_ms: AtomicI64::new(system_ms()) }
    }

    fn now_ms(&self) -> i64 {
        self.origin_ms.load(Ordering::Relaxed).saturating_add(elapsed_ms(self.origin, Instant::now()))
    }

    fn follow(&self, reference_ms: i64, asked: Instant, answered: Instant) -> i64 {
        let middle = asked + answered.saturating_duration_since(asked) / 2;
        let origin_ms = reference_ms.saturating_sub(elapsed_ms(self.origin, middle));
        let correction = origin_ms.saturating_sub(self.origin_ms.load(Ordering::Relaxed));
        if correction.abs() < DEAD_BAND_MS {
            return 0;
        }
        self.origin_ms.store(origin_ms, Ordering::Relaxed);
        correction
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::starting_now)
}

/// Now, in milliseconds since the epoch, on the database's clock once it was read.
pub fn now_ms() -> i64 {
    clock().now_ms()
}

/// This host's own clock, in milliseconds since the epoch (0 if it is before 1970): for
/// comparing with the database's, never for a stored time.
pub fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A reading of the reference clock: it said `reference_ms` between `asked` and `answered`.
/// [`now_ms`] follows it from now on (taking the reading to stand for the middle of that
/// span), unless it is within [`DEAD_BAND_MS`] of it already. Answers the correction applied
/// (0 if none), in ms.
pub fn follow(reference_ms: i64, asked: Instant, answered: Instant) -> i64 {
    clock().follow(reference_ms, asked, answered)
}

/// Milliseconds from `origin` to `at` (negative if `at` is before it).
fn elapsed_ms(origin: Instant, at: Instant) -> i64 {
    match at.checked_duration_since(origin) {
        Some(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        None => -i64::try_from(origin.duration_since(at).as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_reference_and_ignores_jitter() {
        let clock = Clock::starting_now();
        assert!((clock.now_ms() - system_ms()).abs() < 1_000, "the host's clock until a reading");
        let start = Instant::now();
        let correction = clock.follow(system_ms() + 30_000, start, Instant::now());
        assert!((29_000..=31_000).contains(&correction), "{correction}");
        assert!((clock.now_ms() - (system_ms() + 30_000)).abs() < 1_000);
        let reading = clock.now_ms();
        assert_eq!(clock.follow(reading + 10, Instant::now(), Instant::now()), 0, "within the dead band");
        let back = clock.follow(system_ms(), Instant::now(), Instant::now());
        assert!((-31_000..=-29_000).contains(&back), "{back}");
        assert!((clock.now_ms() - system_ms()).abs() < 1_000);
    }
}
