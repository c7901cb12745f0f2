//! The gate of the catch-up ([`super::catch_up`]): at most one catch-up in flight per ghost
//! device, and none within [`SPACING`] of the last one started. Every held event of a room
//! misses its key on each retry; without the gate each would sync the device. In memory: when it
//! holds [`REMEMBERED`] devices, those past their spacing are forgotten (losing an entry costs one
//! sync more).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ruma::{OwnedUserId, UserId};

/// The least time between two catch-ups of one device.
pub const SPACING: Duration = Duration::from_secs(3);
/// Devices remembered for the spacing at most; older entries are forgotten first.
const REMEMBERED: usize = 4096;

/// When each device's last catch-up started, and which are in flight.
#[derive(Debug, Default)]
pub struct CatchUps {
    started: Mutex<HashMap<OwnedUserId, (Instant, bool)>>,
}

impl CatchUps {
    /// Whether a catch-up of `ghost` may start now; if so it is marked in flight.
    pub(super) fn begin(&self, ghost: &UserId) -> bool {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((at, in_flight)) = started.get(ghost)
            && (*in_flight || now.duration_since(*at) < SPACING)
        {
            return false;
        }
        if started.len() >= REMEMBERED {
            started.retain(|_, (at, in_flight)| *in_flight || now.duration_since(*at) < SPACING);
        }
        started.insert(ghost.to_owned(), (now, true));
        true
    }

    pub(super) fn end(&self, ghost: &UserId) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, in_flight)) = started.get_mut(ghost) {
            *in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ruma::user_id;

    use super::*;

    #[test]
    fn one_catch_up_at_a_time_per_device_and_none_again_within_the_spacing() {
        let gate = CatchUps::default();
        let (alice, carol) = (user_id!("@_dm3_alice.eth:hs"), user_id!("@_dm3_carol.eth:hs"));
        assert!(gate.begin(alice));
        assert!(!gate.begin(alice), "one in flight");
        assert!(gate.begin(carol), "another device is not held back");
        gate.end(alice);
        assert!(!gate.begin(alice), "within the spacing");
    }
}
