//! The queue-depth gauges (`dm3_engine_queue_depth{queue,state}`), changed at each transition.
//!
//! A count over `bridge_jobs` is the truth, but it costs a scan of the table, so the workers
//! ran it every 15 s, and a flood showed on `/metrics` only that much later (issue #16). Here
//! the producers and the worker move the figures as jobs change state (queued: pending + 1;
//! done or failed: pending − 1 and done or failed + 1), so a scrape right after a submit sees
//! it, and the worker still counts the table at its interval ([`QueueDepth::resync`]) and sets
//! the figures to what it found. The count makes them converge on what this process cannot see:
//! other replicas' transitions, jobs pruned by the expiry task, the state at start-up.
//!
//! The figures are this process's view, kept here and published as a whole (`set`), not moved
//! with `increment`: a resync replaces them. A transition that commits while the count runs may
//! be counted twice or missed until the next resync. Like every metric, the gauges are
//! process-wide: two nodes in one process (tests) publish over each other.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::{JobCount, JobState, QueueName};
use crate::telemetry::metrics as names;

const STATES: [JobState; 3] = [JobState::Pending, JobState::Done, JobState::Failed];

/// Jobs per queue and state, as this process knows them.
#[derive(Debug, Default)]
pub struct QueueDepth {
    /// `[queue][state]`, in the order of [`QueueName::ALL`] and [`STATES`].
    counts: [[AtomicI64; 3]; 2],
}

impl QueueDepth {
    /// `count` jobs were queued in `queue`.
    pub fn queued(&self, queue: QueueName, count: u64) {
        if count > 0 {
            self.add(queue, JobState::Pending, i64::try_from(count).unwrap_or(i64::MAX));
            self.publish(queue);
        }
    }

    /// A pending job of `queue` ended `state` (done or failed).
    pub fn settled(&self, queue: QueueName, state: JobState) {
        if state != JobState::Pending {
            self.add(queue, JobState::Pending, -1);
            self.add(queue, state, 1);
            self.publish(queue);
        }
    }

    /// Sets the figures of `queue` to a count of the table (0 where it counted none).
    pub fn resync(&self, queue: QueueName, counts: &[JobCount]) {
        for state in STATES {
            let n = counts.iter().find(|c| c.queue == queue && c.state == state).map_or(0, |c| c.count);
            self.cell(queue, state).store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
        self.publish(queue);
    }

    /// The figure of `queue` in `state` (never below 0).
    pub fn get(&self, queue: QueueName, state: JobState) -> u64 {
        self.cell(queue, state).load(Ordering::Relaxed).max(0).unsigned_abs()
    }

    fn add(&self, queue: QueueName, state: JobState, delta: i64) {
        self.cell(queue, state).fetch_add(delta, Ordering::Relaxed);
    }

    fn cell(&self, queue: QueueName, state: JobState) -> &AtomicI64 {
        let q = match queue {
            QueueName::Inbox => 0,
            QueueName::Outbox => 1,
        };
        let s = match state {
            JobState::Pending => 0,
            JobState::Done => 1,
            JobState::Failed => 2,
        };
        &self.counts[q][s]
    }

    fn publish(&self, queue: QueueName) {
        for state in STATES {
            metrics::gauge!(names::ENGINE_QUEUE_DEPTH, "queue" => queue.as_str(), "state" => state.as_str())
                .set(self.get(queue, state) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_move_the_figures_and_a_resync_replaces_them() {
        let depth = QueueDepth::default();
        depth.queued(QueueName::Inbox, 3);
        depth.settled(QueueName::Inbox, JobState::Done);
        depth.settled(QueueName::Inbox, JobState::Failed);
        assert_eq!(STATES.map(|s| depth.get(QueueName::Inbox, s)), [1, 1, 1], "pending, done, failed");
        assert_eq!(depth.get(QueueName::Outbox, JobState::Pending), 0, "queues are apart");
        let counted = [JobCount { queue: QueueName::Inbox, state: JobState::Done, count: 7 }];
        depth.resync(QueueName::Inbox, &counted);
        assert_eq!(STATES.map(|s| depth.get(QueueName::Inbox, s)), [0, 7, 0]);
    }
}
