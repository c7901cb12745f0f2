//! Retry delays: exponential, capped, with jitter, and never sooner than the network asked.
//!
//! Exponential so that a network that is down is not hammered; capped at a minute so that a
//! conversation resumes within a minute of the network's return, however long the outage (the
//! cap was 600 s: after Synapse was down for two minutes a conversation's next attempt could
//! come two minutes after it was back; each stuck conversation costs one attempt a minute,
//! docs/operations.md, "Faults"); jittered so that the jobs that failed together
//! (a network outage fails every conversation at once) do not retry together. "Equal jitter":
//! half the delay is fixed, half random, so a retry is never much earlier than planned.
//!
//! A `retry_after` from the network (HTTP 429, Telegram's `retry_after`, Matrix's
//! `retry_after_ms`) is a floor; it is bounded too, because it comes from outside.

use std::time::Duration;

/// The retry policy of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first attempt (before jitter).
    pub base: Duration,
    /// The longest delay backoff alone produces.
    pub max: Duration,
    /// The longest `retry_after` honoured; a network asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(3_600),
        }
    }
}

impl Backoff {
    /// The delay before the run after `attempt` (1 for the first run), given a `jitter` in
    /// `[0, 1]` and the network's `retry_after`: `max(backoff, retry_after)`, both bounded.
    pub fn delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let planned = self.base.saturating_mul(1u32 << exponent.min(31)).min(self.max);
        let half = planned / 2;
        let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(after) => jittered.max(after.min(self.max_retry_after)),
            None => jittered,
        }
    }

    /// [`delay`](Self::delay) with a random jitter.
    pub fn random_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, random_unit(), retry_after)
    }
}

/// A number in `[0, 1]` from the OS generator; 0.5 if it fails (jitter is not security).
fn random_unit() -> f64 {
    match getrandom::u32() {
        Ok(n) => f64::from(n) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        max_retry_after: Duration::from_secs(300),
    };

    #[test]
    fn doubles_per_attempt_until_the_cap() {
        let full = |attempt| POLICY.delay(attempt, 1.0, None);
        assert_eq!(full(1), Duration::from_secs(1));
        assert_eq!(full(2), Duration::from_secs(2));
        assert_eq!(full(3), Duration::from_secs(4));
        assert_eq!(full(7), Duration::from_secs(60));
        assert_eq!(full(u32::MAX), Duration::from_secs(60));
        assert_eq!(POLICY.delay(0, 1.0, None), Duration::from_secs(1));
    }

    #[test]
    fn jitter_takes_at_most_half() {
        assert_eq!(POLICY.delay(3, 0.0, None), Duration::from_secs(2));
        assert_eq!(POLICY.delay(3, 0.5, None), Duration::from_secs(3));
        for _ in 0..100 {
            let d = POLICY.random_delay(3, None);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_a_bounded_floor() {
        let after = Some(Duration::from_secs(30));
        assert_eq!(POLICY.delay(1, 1.0, after), Duration::from_secs(30));
        assert_eq!(POLICY.delay(9, 1.0, Some(Duration::from_millis(10))), Duration::from_secs(60));
        assert_eq!(POLICY.delay(1, 0.0, Some(Duration::from_secs(86_400))), Duration::from_secs(300));
    }
}
