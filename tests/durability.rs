//! Nothing acknowledged is lost when the process is killed (`kill -9`) in the middle of a
//! stream of inserts.
//!
//! The test re-runs this test binary as a child process (the `child_*` test, which does
//! nothing unless `DM3_TEST_DURABILITY_DB` is set). The child inserts envelopes from many
//! concurrent tasks through the group-commit writer and prints `acked N` for each insert that
//! returned `Ok`. The parent reads those lines, kills the child with SIGKILL while inserts are
//! in flight, reopens the database, and requires every acknowledged envelope to be there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{Store, StoreOptions};
use support::{TestDb, numbered};

const CHILD_ENV: &str = "DM3_TEST_DURABILITY_DB";
/// How many acknowledgements the parent waits for before it kills the child.
const KILL_AFTER: usize = 400;

/// The child's side: only does something when started by the parent below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_inserts_until_killed() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&DatabaseUrl::new(url), &StoreOptions::default()).await.unwrap();
    let tasks: Vec<_> = (0..32u64)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let n = i * 32 + worker;
                    store.insert_envelope(numbered::envelope(n, 1_000)).await.unwrap();
                    println!("acked {n}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Runs the child on `db`, kills it after [`KILL_AFTER`] acknowledgements, and checks that
/// every acknowledged envelope is stored.
async fn survives_kill_9(db: &TestDb) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_inserts_until_killed", "--nocapture"])
        .env(CHILD_ENV, db.url.expose())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = BTreeSet::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("acked ") {
                acked.insert(n.parse::<u64>().unwrap());
                if acked.len() >= KILL_AFTER {
                    break;
                }
            }
        }
        acked
    })
    .await
    .unwrap();
    // SIGKILL: no destructor, no flush, no shutdown.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), KILL_AFTER, "the child stopped acknowledging early");

    let store = db.open().await;
    let stored: BTreeSet<u64> = numbered::stored(&store).await.into_iter().collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_envelopes_survive_kill_9_on_sqlite() {
    survives_kill_9(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_envelopes_survive_kill_9_on_postgres() {
    survives_kill_9(&TestDb::postgres().await).await;
}
