//! The disk of the SQLite database fills up under a running node, then space is freed: nothing
//! acknowledged is lost or stored twice, `/ready` says the disk is full while it is, and the
//! node writes again without a restart (issue #20, "faults survived").
//!
//! The database lives on a tmpfs of its own (`mount -t tmpfs -o size=…`), which a filler file
//! fills to the last byte while the node's store takes envelopes from concurrent writers through
//! its real write path (the group-commit writer and the one SQLite write connection). A write
//! the disk cannot take must fail, never be acknowledged; once the filler is gone the same node
//! takes writes again, and every acknowledged envelope is there once.
//!
//! Mounting needs root: the test fails with a clear message otherwise, it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::names::static_resolver::StaticResolver;
use dm3_bridge::store::Store;
use support::node::{TestNode, start_relay};
use support::numbered;

/// The tmpfs: room for the database and some traffic, small enough to fill in a moment.
const TMPFS_SIZE: &str = "24m";
/// Envelopes written before, during and after the disk is full.
const BEFORE: u64 = 200;
const AFTER: u64 = 200;

/// A tmpfs mounted on a new directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Tmpfs {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test mounts a tmpfs to fill a disk and must run as root (or with CAP_SYS_ADMIN): \
             run the suite as root"
        );
        let dir = tempfile::Builder::new().prefix("dm3-full-disk-").tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed ({status}): the test needs a mountable tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Best effort: lazily, in case the node's files are still open.
        Command::new("umount").arg("-l").arg(self.dir.path()).status().ok();
    }
}

/// Writes zeros to `path` until the filesystem refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&block).and_then(|()| file.sync_all()) {
            assert_eq!(error.raw_os_error(), Some(28), "filling the disk: {error}"); // ENOSPC
            break;
        }
    }
    // The last partial block may still have fitted: fill what is left byte-wise.
    while file.write_all(&[0u8; 512]).and_then(|()| file.sync_all()).is_ok() {}
}

/// Inserts `numbers` from 16 concurrent writers; answers the acknowledged ones and how many
/// were refused.
async fn write(store: &Store, numbers: std::ops::Range<u64>) -> (BTreeSet<u64>, usize) {
    let tasks: Vec<_> = (0..16u64)
        .map(|lane| {
            let store = store.clone();
            let numbers = numbers.clone();
            tokio::spawn(async move {
                let (mut acked, mut refused) = (BTreeSet::new(), 0);
                for n in numbers.filter(|n| n % 16 == lane) {
                    match store.insert_envelope(numbered::envelope(n, 2_000)).await {
                        Ok(_) => {
                            acked.insert(n);
                        }
                        Err(_) => refused += 1,
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let (mut acked, mut refused) = (BTreeSet::new(), 0);
    for task in tasks {
        let (a, r) = task.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    (acked, refused)
}

async fn ready(node: &TestNode) -> (u16, String) {
    let response = node.client.get(node.url("/ready")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_refuses_writes_reports_it_and_recovers_without_a_restart() {
    let tmpfs = Tmpfs::mount();
    let database = tmpfs.path().join("node.sqlite");
    let node = start_relay(DatabaseUrl::sqlite_file(&database), StaticResolver::new(), |_| {}).await;
    let store = node.node.store().clone();

    let (mut acked, refused) = write(&store, 0..BEFORE).await;
    assert_eq!((acked.len() as u64, refused), (BEFORE, 0), "writes failed before the disk was full");
    assert_eq!(ready(&node).await.0, 200);

    let filler: PathBuf = tmpfs.path().join("filler");
    fill(&filler);
    let (status, reason) = ready(&node).await;
    assert_eq!(status, 503, "/ready with a full disk: {reason}");
    assert!(reason.contains("disk is full"), "/ready does not say the disk is full: {reason}");

    // Writes until the disk refuses them: SQLite reuses the room its WAL already has, so the
    // first few may still fit; none may be acknowledged without being stored.
    let mut next = BEFORE;
    let mut refused_while_full = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while refused_while_full == 0 {
        assert!(Instant::now() < deadline, "the full disk refused no write");
        let (more, refused) = write(&store, next..next + 400).await;
        acked.extend(more);
        refused_while_full += refused;
        next += 400;
    }

    std::fs::remove_file(&filler).unwrap();
    let (status, reason) = ready(&node).await;
    assert_eq!(status, 200, "/ready once space is free: {reason}");
    // The same node writes again: the write connection came through SQLITE_FULL.
    let (more, refused) = write(&store, next..next + AFTER).await;
    assert_eq!((more.len() as u64, refused), (AFTER, 0), "writes failed once space was free");
    acked.extend(more);

    let stored = numbered::stored(&store).await;
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "an envelope is stored twice");
    let lost: Vec<_> = acked.difference(&unique).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let unacknowledged: Vec<_> = unique.difference(&acked).collect();
    eprintln!(
        "{} acknowledged, {refused_while_full} refused while the disk was full, {} stored without \
         an answer",
        acked.len(),
        unacknowledged.len()
    );
    node.node.shutdown().await.unwrap();
}
