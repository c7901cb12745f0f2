//! Idle memory of a node that stores many identities and portals (issue 20, point 6).
//!
//! `cargo bench --bench idle_rss [-- --identities N] [--portals N] [--touch N] [--settle-secs S]`
//! (defaults: 100,000 identities, 10,000 portals, 10,000 touched, 6 s).
//!
//! The relay's goal is an idle RSS under 30 MB, and that figure must not grow with the tables:
//! what the node keeps in memory may grow with what it is doing (a request, a conversation in
//! flight, the last second's reads), never with how many identities or portals it stores. The
//! bench runs the real release binary, bridging (`[identities]` and the loopback network),
//! three times on one SQLite data directory, and reads its RSS once it has settled:
//! 1. **empty**: a data directory fresh from `init`;
//! 2. **seeded**: after `--identities` virtual identities (created as the admin API creates
//!    them: generated keys, sealed under the master key, signed profile) and `--portals`
//!    portals were written through the library while the node was stopped;
//! 3. **touched**: the same node after `--touch` of those identities were each read through the
//!    admin API (`GET /admin/identities/{name}/profile`), then left alone for two minutes.
//!
//! It prints one JSON object (RSS, anonymous and file-backed parts, per phase) and a table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dm3::bridge_names::{NetworkUserId, TelegramUserId};
use dm3::ens::EnsName;
use dm3_bridge::config::Config;
use dm3_bridge::node::NodeData;
use dm3_bridge::store::{Consent, NewPortal};
use dm3_bridge_connector::{ConversationId, NetworkId};
use serde_json::json;
use tokio::task::JoinSet;

const NODE_NAME: &str = "ds.rss.bench.eth";
const PARENT: &str = "bridge.rss.bench.eth";
const ADMIN_TOKEN: &str = "idle-rss-admin-token-0123456789abcdef";
/// How long the touched node rests before its RSS is read.
const TOUCHED_REST: Duration = Duration::from_secs(125);
/// Identities created at once: the SQLite writer commits concurrent writes as one group.
const SEED_CONCURRENCY: usize = 64;

struct Options {
    identities: u64,
    portals: u64,
    touch: u64,
    settle: Duration,
}

fn options() -> Options {
    let mut options =
        Options { identities: 100_000, portals: 10_000, touch: 10_000, settle: Duration::from_secs(6) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<u64>().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--identities" => options.identities = value(),
            "--portals" => options.portals = value(),
            "--touch" => options.touch = value(),
            "--settle-secs" => options.settle = Duration::from_secs(value()),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(options.portals <= options.identities, "each portal needs an identity");
    assert!(options.touch <= options.identities, "only stored identities can be touched");
    options
}

/// The node binary of this build, or `DM3_BENCH_NODE` to measure another.
fn binary() -> PathBuf {
    std::env::var_os("DM3_BENCH_NODE")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dm3-bridge")), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
}

impl Rss {
    fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
        };
        Self { total: field("VmRSS:"), anon: field("RssAnon:"), file: field("RssFile:") }
    }

    fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }

    fn json(self) -> serde_json::Value {
        json!({
            "rss_mib": Self::mib(self.total),
            "anon_mib": Self::mib(self.anon),
            "file_mib": Self::mib(self.file),
        })
    }
}

/// A data directory made by `dm3-bridge init`, with the environment that makes it bridge.
struct DataDir {
    dir: tempfile::TempDir,
    url: String,
    env: Vec<(String, String)>,
}

