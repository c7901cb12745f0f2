//! Load generator for the relay: sustained accepted envelopes per second, latency
//! percentiles and the node's memory, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench relay_load [-- sqlite|postgres] [--seconds N] [--connections N] [--rate N]`
//! (`DM3_BENCH_NODE=path/to/dm3-bridge` runs another build of the node under the same load).
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
//! 3. latency at a fixed `--rate` envelopes/s (1,000 unless told) (an open-loop schedule, so a slow
//!    answer cannot hide the queueing it causes), for `--seconds`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

#[path = "support/http1.rs"]
mod http1;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Submits per second of the open-loop phase.
    rate: u64,
}

fn options() -> Options {
    let mut options = Options { backends: vec![], seconds: 10, connections: 64, rate: 1_000 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "sqlite" | "postgres" => options.backends.push(arg),
            "--seconds" => options.seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--connections" => {
                options.connections = args.next().and_then(|v| v.parse().ok()).expect("--connections N")
            }
            "--rate" => {
                options.rate =
                    args.next().and_then(|v| v.parse().ok()).filter(|r| *r > 0).expect("--rate N (> 0)")
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
    /// `127.0.0.1:port`, for the load generator's own connections.
    address: String,
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

/// The node binary: this build's, or `DM3_BENCH_NODE` to compare against another build.
fn binary() -> PathBuf {
    std::env::var_os("DM3_BENCH_NODE")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dm3-bridge")), PathBuf::from)
}

fn node_command(config: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary());
    command.arg("--config").arg(config).envs(env.iter().map(|(k, v)| (k, v)));
    command
}

async fn start_node(database_url: Option<String>, users: impl Iterator<Item = &User>) -> (Node, Value) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("http://{address}");
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
    // Every submit comes from 127.0.0.1, one client to the per-client limit (30,000 a minute
    // by default). The limiter still runs on every submit, with a budget the load cannot
    // exhaust, so what it costs is in the figures. A build from before the limits (an A/B
    // against an older `DM3_BENCH_NODE`) has no such keys: its `init` writes no section.
    if std::fs::read_to_string(&config).is_ok_and(|text| text.contains("[rate_limits]")) {
        env.push(("DM3_BRIDGE_RATE_LIMITS__RPC_PER_MINUTE".to_owned(), "100000000".to_owned()));
        env.push(("DM3_BRIDGE_RATE_LIMITS__RPC_BURST".to_owned(), "1000000".to_owned()));
    }
    // Its few DM3 senders flood the bridged users on purpose: their budgets (issue #19) off, on
    // a build that has them.
    if std::fs::read_to_string(&config).is_ok_and(|text| text.contains("dm3_sender_per_minute")) {
        env.push(("DM3_BRIDGE_RATE_LIMITS__DM3_SENDER_PER_MINUTE".to_owned(), "0".to_owned()));
        env.push(("DM3_BRIDGE_RATE_LIMITS__BRIDGED_USER_PER_MINUTE".to_owned(), "0".to_owned()));
    }
    if let Some(database_url) = database_url {
        env.push(("DM3_BRIDGE_DATABASE__URL".to_owned(), database_url));
    }
    let profile = node_command(&config, &env).args(["profile", "--json"]).output().unwrap();
    assert!(profile.status.success(), "dm3-bridge profile: {}", String::from_utf8_lossy(&profile.stderr));
    let profile: Value = serde_json::from_slice(&profile.stdout).unwrap();
    let child = node_command(&config, &env).arg("run").stdout(Stdio::null()).spawn().unwrap();
    let node = Node { child, url, address, _dir: dir };
    let client = reqwest::Client::new();
    // Up to a minute: under a profiler (scripts/callgrind-relay.sh) start-up is slow.
    for _ in 0..1200 {
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
    /// CPU time of the node and of this load generator during the phase.
    node_cpu: Duration,
    client_cpu: Duration,
}

impl Outcome {
    fn new() -> Self {
        Self {
            accepted: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            node_cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
        }
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

    fn summary(&mut self) -> Value {
        let requests = (self.accepted + self.failed).max(1) as f64;
        json!({
            "accepted": self.accepted,
            "failed": self.failed,
            "accepted_per_sec": self.accepted as f64 / self.elapsed.as_secs_f64(),
            "p50_ms": ms(self.percentile(0.50)),
            "p99_ms": ms(self.percentile(0.99)),
            "max_ms": ms(self.percentile(1.0)),
            // CPU per request is what the node costs, whatever else runs on the machine.
            "node_cpu_us_per_request": self.node_cpu.as_secs_f64() * 1e6 / requests,
            "node_cpu_cores": self.node_cpu.as_secs_f64() / self.elapsed.as_secs_f64(),
            "client_cpu_us_per_request": self.client_cpu.as_secs_f64() * 1e6 / requests,
        })
    }
}

/// User plus system CPU time of a process so far (`/proc/<pid>/stat`, in clock ticks of
/// 1/100 s, Linux's fixed `USER_HZ`).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// CPU time of the node and of this process, to take differences of around a phase.
fn cpu_times(node: &Node) -> (Duration, Duration) {
    (cpu_time(&node.child.id().to_string()), cpu_time("self"))
}

/// One request on `connection` (opened first if there is none): whether it was answered
/// `200 OK`, and how long it took. A connection that cannot be reused is dropped.
async fn submit(
    connection: &mut Option<http1::Connection>,
    address: &str,
    request: &[u8],
) -> (bool, Duration) {
    let started = Instant::now();
    let answer = match connection {
        Some(open) => match open.send(request).await {
            // The node closes a kept-alive connection that waited for its next request longer
            // than limits.header_timeout_secs: send again on a new one, as a pooling client does.
            Err(_) => match http1::Connection::open(address).await {
                Ok(open) => connection.insert(open).send(request).await,
                Err(e) => Err(e),
            },
            answer => answer,
        },
        None => match http1::Connection::open(address).await {
            Ok(open) => connection.insert(open).send(request).await,
            Err(e) => Err(e),
        },
    };
    let latency = started.elapsed();
    match answer {
        Ok(answer) => {
            if !answer.reusable {
                *connection = None;
            }
            (answer.status == 200, latency)
        }
        Err(_) => {
            *connection = None;
            (false, latency)
        }
    }
}

/// Closed loop: `connections` workers submit back to back until the time or the envelopes run out.
async fn throughput(
    node: &Node,
    requests: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
    connections: usize,
    seconds: u64,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_times(node);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (address, requests, next) = (node.address.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut connection = None;
                while Instant::now() < deadline {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(index) else { break };
                    results.push(submit(&mut connection, &address, request).await);
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
    let cpu_after = cpu_times(node);
    (outcome.node_cpu, outcome.client_cpu) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    outcome
}

/// Open loop: one submit every `1/rate` seconds, whatever the answers do. Each submit takes
/// an idle connection, or opens one when all are busy (as a pooling client would).
async fn fixed_rate(
    node: &Node,
    requests: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
    rate: u64,
    seconds: u64,
) -> Outcome {
    let idle: Arc<Mutex<Vec<http1::Connection>>> = Arc::new(Mutex::new(Vec::new()));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let cpu_before = cpu_times(node);
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        ticker.tick().await;
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= requests.len() {
            break;
        }
        let (address, requests, idle) = (node.address.clone(), requests.clone(), idle.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = idle.lock().unwrap().pop();
            let result = submit(&mut connection, &address, &requests[index]).await;
            if let Some(connection) = connection {
                idle.lock().unwrap().push(connection);
            }
            result
        }));
    }
    let mut outcome = Outcome::new();
    for task in tasks {
        outcome.record(task.await.unwrap());
    }
    outcome.elapsed = started.elapsed();
    let cpu_after = cpu_times(node);
    (outcome.node_cpu, outcome.client_cpu) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
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
    let count = (options.seconds as usize) * (6_000 + options.rate as usize);
    eprintln!("{backend}: sealing {count} envelopes …");
    // Whole HTTP requests, serialized before the clock starts: the client only writes bytes.
    let requests: Vec<Vec<u8>> = seal_all(&senders, &receivers, ds_key, count)
        .iter()
        .map(|body| http1::post_request(&node.address, "/rpc", body.as_bytes()))
        .collect();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let load_before = load_average();

    eprintln!("{backend}: throughput with {} connections for {} s …", options.connections, options.seconds);
    let mut burst =
        throughput(&node, requests.clone(), next.clone(), options.connections, options.seconds).await;
    let peak_rss = node.rss_kib("VmHWM:");
    eprintln!("{backend}: {}/s for {} s …", options.rate, options.seconds);
    let mut steady = fixed_rate(&node, requests, next, options.rate, options.seconds).await;

    let mut throughput = burst.summary();
    throughput["connections"] = json!(options.connections);
    json!({
        "backend": backend,
        "idle_rss_mib": idle_rss as f64 / 1024.0,
        "peak_rss_mib": peak_rss as f64 / 1024.0,
        // What else ran on the machine: the figures are only comparable at similar load.
        "load_average_before": load_before,
        "throughput": throughput,
        "rate": options.rate,
        "fixed_rate": steady.summary(),
    })
}

/// The 1-minute load average of the machine.
fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap()
}

fn main() {
    let options = options();
    // One thread is plenty for this client, and leaves the second core to the node.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
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
        "| backend | accepted/s ({} conns) | p50 / p99 (ms) | at {}/s p50 / p99 (ms) | failed | idle RSS | peak RSS | node CPU µs/env (sat. / {}/s) | client CPU µs/req |",
        options.connections, options.rate, options.rate
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let t = &row["throughput"];
        let s = &row["fixed_rate"];
        println!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.1} MiB | {:.1} MiB | {:.0} / {:.0} | {:.0} |",
            row["backend"].as_str().unwrap(),
            t["accepted_per_sec"].as_f64().unwrap(),
            t["p50_ms"].as_f64().unwrap(),
            t["p99_ms"].as_f64().unwrap(),
            s["p50_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
            t["failed"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
            row["idle_rss_mib"].as_f64().unwrap(),
            row["peak_rss_mib"].as_f64().unwrap(),
            t["node_cpu_us_per_request"].as_f64().unwrap(),
            s["node_cpu_us_per_request"].as_f64().unwrap(),
            t["client_cpu_us_per_request"].as_f64().unwrap(),
        );
    }
}
