//! One replica's clock 30 s ahead: it takes no job or lease another replica holds, stamps
//! nothing in its own time, expires nothing early, and a `kill -9` of another replica still
//! loses and repeats nothing (issue #20, "faults survived"; docs/scaling.md, "Clocks").
//!
//! The world is `tests/support/replica_set.rs` (three replicas on one PostgreSQL behind HAProxy,
//! Matrix and Telegram both ways at once). Replica [`SKEWED`] runs under libfaketime
//! (`LD_PRELOAD`, `FAKETIME="+30s"`: the Debian package `faketime`), so its host clock reads 30 s
//! ahead of the database's and of the other replicas'; the test checks in its log that it
//! really does (the node logs how far its host's clock is from the database's at start-up), so
//! that a libfaketime that did nothing cannot pass. A job's lease is 30 s: a replica that
//! compared leases with its own clock 30 s ahead would take every job another replica runs, and
//! stamp the jobs it queues 30 s in the future.
//!
//! Halfway through the streams a replica other than the skewed one is SIGKILLed. At the end:
//! every message once and in order at both ends; no replica lost a job's lease to another while
//! it ran (the log line of a lost lease), and the jobs run more than once are at most the
//! killed replica's, one per conversation; no stored job time is ahead of the database's clock,
//! and each TTL is exactly the configured one after the job's creation; no job expired or
//! failed; the Telegram polling lease moved only if its holder was the one killed, and not
//! before its lease ran out.
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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bridge_process::BridgeProcess;
use dm3_bridge::lease::{HELD_FOR, TRY_EVERY};
use dm3_bridge::store::{JobFilter, JobRecord, StateFilter, Store};
use replica_set::ReplicaSet;
use support::TestDb;
use support::bridge::ADMIN_TOKEN;

