//! Whether the homeserver can be reached: the Matrix connector's health for the node's `/ready`.
//!
//! The homeserver pushes to the bridge, so nothing on the receiving side notices it gone: while
//! it is down the bridge simply hears nothing, and its sends fail and are retried by the
//! engine. Without a report `/ready` said "ready" through a two-minute Synapse outage (issue
//! #20). Two things feed the report: every client-server call (a transport error means
//! unreachable, any HTTP answer means reachable), and [`Client::probe`](crate::Client::probe),
//! which the node calls every few seconds so that an outage is seen, and its end too, when no
//! message happens to be sent.
//!
//! A homeserver that answers with an error is reachable: refusals are the sends' business
//! (retried or failed by the engine), not the node's readiness.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dm3_bridge_connector::Health;

/// The homeserver's reachability as the last call found it.
#[derive(Debug, Default)]
pub struct Reach(Mutex<Option<Outage>>);

#[derive(Debug)]
struct Outage {
    since: Instant,
    reason: String,
}

impl Reach {
    /// A call got an answer.
    pub fn reached(&self, homeserver: &str) {
        if let Some(outage) = self.lock().take() {
            tracing::info!(
                homeserver,
                down_for_secs = outage.since.elapsed().as_secs(),
                "the homeserver can be reached again"
            );
        }
    }

    /// A call got no answer (connection refused, reset, timed out).
    pub fn unreachable(&self, homeserver: &str, reason: &str) {
        let mut outage = self.lock();
        match outage.as_mut() {
            // The first sighting starts the outage and is logged; later ones keep its start.
            Some(outage) => outage.reason = reason.to_owned(),
            None => {
                tracing::warn!(homeserver, reason, "the homeserver cannot be reached");
                *outage = Some(Outage { since: Instant::now(), reason: reason.to_owned() });
            }
        }
    }

    /// The connector's health: unhealthy, with the reason and for how long, while the last call
    /// got no answer.
    pub fn health(&self, homeserver: &str) -> Health {
        match self.lock().as_ref() {
            None => Health::Healthy,
            Some(outage) => Health::Unhealthy(format!(
                "the homeserver at {homeserver} cannot be reached (for {} s): {}",
                outage.since.elapsed().as_secs(),
                outage.reason
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Outage>> {
        // Each change is one assignment: a poisoned lock still holds a whole value.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn unhealthy_from_a_failed_call_until_an_answer() {
        let reach = Reach::default();
        assert!(reach.health("http://hs").is_healthy());
        reach.unreachable("http://hs", "connection refused");
        reach.unreachable("http://hs", "connection reset");
        let Health::Unhealthy(reason) = reach.health("http://hs") else {
            panic!("a failed call left the homeserver reachable")
        };
        assert!(reason.contains("http://hs cannot be reached"), "{reason}");
        assert!(reason.ends_with("connection reset"), "{reason}");
        reach.reached("http://hs");
        assert!(reach.health("http://hs").is_healthy());
    }
}