impl DataDir {
    fn init() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let url = format!("http://{address}");
        let status = Command::new(binary())
            .args(["init", "--data-dir"])
            .arg(dir.path())
            .args(["--name", NODE_NAME, "--public-url", &url, "--listen", &address])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "dm3-bridge init failed");
        let env = [
            ("DM3_BRIDGE_IDENTITIES__PARENT", PARENT),
            ("DM3_BRIDGE_ADMIN__TOKEN", ADMIN_TOKEN),
            ("DM3_BRIDGE_LOOPBACK__USERS_OF", "telegram"),
            ("DM3_BRIDGE_LOG__LEVEL", "warn"),
            // One client reads every identity: a budget it cannot exhaust.
            ("DM3_BRIDGE_RATE_LIMITS__RPC_PER_MINUTE", "100000000"),
            ("DM3_BRIDGE_RATE_LIMITS__RPC_BURST", "1000000"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .to_vec();
        Self { dir, url, env }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Writes `identities` identities (Telegram users 1…N) and, for the first `portals` of them,
    /// a loopback portal with a DM3 user of their own, through the library as the node would.
    async fn seed(&self, identities: u64, portals: u64) -> Vec<EnsName> {
        let config = Config::load(&self.config_path(), self.env.iter().cloned()).unwrap();
        let data = NodeData::open(&config, &self.env, 8).await.unwrap();
        let vault = Arc::new(data.names.vault.clone());
        let mut names = Vec::with_capacity(usize::try_from(identities).unwrap());
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for id in 1..=identities {
            if tasks.len() >= SEED_CONCURRENCY {
                names.push(tasks.join_next().await.unwrap().unwrap());
            }
            let vault = vault.clone();
            tasks.spawn(async move {
                let user = NetworkUserId::Telegram(TelegramUserId::new(id).unwrap());
                vault.create(user, dm3_bridge::clock::now_ms()).await.unwrap().name
            });
        }
        while let Some(name) = tasks.join_next().await {
            names.push(name.unwrap());
        }
        names.sort();
        eprintln!("seeded {identities} identities in {:.1} s", started.elapsed().as_secs_f64());
        let network = NetworkId::new("loopback").unwrap();
        for (n, local_name) in names.iter().take(usize::try_from(portals).unwrap()).enumerate() {
            let portal = NewPortal {
                network: network.clone(),
                conversation: ConversationId::new(format!("rss-{n}")).unwrap(),
                local_name: local_name.clone(),
                remote_name: EnsName::parse(&format!("dm3user{n}.rss.bench.eth")).unwrap(),
                consent: Consent::Given,
            };
            data.store.insert_or_get_portal(&portal, dm3_bridge::clock::now_ms()).await.unwrap();
        }
        eprintln!("seeded {portals} portals; {:.1} s in all", started.elapsed().as_secs_f64());
        data.store.close().await;
        names
    }

    async fn start(&self) -> RunningNode {
        let child = Command::new(binary())
            .arg("--config")
            .arg(self.config_path())
            .envs(self.env.iter().cloned())
            .arg("run")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let node = RunningNode { child, url: self.url.clone(), http: reqwest::Client::new() };
        for _ in 0..1200 {
            let ready = node.http.get(format!("{}/ready", node.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the node did not become ready");
    }
}

struct RunningNode {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl RunningNode {
    /// RSS once the node was left alone for `settle` (the allocator returns freed memory a
    /// second after the free, at its next event: `src/main.rs`).
    async fn settled_rss(&self, settle: Duration) -> Rss {
        tokio::time::sleep(settle).await;
        Rss::of(self.child.id())
    }

    /// Reads each identity's profile through the admin API, eight at a time.
    async fn touch(&self, names: &[EnsName]) {
        let mut tasks = JoinSet::new();
        for name in names {
            if tasks.len() >= 8 {
                tasks.join_next().await.unwrap().unwrap();
            }
            let request = self
                .http
                .get(format!("{}/admin/identities/{name}/profile", self.url))
                .bearer_auth(ADMIN_TOKEN);
            tasks.spawn(async move {
                let status = request.send().await.unwrap().status();
                assert!(status.is_success(), "profile read: {status}");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the node did not stop cleanly: {status}");
    }
}

fn database_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("dm3-bridge.sqlite"))
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

#[tokio::main]
async fn main() {
    let options = options();
    let data = DataDir::init();

    let node = data.start().await;
    let empty = node.settled_rss(options.settle).await;
    node.stop();

    let names = data.seed(options.identities, options.portals).await;
    let database_bytes = database_size(data.dir.path());

    let node = data.start().await;
    let seeded = node.settled_rss(options.settle).await;
    let started = Instant::now();
    node.touch(&names[..usize::try_from(options.touch).unwrap()]).await;
    let touch_secs = started.elapsed().as_secs_f64();
    // Two minutes at rest: what is still held then is not a purge or an idle timeout to come.
    let touched = node.settled_rss(options.settle.max(TOUCHED_REST)).await;
    node.stop();

    let report = json!({
        "identities": options.identities,
        "portals": options.portals,
        "touched": options.touch,
        "touch_per_sec": options.touch as f64 / touch_secs,
        "database_mib": database_bytes as f64 / (1024.0 * 1024.0),
        "empty": empty.json(),
        "seeded": seeded.json(),
        "touched_after_settle": touched.json(),
    });
    println!("{report}");
    eprintln!("| phase | RSS | anonymous | file-backed |");
    eprintln!("| --- | ---: | ---: | ---: |");
    for (phase, rss) in [("empty", empty), ("seeded", seeded), ("touched", touched)] {
        eprintln!(
            "| {phase} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            Rss::mib(rss.total),
            Rss::mib(rss.anon),
            Rss::mib(rss.file)
        );
    }
}
