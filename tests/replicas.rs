//! Three node processes on one PostgreSQL database behind HAProxy: `kill -9` of one replica and
//! then another, mid-stream, loses nothing, repeats nothing, and keeps each conversation's order
//! (issue #20, docs/scaling.md).
//!
//! The world is `tests/support/replica_set.rs`: three `dm3-bridge run` processes of one node on a
//! throwaway PostgreSQL behind HAProxy, Telegram's fake Bot API in long-polling mode (exactly one
//! replica may poll: the lease `telegram-polling`, `src/lease.rs`), a real Synapse, and four
//! streams at once: ann (Telegram) and alice (DM3) write to each other, and so do bob (Matrix)
//! and alice. The test SIGKILLs the replica that polls once both streams are a third through, measures how
//! long until another replica holds the lease, then SIGKILLs that one at two thirds. The last
//! replica carries the rest: the killed replicas' claimed jobs come back when their job leases
//! run out (`[engine]`, 30 s), ann's unconfirmed updates when the new poller asks Telegram.
//!
//! Counted at both ends as in `tests/bridge_telegram_crash.rs` and `tests/bridge_matrix_crash.rs`
//! (`ReplicaSet::assert_every_message_arrived`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/haproxy.rs"]
mod haproxy;
#[path = "support/replica_set.rs"]
mod replica_set;
mod support;
#[path = "support/synapse.rs"]
mod synapse;
/// The fake Bot API of the connector's tests (not every helper is used here).
#[allow(dead_code)]
#[path = "../connectors/telegram/tests/support"]
mod telegram {
    pub mod bot_api;
}

use std::time::{Duration, Instant};

use dm3_bridge::lease::{HELD_FOR, TRY_EVERY};
use replica_set::ReplicaSet;
use support::TestDb;
use support::crash::pending_jobs;

/// Messages each way.
const COUNT: usize = 100;
/// The pause between two sends of one sender, so that the kills land while both flow: the
/// second kill waits for the first takeover (up to [`TAKEOVER_BOUND`], 15 s) after the first
/// kill at a third of the stream, so the stream must last longer than 1.5 × 15 s however fast
/// the machine; 100 × 300 ms is 30 s at the least. (With 40 ms, a takeover of 8.8 s on a loaded
/// machine let alice finish before the second kill.)
const PACE: Duration = Duration::from_millis(300);
/// The kills happen once this many messages of each stream were accepted by the bridge.
const KILL_AT: [usize; 2] = [COUNT / 3, 2 * COUNT / 3];
/// The most a takeover of Telegram polling may take after the poller's `kill -9`: its lease
/// runs out ([`HELD_FOR`] after its last renewal, which was at most [`TRY_EVERY`] before the
/// kill), and a waiting replica tries every [`TRY_EVERY`]; a second for the database round trips.
const TAKEOVER_BOUND: Duration = Duration::from_secs(HELD_FOR.as_secs() + 2 * TRY_EVERY.as_secs() + 1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_and_repeat_nothing_when_two_are_killed_mid_stream() {
    let started = Instant::now();
    let db = TestDb::postgres().await;
    let (set, mut replicas) = ReplicaSet::start(&db, |_, _| {}).await;
    eprintln!("three replicas set up in {:.1} s", started.elapsed().as_secs_f64());
    let streaming = Instant::now();
    let mut takeovers = Vec::new();

    let kills = async {
        for kill_at in KILL_AT {
            set.wait_for_each_stream(kill_at, &replicas).await;
            // The replica that polls Telegram now: its lease names its process.
            let (poller, victim) = set.poller(&replicas).await;
            replicas[victim].kill();
            let killed_at = Instant::now();
            eprintln!(
                "killed the polling replica on {} at {:.1} s: alice had {} accepted; jobs pending {:?}",
                replicas[victim].port(),
                streaming.elapsed().as_secs_f64(),
                set.alice_accepted(),
                pending_jobs(&set.store).await
            );
            assert!(set.alice_accepted() < COUNT, "alice's streams had ended before the kill");
            // Another replica takes polling over within the bound.
            let takeover = set.wait_for_takeover(&poller, killed_at, TAKEOVER_BOUND, &replicas).await;
            eprintln!("polling taken over {:.2} s after the kill", takeover.as_secs_f64());
            takeovers.push(takeover);
        }
    };
    tokio::join!(set.stream(COUNT, PACE), kills);

    // Every message arrives, carried by the replica left, and is counted at both ends.
    let repeats = set.assert_every_message_arrived(COUNT, KILL_AT.len(), &replicas).await;
    eprintln!("all arrived {:.1} s after the first send", streaming.elapsed().as_secs_f64());

    // Polling changed hands exactly at the two kills: three holders in all, one at a time.
    let holders: usize =
        replicas.iter().map(|r| r.log().matches("this process holds the lease now").count()).sum();
    assert_eq!(
        holders,
        1 + KILL_AT.len(),
        "the polling lease changed hands other than at the kills\n{}",
        set.logs(&replicas)
    );
    eprintln!(
        "takeovers of Telegram polling: {:?} (bound {TAKEOVER_BOUND:?}); Telegram got {repeats} message(s) twice",
        takeovers.iter().map(|t| format!("{:.2} s", t.as_secs_f64())).collect::<Vec<_>>()
    );

    for replica in replicas.iter_mut().filter(|r| r.is_running()) {
        replica.terminate().await;
    }
    set.store.close().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
