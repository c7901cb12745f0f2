//! Load generator for the relay: sustained accepted envelopes per second, latency
//! percentiles and the node's memory, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench relay_load [-- sqlite|postgres] [--seconds N] [--connections N]`
//!
//! The node under test is the real `dm3-bridge` binary (release build), started
//! in its own process so that its RSS is its own, with the same code path a DM3
//! client hits: `POST /rpc dm3_submitMessage`, sender authenticated against a
//! verified profile, postmark, durable insert. Durability is not relaxed:
//! SQLite runs with `synchronous=FULL` and PostgreSQL with `fsync=on`.
//!
//! Envelopes are sealed before the clock starts (sealing is the client's cost,
//! not the node's), from several senders to several receivers, each one unique
//! so that no submit is a cheap duplicate.
//!
//! Phases:
//! 1. idle RSS, a few seconds after start-up;
//! 2. throughput: `--connections` concurrent submitters as fast as the node
//!    answers, for `--seconds`;
//! 3. latency at a fixed 1,000 envelopes/s (an open-loop schedule, so a slow
//!    answer cannot hide the queueing it causes), for `--seconds`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dm3::crypto::eth::{Wallet, checksum};
use dm3::envelope::Envelope;
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::message::MessageBuilder;
use dm3::profile::UserProfile;
use serde_json::{Value, json};

const NODE_NAME: &str = "relay.bench.eth";
const SENDERS: usize = 8;
const RECEIVERS: usize = 8;

struct Options {
    backends: Vec<String>,
    seconds: u64,
    connections: usize,
}

fn options() -> Options {
    let mut options = Options { backends: vec![], seconds: 10, connections: 64 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "sqlite" | "postgres" => options.backends.push(arg),
            "--seconds" => options.seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--connections" => {
                options.connections = args.next().and_then(|v| v.parse().ok()).expect("--connections N")
            }
            // cargo bench passes --bench; ignore flags meant for libtest.
            _ => {}
        }
    }
    if options.backends.is_empty() {
        options.backends = vec!["sqlite".into(), "postgres".into()];
    }
    options
}

struct User {
    name: String,
    wallet: Wallet,
    keys: ProfileKeys,
}

impl User {
    fn new(name: String) -> Self {
        let wallet = Wallet::generate();
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        Self { name, wallet, keys }
    }

    fn signed_profile(&self) -> dm3::profile::SignedUserProfile {
        UserProfile::from_keys(&self.keys, [NODE_NAME]).sign(&self.wallet)
    }

    /// A `[[names.static]]` entry, as an inline TOML table.
    fn static_entry(&self) -> String {
        format!(
            "{{ name = {:?}, address = {:?}, profile = {:?} }}",
            self.name,
            checksum(&self.wallet.address()),
            self.signed_profile().to_text_record()
        )
    }
}

struct Node {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Node {
    fn rss_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dm3-bridge"))
}

fn node_command(config: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary());
    command.arg("--config").arg(config).envs(env.iter().map(|(k, v)| (k, v)));
    command
}

async fn start_node(database_url: Option<String>, users: impl Iterator<Item = &User>) -> (Node, Value) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let status = Command::new(binary())
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .args(["--name", NODE_NAME, "--public-url", &url, "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "dm3-bridge init failed");
    let config = dir.path().join("config.toml");
    let entries: Vec<String> = users.map(User::static_entry).collect();
    let mut env = vec![
        ("DM3_BRIDGE_NAMES__STATIC".to_owned(), format!("[{}]", entries.join(", "))),
        ("DM3_BRIDGE_LOG__LEVEL".to_owned(), "warn".to_owned()),
    ];
    if let Some(database_url) = database_url {
        env.push(("DM3_BRIDGE_DATABASE__URL".to_owned(), database_url));
    }
    let profile = node_command(&config, &env).args(["profile", "--json"]).output().unwrap();
    assert!(profile.status.success(), "dm3-bridge profile: {}", String::from_utf8_lossy(&profile.stderr));
    let profile: Value = serde_json::from_slice(&profile.stdout).unwrap();
    let child = node_command(&config, &env).arg("run").stdout(Stdio::null()).spawn().unwrap();
    let node = Node { child, url, _dir: dir };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{}/ready", node.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return (node, profile["profile"].clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node did not become ready");
}