/// Messages each way, in each of the four streams.
const COUNT: usize = 60;
const PACE: Duration = Duration::from_millis(40);
/// The replica whose clock runs ahead, and by how much.
const SKEWED: usize = 1;
const AHEAD: &str = "+30s";
const AHEAD_MS: i64 = 30_000;
/// The messages' TTL (`relay.message_ttl_secs`): every job carries one, compared by whichever
/// replica runs it.
const TTL_SECS: i64 = 600;
/// How many jobs the killed replica can have held: one per conversation of the four streams.
const CONVERSATIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_30_s_ahead_takes_no_live_lease_and_expires_nothing_early() {
    let started = Instant::now();
    let libfaketime = libfaketime();
    let db = TestDb::postgres().await;
    let (set, mut replicas) = ReplicaSet::start(&db, |i, replica: &mut BridgeProcess| {
        if i == 0 {
            // Set on the first, so every replica (a copy of its environment) has it.
            replica.set_env("DM3_BRIDGE_RELAY__MESSAGE_TTL_SECS", TTL_SECS.to_string());
        }
        if i == SKEWED {
            replica.set_env("LD_PRELOAD", libfaketime.display().to_string());
            replica.set_env("FAKETIME", AHEAD);
        }
    })
    .await;
    eprintln!("three replicas set up in {:.1} s", started.elapsed().as_secs_f64());

    // The skewed replica's host clock is 30 s ahead of the database's; the others' are not.
    for (i, replica) in replicas.iter().enumerate() {
        let offset = clock_offset_ms(replica);
        eprintln!("replica {i}: its host clock is {offset} ms off the database's (database minus host)");
        if i == SKEWED {
            assert!(
                (offset + AHEAD_MS).abs() < 2_000,
                "libfaketime did not move replica {i}'s clock: {offset} ms"
            );
        } else {
            assert!(offset.abs() < 2_000, "replica {i}'s clock is {offset} ms off the database's");
        }
    }

    let mut kill = None;
    let kills = async {
        set.wait_for_each_stream(COUNT / 2, &replicas).await;
        let (poller, polling) = set.poller(&replicas).await;
        // One of the replicas on the right time: the skewed one must carry on beside the other.
        let victim = if polling == SKEWED { (SKEWED + 1) % replicas.len() } else { polling };
        replicas[victim].kill();
        let killed_at = Instant::now();
        eprintln!(
            "killed replica {victim} (replica {polling} polled Telegram) with {} of alice's accepted",
            set.alice_accepted()
        );
        if victim == polling {
            let bound = Duration::from_secs(HELD_FOR.as_secs() + 2 * TRY_EVERY.as_secs() + 1);
            let takeover = set.wait_for_takeover(&poller, killed_at, bound, &replicas).await;
            eprintln!("polling taken over {:.2} s after the kill", takeover.as_secs_f64());
            // Its lease ran out first: at least the lease less the renewal period before the kill.
            assert!(
                takeover >= HELD_FOR - TRY_EVERY - Duration::from_secs(1),
                "polling taken over after {takeover:?}"
            );
        }
        kill = Some((victim, victim == polling));
    };
    tokio::join!(set.stream(COUNT, PACE), kills);
    let (victim, poller_killed) = kill.unwrap();

    let repeats = set.assert_every_message_arrived(COUNT, 1, &replicas).await;
    eprintln!("every message arrived; Telegram got {repeats} twice");

    // No replica lost a live lease to another: the skewed one took none early.
    for (i, replica) in replicas.iter().enumerate() {
        let log = replica.log();
        for lost in
            ["the job's lease ran out; another run owns it now", "the job's lease was lost while it ran"]
        {
            assert!(!log.contains(lost), "replica {i} says {lost:?}\n{}", set.logs(&replicas));
        }
    }
    let jobs = every_job(&set.store).await;
    let ran_again: Vec<&JobRecord> = jobs.iter().filter(|job| job.attempts > 1).collect();
    eprintln!("{} jobs, {} run more than once", jobs.len(), ran_again.len());
    assert!(ran_again.len() <= CONVERSATIONS, "jobs run more than once: {ran_again:#?}");

    // Every time stored is the database's: none ahead of it, each TTL exactly the configured one.
    let database_now = set.store.database_time().await.unwrap().now_ms;
    for job in &jobs {
        let latest = job.updated_at_ms.max(job.created_at_ms).max(job.finished_at_ms.unwrap_or(0));
        assert!(
            latest <= database_now + 1_000,
            "job {} is stamped {} ms ahead of the database: {job:?}",
            job.id,
            latest - database_now
        );
        assert_eq!(
            job.expires_at_ms.map(|at| at - job.created_at_ms),
            Some(TTL_SECS * 1000),
            "job {}'s TTL",
            job.id
        );
    }
    let skewed_done =
        replicas[SKEWED].metric_sum(ADMIN_TOKEN, "dm3_engine_jobs_total", &["outcome=\"done\""]).await;
    assert!(skewed_done > 0.0, "the skewed replica ran no job");
    eprintln!("the skewed replica ran {skewed_done} jobs");

    // The polling lease moved only with the killed poller.
    let holders: usize =
        replicas.iter().map(|r| r.log().matches("this process holds the lease now").count()).sum();
    assert_eq!(
        holders,
        1 + usize::from(poller_killed),
        "the polling lease moved other than at the kill\n{}",
        set.logs(&replicas)
    );

    for replica in replicas.iter_mut().filter(|r| r.is_running()) {
        replica.terminate().await;
    }
    set.store.close().await;
    eprintln!("killed replica {victim}; done in {:.1} s", started.elapsed().as_secs_f64());
}

/// libfaketime's multi-threaded library from the Debian package, or `DM3_LIBFAKETIME`.
fn libfaketime() -> PathBuf {
    let path = std::env::var_os("DM3_LIBFAKETIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"));
    assert!(
        path.exists(),
        "libfaketime is not at {}: install the Debian package faketime (scripts/install-faketime.sh does) \
         or set DM3_LIBFAKETIME",
        path.display()
    );
    path
}

/// How far the replica's host clock was from the database's at its start, as it logged it
/// (database minus host, ms).
fn clock_offset_ms(replica: &BridgeProcess) -> i64 {
    let log = replica.log();
    let line = log
        .lines()
        .find(|line| line.contains("the node keeps the database's clock"))
        .unwrap_or_else(|| panic!("the replica did not log its clock's offset:\n{}", replica.log_tail(40)));
    let value = line.split("offset_ms=").nth(1).and_then(|rest| rest.split_whitespace().next());
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no offset_ms in {line:?}"))
}

/// Every job of both queues, in any state.
async fn every_job(store: &Store) -> Vec<JobRecord> {
    let mut jobs = Vec::new();
    for state in [StateFilter::Done, StateFilter::Pending, StateFilter::Failed] {
        let mut after = 0;
        loop {
            let page = store
                .list_jobs(JobFilter { queue: None, state: Some(state), after, limit: 200 })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.id.get();
            jobs.extend(page);
        }
    }
    jobs
}
