//! Synapse killed under a running bridge for two minutes and started again: nothing accepted is
//! lost or reported failed, nothing arrives twice, the node says so in `/ready` and its log, its
//! jobs back off, and it recovers without a restart (issue #20, "faults survived").
//!
//! Everything is real, as in `tests/fault_postgres.rs`: the bridge as its own process (on
//! SQLite here: the homeserver is the fault, not the database), a Synapse, a chain with our ENS
//! contracts, node B as alice's delivery service. alice (DM3) and bob (Matrix) write to each
//! other; once the bridge took bob's first messages the test kills Synapse (SIGKILL, as a crash
//! does) and keeps it down for [`DOWN_FOR`] while alice goes on writing. Her submits do not need
//! the homeserver and must all be accepted at once; their delivery waits in the inbox, retried
//! with the engine's backoff. Synapse then starts again on the same port and database, and both
//! write again: every message arrives once, in order, and none was reported to its sender as
//! failed (a failure report would reach alice as a DM3 message from bob's name, and the end
//! count would see it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/matrix_process.rs"]
mod matrix_process;
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dm3_bridge::store::{JobFilter, QueueName, StateFilter};
use matrix_process::{ProcessBridged, wait_for};
use support::bridge::ADMIN_TOKEN;
use support::crash::{LONG_WAIT, outbox_jobs};

