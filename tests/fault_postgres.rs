//! PostgreSQL stopped under a running bridge and started again: nothing acknowledged is lost,
//! nothing arrives twice, the node says so in `/ready` and its log, and it recovers without a
//! restart (issue #20, "faults survived").
//!
//! Everything is real, as in `tests/bridge_matrix_crash.rs`: the bridge as its own process on a
//! database of this binary's throwaway PostgreSQL cluster, a Synapse, a chain with our ENS
//! contracts, node B as alice's delivery service. alice (DM3) and bob (Matrix) each send
//! [`COUNT`] messages while the test stops the cluster twice as a crash does (`pg_ctl stop -m
//! immediate`), each time once both streams are part-way through, holds it down until `/ready`
//! has answered 503 and a while more, and starts it again on the same port and data.
//!
//! While the database is down the node must acknowledge nothing: alice's submits are refused
//! (her client retries the same signed message, as DM3 clients do) and Synapse's transactions
//! too (Synapse keeps them and pushes them again). Afterwards the same process serves on, its
//! pools having reconnected; every message is counted at the other end, exactly once, in order.
//!
//! One test in this binary: stopping the cluster takes every database of the binary down.
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

use dm3_bridge::store::QueueName;
use matrix_process::ProcessBridged;
use support::TestDb;
use support::crash::{LONG_WAIT, outbox_jobs, pending_jobs};
use support::pause::Pause;
use support::postgres::{keep_durability, start_cluster, stop_cluster};

/// Messages each way.
const COUNT: usize = 90;
/// The pause between two sends of one sender, so that both streams flow through each outage.
const PACE: Duration = Duration::from_millis(20);
/// The database stops once this many messages of each stream were accepted by the bridge.
const STOP_AT: [usize; 2] = [COUNT / 3, 2 * COUNT / 3];
/// How long the database stays down after `/ready` said so: longer than the pool waits for a
/// connection (10 s), so that submits are refused, not just held.
const DOWN_FOR: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_mid_stream_loses_and_duplicates_nothing() {
    let started = Instant::now();
    // PostgreSQL's own durability, as in production: the test cluster's `synchronous_commit =
    // off` answers a COMMIT before its WAL is written, and an immediate stop then loses it.
    keep_durability();
    let db = TestDb::postgres().await;
    let bridged = ProcessBridged::start(Some(db.url.clone()), &[]).await;
    let (alice, bob, bridge, synapse, store) =
        (&bridged.world.alice, &bridged.bob, &bridged.bridge, &bridged.synapse, &bridged.store);
    let pid = bridge.pid();
    let outbox_before = outbox_jobs(store).await;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    let from_alice: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let from_bob: Vec<String> = (0..COUNT).map(|i| format!("b{i:03}")).collect();
    let alice_accepted = AtomicUsize::new(0);
    let bob_sent = AtomicUsize::new(0);
    let pause = Pause::default();
    let alice_retries = AtomicUsize::new(0);

    let alice_stream = async {
        let retries = alice
            .send_each_until_accepted(
                &bridged.route,
                &bridged.bob_name,
                &from_alice,
                PACE,
                LONG_WAIT,
                &alice_accepted,
            )
            .await;
        alice_retries.store(retries, Ordering::SeqCst);
    };
    let bob_stream = async {
        for (i, text) in from_bob.iter().enumerate() {
            pause.checkpoint().await;
            bob.send_text(&bridged.room, &format!("b{i}"), text).await.unwrap();
            bob_sent.store(i + 1, Ordering::SeqCst);
            tokio::time::sleep(PACE).await;
        }
    };
    let outages = async {
        for stop_at in STOP_AT {
            let deadline = Instant::now() + LONG_WAIT;
            loop {
                let bob_accepted = outbox_jobs(store).await - outbox_before;
                if alice_accepted.load(Ordering::SeqCst) >= stop_at && bob_accepted >= stop_at as u64 {
                    break;
                }
                assert!(Instant::now() < deadline, "the bridge did not accept {stop_at} messages each way");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Mid-stream: the bridge holds work both ways when its database goes.
            let pending = pending_jobs(store).await;
            let holds = |queue| pending.iter().any(|(q, n)| *q == queue && *n > 0);
            assert!(holds(QueueName::Inbox) || holds(QueueName::Outbox), "the bridge was idle at the outage");
            // bob stands still from before the outage until the bridge has taken all he sent:
            // a transaction Synapse makes while it retries one the bridge refused can be held
            // back until Synapse's next failure (Synapse's recoverer race,
            // `tests/support/pause.rs`). What he sent last is still on its way when the
            // database goes.
            pause.hold();
            while !pause.is_paused() && bob_sent.load(Ordering::SeqCst) < COUNT {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop_cluster();
            let down = Instant::now();
            let reason = bridged.wait_for_ready_status(503).await;
            assert!(reason.contains("database"), "/ready does not name the database: {reason}");
            // From here the database is surely down: nothing may be acknowledged until it is back.
            let accepted_while_down = alice_accepted.load(Ordering::SeqCst);
            tokio::time::sleep(DOWN_FOR).await;
            assert_eq!(
                alice_accepted.load(Ordering::SeqCst),
                accepted_while_down,
                "a submit was acknowledged while the database was down"
            );
            start_cluster();
            bridged.wait_for_ready_status(200).await;
            eprintln!(
                "database down at {stop_at} each way; /ready is 200 again after {:.1} s",
                down.elapsed().as_secs_f64()
            );
            let sent = bob_sent.load(Ordering::SeqCst) as u64;
            let deadline = Instant::now() + LONG_WAIT;
            loop {
                let taken = outbox_jobs(store).await - outbox_before;
                if taken >= sent {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the bridge took {taken} of bob's {sent} messages\n{}\n{}",
                    bridge.log_tail(40),
                    synapse.appservice_log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pause.release();
        }
    };
    tokio::join!(alice_stream, bob_stream, outages);

    bridged.assert_both_streams_arrived_once(&from_alice, &from_bob).await;
    assert!(alice_retries.load(Ordering::SeqCst) > 0, "no submit of alice's was refused during the outages");
    // The same process all along: it recovered without a restart.
    assert_eq!(bridged.bridge.pid(), pid);
    let log = bridged.bridge.log();
    assert_eq!(log.matches("relay listening").count(), 1, "the bridge started again");
    // `/ready` said why, and so did the engine, which noticed on its own.
    for line in ["readiness check: database", "claiming jobs failed; will retry"] {
        assert!(log.contains(line), "the log does not say {line:?}:\n{}", bridged.bridge.log_tail(60));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
