//! Wall-clock time in the protocol's unit: milliseconds since the Unix epoch.
//!
//! The postmark's `incommingTimestamp`, `messageTTL` and every stored timestamp use it
//! (docs/protocol.md §8, P12). The store takes time as an argument, so this is the one place that
//! reads the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