/// How long Synapse stays down.
const DOWN_FOR: Duration = Duration::from_secs(120);
/// Messages each way before the outage, and again after it.
const BEFORE: usize = 20;
const AFTER: usize = 20;
/// alice's messages while Synapse is down, one every [`DURING_PACE`]: spread over the outage.
const DURING: usize = 30;
const DURING_PACE: Duration = Duration::from_secs(3);
const PACE: Duration = Duration::from_millis(20);
/// The longest the engine's backoff waits between two attempts (`engine::Backoff`'s cap): after
/// the homeserver is back, a conversation's next attempt comes within it.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_down_two_minutes_loses_duplicates_and_fails_nothing() {
    let started = Instant::now();
    let mut bridged = ProcessBridged::start(None, &[]).await;
    let pid = bridged.bridge.pid();
    let outbox_before = outbox_jobs(&bridged.store).await;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    let from_alice: Vec<String> = (0..BEFORE + DURING + AFTER).map(|i| format!("m{i:03}")).collect();
    let from_bob: Vec<String> = (0..BEFORE + AFTER).map(|i| format!("b{i:03}")).collect();
    let (alice_before, rest) = from_alice.split_at(BEFORE);
    let (alice_during, alice_after) = rest.split_at(DURING);
    let (bob_before, bob_after) = from_bob.split_at(BEFORE);

    // Both ways, until the bridge has taken everything bob sent: nothing of his is in flight
    // inside Synapse when it dies. alice's messages may still wait in the inbox.
    let retries = both_write(&bridged, alice_before, bob_before, 0).await;
    wait_for_bob_taken(&bridged, outbox_before, BEFORE).await;

    bridged.synapse.kill().unwrap();
    let down = Instant::now();
    let reason = bridged.wait_for_ready_status(503).await;
    eprintln!("/ready 503 after {:.1} s: {reason}", down.elapsed().as_secs_f64());
    assert!(reason.contains("matrix") && reason.contains("cannot be reached"), "/ready: {reason}");

    // alice goes on writing: every submit accepted at once, the homeserver being no part of it.
    let accepted = AtomicUsize::new(0);
    let alice = &bridged.world.alice;
    let refused = alice
        .send_each_until_accepted(
            &bridged.route,
            &bridged.bob_name,
            alice_during,
            DURING_PACE,
            LONG_WAIT,
            &accepted,
        )
        .await;
    assert_eq!(refused, 0, "a submit was refused while only the homeserver was down");
    assert_eq!(accepted.load(Ordering::SeqCst), DURING);
    tokio::time::sleep(DOWN_FOR.saturating_sub(down.elapsed())).await;

    // Still down, still said; the inbox holds alice's messages, its head retried with backoff.
    let (status, reason) = bridged.ready().await;
    assert_eq!(status, 503, "/ready said {reason} with the homeserver down");
    let head = retrying_inbox_head(&bridged).await;
    eprintln!(
        "after {:.0} s down: the inbox head ran {} times, last error {:?}",
        down.elapsed().as_secs_f64(),
        head.attempts,
        head.last_error
    );
    // One attempt a poll (1 s) would be ~120 runs; the backoff's doubling makes it about 8.
    assert!((3..=12).contains(&head.attempts), "the inbox head ran {} times in {DOWN_FOR:?}", head.attempts);
    assert!(
        head.last_error.as_deref().is_some_and(|e| e.contains("could not be reached")),
        "the retried job does not say why: {:?}",
        head.last_error
    );
    let failed = bridged.store.list_jobs(filter(None, StateFilter::Failed)).await.unwrap();
    assert!(failed.is_empty(), "jobs failed during the outage: {failed:?}");

    bridged.synapse.start_again().await.unwrap();
    let back = Instant::now();
    eprintln!("synapse down for {:.1} s", down.elapsed().as_secs_f64());
    bridged.wait_for_ready_status(200).await;
    eprintln!("/ready 200 {:.1} s after synapse was back", back.elapsed().as_secs_f64());

    // alice's backlog reaches bob within one backoff cap of the homeserver's return.
    let backlog = BEFORE + DURING;
    wait_for("alice's backlog to reach bob", &bridged.bridge, &bridged.synapse, || async {
        bridged.bob.bodies_from(&bridged.room, &bridged.ghost).await.is_ok_and(|b| b.len() >= backlog)
    })
    .await;
    let recovered = back.elapsed();
    eprintln!("alice's {backlog} messages at bob {:.1} s after synapse was back", recovered.as_secs_f64());
    assert!(recovered < BACKOFF_CAP + Duration::from_secs(30), "the backlog took {recovered:?} to drain");

    // Both ways again: bob's messages go through Synapse's transactions to the same bridge.
    let retries = retries + both_write(&bridged, alice_after, bob_after, BEFORE).await;
    assert_eq!(retries, 0, "a submit of alice's was refused");
    bridged.assert_both_streams_arrived_once(&from_alice, &from_bob).await;
    assert_retries_counted(&bridged).await;

    // The same process all along, and its log says what happened.
    assert_eq!(bridged.bridge.pid(), pid);
    let log = bridged.bridge.log();
    assert_eq!(log.matches("relay listening").count(), 1, "the bridge started again");
    for line in [
        "the homeserver cannot be reached",
        "readiness check: network not working",
        "the homeserver can be reached again",
    ] {
        assert!(log.contains(line), "the log does not say {line:?}:\n{}", bridged.bridge.log_tail(60));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// alice sends `from_alice` and bob `from_bob` at once (bob's transaction ids numbered from
/// `first`); answers how many of alice's submits were refused and retried.
async fn both_write(
    bridged: &ProcessBridged,
    from_alice: &[String],
    from_bob: &[String],
    first: usize,
) -> usize {
    let accepted = AtomicUsize::new(0);
    let alice = bridged.world.alice.send_each_until_accepted(
        &bridged.route,
        &bridged.bob_name,
        from_alice,
        PACE,
        LONG_WAIT,
        &accepted,
    );
    let bob = async {
        for (i, text) in from_bob.iter().enumerate() {
            bridged.bob.send_text(&bridged.room, &format!("b{}", first + i), text).await.unwrap();
            tokio::time::sleep(PACE).await;
        }
    };
    tokio::join!(alice, bob).0
}

/// Waits until the bridge queued `count` of bob's messages in its outbox.
async fn wait_for_bob_taken(bridged: &ProcessBridged, outbox_before: u64, count: usize) {
    wait_for("the bridge to take bob's messages", &bridged.bridge, &bridged.synapse, || async {
        outbox_jobs(&bridged.store).await - outbox_before >= count as u64
    })
    .await;
}

fn filter(queue: Option<QueueName>, state: StateFilter) -> JobFilter {
    JobFilter { queue, state: Some(state), after: 0, limit: 200 }
}

/// The oldest inbox job that has run and waits to run again.
async fn retrying_inbox_head(bridged: &ProcessBridged) -> dm3_bridge::store::JobRecord {
    let retrying =
        bridged.store.list_jobs(filter(Some(QueueName::Inbox), StateFilter::Retrying)).await.unwrap();
    retrying.into_iter().next().unwrap_or_else(|| {
        panic!("no inbox job was retrying with the homeserver down\n{}", bridged.bridge.log_tail(40))
    })
}

/// `/metrics` counted the inbox's retries.
async fn assert_retries_counted(bridged: &ProcessBridged) {
    let labels = ["queue=\"inbox\"", "outcome=\"retry\""];
    let retries = bridged.bridge.metric_sum(ADMIN_TOKEN, "dm3_engine_jobs_total", &labels).await;
    assert!(retries >= 3.0, "dm3_engine_jobs_total counted {retries} inbox retries");
}
