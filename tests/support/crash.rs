//! What the `kill -9` scenarios check, whatever the network: the bridge's queues read from its
//! database beside it, and the count of every message at the end.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use dm3_bridge::store::{JobState, QueueName, Store};

/// How long a stream may take to arrive, or the bridge to settle, after the last send.
pub const LONG_WAIT: Duration = Duration::from_secs(180);

/// `received` is `sent`: nothing missing, nothing twice, in order; else a report that counts.
pub fn assert_exactly_once_in_order(what: &str, received: &[String], sent: &[String]) {
    if received == sent {
        return;
    }
    let mut counts: BTreeMap<&str, usize> = sent.iter().map(|s| (s.as_str(), 0)).collect();
    let mut unexpected = Vec::new();
    for text in received {
        match counts.get_mut(text.as_str()) {
            Some(n) => *n += 1,
            None => unexpected.push(text),
        }
    }
    let missing: Vec<&str> = counts.iter().filter(|(_, n)| **n == 0).map(|(t, _)| *t).collect();
    let twice: Vec<(&str, usize)> = counts.iter().filter(|(_, n)| **n > 1).map(|(t, n)| (*t, *n)).collect();
    panic!(
        "{what}: {} received for {} sent; missing {missing:?}, more than once {twice:?}, unexpected \
         {unexpected:?}; in this order:\n{received:?}",
        received.len(),
        sent.len()
    );
}

/// How many jobs the bridge ever queued in its outbox (network → DM3), in any state.
pub async fn outbox_jobs(store: &Store) -> u64 {
    super::bridge::jobs_in_store(store, QueueName::Outbox).await
}

/// The pending jobs, by queue.
pub async fn pending_jobs(store: &Store) -> Vec<(QueueName, u64)> {
    let counts = store.count_jobs().await.unwrap();
    counts.iter().filter(|c| c.state == JobState::Pending).map(|c| (c.queue, c.count)).collect()
}

/// Waits until the bridge has no job pending in either queue; none may have failed. `context`
/// says what else to show when it does not settle (the bridge's log, the homeserver's).
pub async fn settled(store: &Store, context: impl Fn() -> String) {
    super::bridge::store_settled(store, LONG_WAIT, context).await;
}