/// Seals `count` distinct envelopes, round-robin over senders and receivers, on every core.
fn seal_all(senders: &[User], receivers: &[User], ds_key: [u8; 32], count: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (thread..count)
                        .step_by(threads)
                        .map(|i| {
                            let sender = &senders[i % senders.len()];
                            let receiver = &receivers[(i / senders.len()) % receivers.len()];
                            let message = MessageBuilder::new(
                                &receiver.name,
                                &sender.name,
                                1_764_000_000_000 + i as u64,
                            )
                            .text(&format!("load message {i}: a typical short chat line"), None)
                            .sign(&sender.keys.signing);
                            let envelope = Envelope::seal(
                                &message,
                                &sender.keys.signing,
                                receiver.keys.encryption.public(),
                                &ds_key,
                            )
                            .unwrap();
                            envelope.jsonrpc_submit_body()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

struct Outcome {
    accepted: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn new() -> Self {
        Self { accepted: 0, failed: 0, elapsed: Duration::ZERO, latencies: Vec::new() }
    }

    fn record(&mut self, (ok, latency): (bool, Duration)) {
        if ok {
            self.accepted += 1;
        } else {
            self.failed += 1;
        }
        self.latencies.push(latency);
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

async fn submit(client: &reqwest::Client, url: &str, body: String) -> (bool, Duration) {
    let started = Instant::now();
    let ok = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    (ok, started.elapsed())
}

/// Closed loop: `connections` workers submit back to back until the time or the envelopes run out.
async fn throughput(
    node: &Node,
    bodies: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    connections: usize,
    seconds: u64,
) -> Outcome {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
    let url = format!("{}/rpc", node.url);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, bodies, next) = (client.clone(), url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                while Instant::now() < deadline {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else { break };
                    results.push(submit(&client, &url, body.clone()).await);
                }
                results
            })
        })
        .collect();
    let mut outcome = Outcome::new();
    for worker in workers {
        worker.await.unwrap().into_iter().for_each(|result| outcome.record(result));
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Open loop: one submit every `1/rate` seconds, whatever the answers do.
async fn fixed_rate(
    node: &Node,
    bodies: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    rate: u64,
    seconds: u64,
) -> Outcome {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let url = format!("{}/rpc", node.url);
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        ticker.tick().await;
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(index).cloned() else { break };
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { submit(&client, &url, body).await }));
    }
    let mut outcome = Outcome::new();
    for task in tasks {
        outcome.record(task.await.unwrap());
    }
    outcome.elapsed = started.elapsed();
    outcome
}

async fn register(node: &Node, receivers: &[User]) {
    let client = reqwest::Client::new();
    for receiver in receivers {
        let response = client
            .post(format!("{}/profile/{}", node.url, receiver.name))
            .json(&receiver.signed_profile().to_value())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "registering {}: {}", receiver.name, response.status());
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run(backend: &str, options: &Options) -> Value {
    let senders: Vec<User> = (0..SENDERS).map(|i| User::new(format!("sender{i}.bench.eth"))).collect();
    let receivers: Vec<User> = (0..RECEIVERS).map(|i| User::new(format!("receiver{i}.bench.eth"))).collect();
    let database_url = match backend {
        "postgres" => Some(postgres::fresh_database().await.to_string()),
        _ => None,
    };
    let (node, ds_profile) = start_node(database_url, senders.iter().chain(&receivers)).await;
    register(&node, &receivers).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = node.rss_kib("VmRSS:");

    let ds_key: [u8; 32] =
        dm3::encoding::b64_decode_array(ds_profile["publicEncryptionKey"].as_str().unwrap()).unwrap();
    // Enough for the closed loop at well above the goal, plus the fixed-rate phase.
    let count = (options.seconds as usize) * (6_000 + 1_000);
    eprintln!("{backend}: sealing {count} envelopes …");
    let bodies = Arc::new(seal_all(&senders, &receivers, ds_key, count));
    let next = Arc::new(AtomicUsize::new(0));

    eprintln!("{backend}: throughput with {} connections for {} s …", options.connections, options.seconds);
    let mut burst =
        throughput(&node, bodies.clone(), next.clone(), options.connections, options.seconds).await;
    let peak_rss = node.rss_kib("VmHWM:");
    eprintln!("{backend}: 1,000/s for {} s …", options.seconds);
    let mut steady = fixed_rate(&node, bodies, next, 1_000, options.seconds).await;

    json!({
        "backend": backend,
        "idle_rss_mib": idle_rss as f64 / 1024.0,
        "peak_rss_mib": peak_rss as f64 / 1024.0,
        "throughput": {
            "connections": options.connections,
            "accepted": burst.accepted,
            "failed": burst.failed,
            "accepted_per_sec": burst.accepted as f64 / burst.elapsed.as_secs_f64(),
            "p50_ms": ms(burst.percentile(0.50)),
            "p99_ms": ms(burst.percentile(0.99)),
        },
        "at_1000_per_sec": {
            "accepted": steady.accepted,
            "failed": steady.failed,
            "p50_ms": ms(steady.percentile(0.50)),
            "p99_ms": ms(steady.percentile(0.99)),
        },
    })
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // This benchmark claims durability: the PostgreSQL cluster keeps fsync on.
    postgres::keep_durability();
    let mut rows = Vec::new();
    for backend in &options.backends {
        let row = runtime.block_on(run(backend, &options));
        println!("{row}");
        rows.push(row);
    }
    println!();
    println!(
        "| backend | accepted/s ({} conns) | p50 / p99 (ms) | at 1,000/s p50 / p99 (ms) | failed | idle RSS | peak RSS |",
        options.connections
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let t = &row["throughput"];
        let s = &row["at_1000_per_sec"];
        println!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.1} MiB | {:.1} MiB |",
            row["backend"].as_str().unwrap(),
            t["accepted_per_sec"].as_f64().unwrap(),
            t["p50_ms"].as_f64().unwrap(),
            t["p99_ms"].as_f64().unwrap(),
            s["p50_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
            t["failed"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
            row["idle_rss_mib"].as_f64().unwrap(),
            row["peak_rss_mib"].as_f64().unwrap(),
        );
    }
}
