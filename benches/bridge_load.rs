//! Load through the bridge engine, both ways: DM3 → Matrix and Matrix → DM3.
//!
//! `cargo bench --bench bridge_load [-- loopback|synapse|names|gateway|encrypted] [--seconds N] [--rate N]
//! [--synapse-rate N] [--conversations N] [--backlog N] [--replicas N] [--lookups N]`
//!
//! The node under test is the real `dm3-bridge` binary (release build) in its own process, with
//! `[matrix]` and virtual identities, on SQLite (`synchronous=FULL`): the real engine, its
//! durable queues and its workers. Around it, in this process:
//! - DM3 users `alice<n>.bench.eth`, one conversation each with the Matrix user `@bob`, known to
//!   the node through `[[names.static]]`; their delivery services are loopback servers that
//!   record each `dm3_submitMessage` and answer `200` at once (`support/loopback.rs`);
//! - the homeserver: in **loopback** mode a server that answers every client-server call of the
//!   bridge at once, so that what is timed is the bridge alone; in **synapse** mode a real
//!   Synapse (`tests/support/synapse.rs`), with bob a real user on it.
//!
//! DM3 → Matrix: envelopes sealed before the clock starts (the client's cost), from alice<n> to
//! bob's virtual identity, submitted as a DM3 client does (`POST /rpc dm3_submitMessage`): the
//! relay authenticates and postmarks them and queues them in the inbox; the inbox worker opens,
//! verifies, converts and sends them (`PUT …/send/m.room.message`). A message is timed from the
//! start of its submit to the homeserver receiving the send (loopback) or bob's `/sync`
//! returning it (synapse).
//!
//! Matrix → DM3: bob's messages reach the node as application-service transactions: in
//! loopback mode PUT by this bench as Synapse does (one transaction in flight, carrying every
//! event that came meanwhile, at most 100), in synapse mode sent by bob through Synapse. The
//! outbox worker signs each as bob's virtual identity, seals it for alice<n>'s delivery service
//! and posts it. A message is timed from its creation (loopback: the moment it is due; synapse:
//! the start of bob's send) to its envelope reaching alice<n>'s delivery service.
//!
//! Phases, each way:
//! 1. backlog: `--seconds` × 1,000 messages (× `--synapse-rate` in synapse mode) handed in as
//!    fast as the node takes them; messages/s = messages / (last arrival − first hand-in): what
//!    the engine sustains with work always queued;
//! 2. latency: an open-loop schedule of `--rate` messages/s (`--synapse-rate` in synapse mode)
//!    for `--seconds`, round-robin over the conversations; p50/p99 of each message's time.
//!
//! `gateway` (not run unless named) runs the loopback mode, then the same two directions again
//! with bob in gateway mode (docs/gateway.md): bob's identity switched to **self-custody** (his
//! own wallet and keys, none on the node), so DM3 → Matrix envelopes sealed to bob's own key are
//! checked and carried sealed as `network.dm3.envelope` events, and bob's Matrix → DM3 messages
//! are envelopes his client sealed (before the clock starts) that the node checks against his
//! profile and posts as they are. No message crypto on the node either way: the ratios to bridge
//! mode, measured in the same run, are in the row's `gateway_vs_bridge`.
//!
//! `encrypted` (not run unless named) runs the synapse mode twice, with bob on his own
//! matrix-sdk client (`clients/matrix`) instead of raw client-server calls: first in DMs in the
//! clear, then in encrypted DMs, where the ghosts decrypt his Megolm messages and encrypt theirs
//! to his device (issue 17). bob's arrivals are what matrix-sdk hands his client, decrypted; the
//! row's `encrypted_vs_clear` holds the ratios, `p50_overhead_ms` the added p50 latency.
//!
//! `names` (not run unless named) floods the public name routes with names nobody uses and
//! one DM3 sender past its budget (`support/names_flood.rs`).
//!
//! `--replicas N` (1 to 3) runs the node as N processes on one throwaway PostgreSQL (durable:
//! fsync on) behind HAProxy with `deploy/haproxy/haproxy.cfg`, which every submit and
//! transaction then goes through (docs/scaling.md); CPU is the sum over the replicas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/haproxy.rs"]
mod haproxy;
#[path = "support/http1.rs"]
mod http1;
#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/names_flood.rs"]
mod names_flood;
// The fault tests' stop and start of the cluster are not used here.
#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "../tests/support/synapse.rs"]
mod synapse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dm3::crypto::eth::{Wallet, checksum};
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::SigningKeyPair;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::gateway_envelope::{GatewayEnvelope, MatrixGatewayContent};
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::message::MessageBuilder;
use dm3::profile::UserProfile;
use dm3_matrix_client::{Credentials, MatrixUser, RoomEncryption, ids};
use loopback::{DeliveryServices, Homeserver, marker};
use serde_json::{Value, json};

const PARENT: &str = "bridge.bench.eth";
const NODE_NAME: &str = "ds.bridge.bench.eth";
const ADMIN_TOKEN: &str = "bridge-admin-token-0123456789abcdef";
const LOOPBACK_SERVER: &str = "bench.local";
/// Most events in one transaction, as Synapse batches them.
const MAX_EVENTS_PER_TRANSACTION: usize = 100;
/// How long a phase may take to drain before the bench gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

struct Options {
    modes: Vec<String>,
    seconds: u64,
    rate: u64,
    synapse_rate: u64,
    conversations: usize,
    connections: usize,
    /// 0: one process on SQLite; 1 to 3: that many on PostgreSQL behind HAProxy.
    replicas: usize,
    /// Messages of the backlog phase, if not `--seconds` × 1,000 (a short run on a busy machine).
    backlog: Option<u64>,
    /// Requests of each phase of the `names` mode.
    lookups: usize,
}

fn options() -> Options {
    let mut options = Options {
        modes: vec![],
        seconds: 10,
        rate: 500,
        synapse_rate: 20,
        conversations: 8,
        connections: 32,
        replicas: 0,
        backlog: None,
        lookups: 20_000,
    };
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, what: &str| -> u64 {
        arg.and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or_else(|| panic!("{what} N (> 0)"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "loopback" | "synapse" | "names" | "gateway" | "encrypted" => options.modes.push(arg),
            "--seconds" => options.seconds = number(args.next(), "--seconds"),
            "--rate" => options.rate = number(args.next(), "--rate"),
            "--synapse-rate" => options.synapse_rate = number(args.next(), "--synapse-rate"),
            "--conversations" => options.conversations = number(args.next(), "--conversations") as usize,
            "--connections" => options.connections = number(args.next(), "--connections") as usize,
            "--backlog" => options.backlog = Some(number(args.next(), "--backlog")),
            "--lookups" => options.lookups = number(args.next(), "--lookups") as usize,
            "--replicas" => {
                options.replicas = number(args.next(), "--replicas") as usize;
                assert!(options.replicas <= 3, "--replicas 1 to 3 (deploy/haproxy/haproxy.cfg names three)");
            }
            _ => {} // cargo bench passes --bench
        }
    }
    if options.modes.is_empty() {
        options.modes = vec!["loopback".into(), "synapse".into()];
    }
    options
}

/// A DM3 user of the bench, and the keys of their (loopback) delivery service.
struct Dm3User {
    name: String,
    ds_name: String,
    wallet: Wallet,
    keys: ProfileKeys,
    /// Their delivery service's encryption key pair: a gateway user's client seals to it.
    ds_kx: KxKeyPair,
}

impl Dm3User {
    fn new(n: usize) -> Self {
        let wallet = Wallet::generate();
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        Self {
            name: format!("alice{n}.bench.eth"),
            ds_name: format!("alice{n}-ds.bench.eth"),
            wallet,
            keys,
            ds_kx: KxKeyPair::generate(),
        }
    }

    /// Their `[[names.static]]` entries: the user, and their delivery service at `ds_url`.
    fn static_entries(&self, ds_url: &str) -> [String; 2] {
        let profile = UserProfile::from_keys(&self.keys, [self.ds_name.as_str()]).sign(&self.wallet);
        let ds = DeliveryServiceProfile::new(
            self.ds_kx.public_b64(),
            SigningKeyPair::generate().public_b64(),
            ds_url,
        );
        [
            format!(
                "{{ name = {:?}, address = {:?}, profile = {:?} }}",
                self.name,
                checksum(&self.wallet.address()),
                profile.to_text_record()
            ),
            format!("{{ name = {:?}, delivery_service = {:?} }}", self.ds_name, ds.to_text_record()),
        ]
    }

    fn ghost(&self, server_name: &str) -> String {
        format!("@_dm3_{}:{server_name}", self.name)
    }
}

/// The node binary of this build.
fn binary() -> PathBuf {
    std::env::var_os("DM3_BENCH_NODE")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dm3-bridge")), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node configured with `[matrix]`, not yet running.
struct PreparedNode {
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    address: String,
    /// Where each process listens: `address` itself, or one address per replica.
    listen: Vec<String>,
    registration_yaml: String,
    ds_key: [u8; 32],
}

fn prepare_node(
    server_name: &str,
    users: &[Dm3User],
    services: &DeliveryServices,
    replicas: usize,
) -> PreparedNode {
    let dir = tempfile::tempdir().unwrap();
    // With replicas, the address clients use is HAProxy's, and each replica listens on its own.
    let address = format!("127.0.0.1:{}", free_port());
    let listen: Vec<String> = match replicas {
        0 => vec![address.clone()],
        n => (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect(),
    };
    let url = format!("http://{address}");
    let status = Command::new(binary())
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .args(["--name", NODE_NAME, "--public-url", &url, "--listen", &listen[0]])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "dm3-bridge init failed");
    let config = dir.path().join("config.toml");
    let entries: Vec<String> =
        users.iter().enumerate().flat_map(|(n, user)| user.static_entries(&services.url(n))).collect();
    let mut env = vec![
        ("DM3_BRIDGE_NAMES__STATIC".to_owned(), format!("[{}]", entries.join(", "))),
        ("DM3_BRIDGE_NAMES__ALLOW_PRIVATE_ADDRESSES".to_owned(), "true".to_owned()),
        ("DM3_BRIDGE_IDENTITIES__PARENT".to_owned(), PARENT.to_owned()),
        ("DM3_BRIDGE_ADMIN__TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        (
            "DM3_BRIDGE_LOG__LEVEL".to_owned(),
            std::env::var("BRIDGE_LOAD_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
    ];
    // The load generator is one client (127.0.0.1) to the per-client limits: a budget it
    // cannot exhaust, with the limiter still on every submit. A build from before the limits
    // (an A/B against an older binary) has no such keys: its `init` writes no section.
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
    let generated = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .envs(env.iter().cloned())
        .args([
            "generate-registration",
            "--homeserver-url",
            "http://127.0.0.1:1",
            "--server-name",
            server_name,
        ])
        .args(["--bridge-url", &url])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "generate-registration: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let registration_yaml = std::fs::read_to_string(dir.path().join("registration.yaml")).unwrap();
    let profile = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .envs(env.iter().cloned())
        .args(["profile", "--json"])
        .output()
        .unwrap();
    assert!(profile.status.success(), "dm3-bridge profile: {}", String::from_utf8_lossy(&profile.stderr));
    let profile: Value = serde_json::from_slice(&profile.stdout).unwrap();
    let ds_key =
        dm3::encoding::b64_decode_array(profile["profile"]["publicEncryptionKey"].as_str().unwrap()).unwrap();
    if replicas > 0 {
        // Behind HAProxy, as deploy/haproxy/haproxy.cfg says.
        env.push(("DM3_BRIDGE_RATE_LIMITS__TRUST_FORWARDED_FOR".to_owned(), "true".to_owned()));
        env.push(("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS_PER_IP".to_owned(), "0".to_owned()));
    }
    PreparedNode { dir, config, env, address, listen, registration_yaml, ds_key }
}

/// The node, running: one process, or its replicas behind HAProxy.
struct Node {
    children: Vec<Child>,
    _haproxy: Option<haproxy::Haproxy>,
    address: String,
    url: String,
    ds_key: [u8; 32],
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl PreparedNode {
    async fn run(self, homeserver_url: &str) -> Node {
        let http = reqwest::Client::new();
        let replicated = self.listen[0] != self.address;
        let database = if replicated { Some(postgres::fresh_database().await) } else { None };
        let mut children = Vec::new();
        // One after the other: the first makes the gateway's signing key the others share.
        for listen in &self.listen {
            let mut command = Command::new(binary());
            command
                .arg("--config")
                .arg(&self.config)
                .envs(self.env.iter().cloned())
                .env("DM3_BRIDGE_MATRIX__HOMESERVER_URL", homeserver_url)
                .env("DM3_BRIDGE_NODE__LISTEN", listen);
            if let Some(database) = &database {
                command.env("DM3_BRIDGE_DATABASE__URL", database.expose());
            }
            children.push(command.arg("run").stdout(Stdio::null()).spawn().unwrap());
            let ready = format!("http://{listen}/ready");
            let mut tries = 0;
            while !http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
                tries += 1;
                assert!(tries < 1200, "the node on {listen} did not become ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let haproxy = match database {
            None => None,
            Some(_) => {
                let port = |i: usize| {
                    // The servers HAProxy names beyond the replicas run are down (a closed port).
                    let listen =
                        self.listen.get(i).cloned().unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
                    listen.rsplit_once(':').unwrap().1.parse::<u16>().unwrap()
                };
                let lb_port = self.address.rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
                let haproxy = haproxy::Haproxy::start(lb_port, [port(0), port(1), port(2)]).await;
                // Its health checks (every second, down after two) take the closed ports out.
                tokio::time::sleep(Duration::from_secs(3)).await;
                Some(haproxy)
            }
        };
        let url = format!("http://{}", self.address);
        Node {
            children,
            _haproxy: haproxy,
            address: self.address,
            url,
            ds_key: self.ds_key,
            http,
            _dir: self.dir,
        }
    }
}

impl Node {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// The virtual identity of Matrix user `user_id`: its name and encryption key, waiting for
    /// the bridge to make it.
    async fn identity(&self, user_id: &str) -> (String, [u8; 32]) {
        let path = format!("/admin/identities/matrix:{user_id}/profile");
        for _ in 0..600 {
            let (status, body) = self.admin(reqwest::Method::GET, &path, None).await;
            if status == 200 {
                let key = body["profile"]["profile"]["publicEncryptionKey"].as_str().unwrap();
                return (
                    body["name"].as_str().unwrap().to_owned(),
                    dm3::encoding::b64_decode_array(key).unwrap(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the bridge made no identity for {user_id}");
    }

    fn cpu(&self) -> Duration {
        self.children.iter().map(|child| cpu_time(&child.id().to_string())).sum()
    }
}

/// User plus system CPU time of a process (`/proc/<pid>/stat`, ticks of 1/100 s).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap()
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().map_or(0.0, ms)
}

/// Latency percentiles of `latencies`, in ms.
fn latency_summary(mut latencies: Vec<Duration>) -> Value {
    latencies.sort_unstable();
    json!({
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
    })
}

/// The sealed `dm3_submitMessage` requests of messages `range` from alice<i % n> to bob's
/// identity `bob` (key `bob_key`: his virtual identity's, or in gateway mode his own), on every
/// core. With `hashes`, each envelope's `messageHash` is registered with its index, the only way
/// to tell a carried sealed envelope apart (the loopback homeserver sees no text).
fn seal(
    users: &[Dm3User],
    bob: &str,
    bob_key: [u8; 32],
    node: &Node,
    range: std::ops::Range<u64>,
    hashes: Option<&Mutex<HashMap<String, u64>>>,
) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let start = range.start;
    let count = usize::try_from(range.end - range.start).unwrap();
    let timestamp = now_ms();
    let sealed: Vec<(usize, (String, Vec<u8>))> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (thread..count)
                        .step_by(threads)
                        .map(|offset| {
                            let index = start + offset as u64;
                            let sender = &users[index as usize % users.len()];
                            let message = MessageBuilder::new(bob, &sender.name, timestamp + index)
                                .text(&format!("bench#{index}# a typical short chat line"), None)
                                .sign(&sender.keys.signing);
                            let envelope =
                                Envelope::seal(&message, &sender.keys.signing, &bob_key, &node.ds_key)
                                    .unwrap();
                            let hash =
                                envelope.to_value()["metadata"]["messageHash"].as_str().unwrap().to_owned();
                            let body = envelope.jsonrpc_submit_body();
                            (offset, (hash, http1::post_request(&node.address, "/rpc", body.as_bytes())))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut sealed = sealed;
    sealed.sort_by_key(|(offset, _)| *offset);
    if let Some(hashes) = hashes {
        let mut hashes = hashes.lock().unwrap();
        hashes.extend(sealed.iter().map(|(offset, (hash, _))| (hash.clone(), start + *offset as u64)));
    }
    sealed.into_iter().map(|(_, (_, request))| request).collect()
}

/// One submit on a keep-alive connection (opened if needed): whether the node took it.
async fn submit(connection: &mut Option<http1::Connection>, address: &str, request: &[u8]) -> bool {
    send(connection, address, request).await == Some(200)
}

/// One request on a keep-alive connection (opened if needed): the answer's status, if any.
async fn send(connection: &mut Option<http1::Connection>, address: &str, request: &[u8]) -> Option<u16> {
    if connection.is_none() {
        *connection = http1::Connection::open(address).await.ok();
    }
    let open = connection.as_mut()?;
    let mut answer = open.send(request).await;
    if answer.is_err() {
        // The node closes a kept-alive connection that waited for its next request longer than
        // limits.header_timeout_secs: send again on a new one, as a pooling client does.
        answer = match http1::Connection::open(address).await {
            Ok(open) => connection.insert(open).send(request).await,
            Err(e) => Err(e),
        };
    }
    match answer {
        Ok(answer) => {
            if !answer.reusable {
                *connection = None;
            }
            Some(answer.status)
        }
        Err(_) => {
            *connection = None;
            None
        }
    }
}

/// Where bob's side sees the DM3 → Matrix messages arrive: index → arrival.
type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

/// Waits until `arrivals` holds every index of `expected`; the last arrival.
async fn drain(what: &str, arrivals: &Arrivals, expected: &[u64]) -> Instant {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        {
            let seen = arrivals.lock().unwrap();
            let missing = expected.iter().filter(|i| !seen.contains_key(i)).count();
            if missing == 0 {
                return expected.iter().map(|i| seen[i]).max().unwrap_or_else(Instant::now);
            }
            assert!(Instant::now() < deadline, "{what}: {missing} of {} never arrived", expected.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How much load a direction gets.
#[derive(Clone, Copy)]
struct Load {
    backlog: u64,
    rate: u64,
    seconds: u64,
    /// Concurrent submitters of the DM3 → Matrix backlog.
    connections: usize,
}

/// DM3 → Matrix, both phases; message indexes start at `first_index`.
async fn dm3_to_matrix(
    node: &Node,
    users: &[Dm3User],
    bob: &(String, [u8; 32]),
    arrivals: &Arrivals,
    load: &Load,
    first_index: u64,
    hashes: Option<&Mutex<HashMap<String, u64>>>,
) -> Value {
    let Load { backlog, rate, seconds, connections } = *load;
    // Backlog: every message submitted as fast as the node takes them.
    let requests = seal(users, &bob.0, bob.1, node, first_index..first_index + backlog, hashes);
    let cpu_before = node.cpu();
    let started = Instant::now();
    let (statuses, accepted_in, _) = names_flood::flood(node, requests, connections).await;
    assert!(statuses.iter().all(|(status, _)| *status == 200), "submits failed: statuses {statuses:?}");
    let expected: Vec<u64> = (first_index..first_index + backlog).collect();
    let last = drain("DM3 → Matrix backlog", arrivals, &expected).await;
    let took = last - started;
    let backlog_cpu = node.cpu() - cpu_before;
    let backlog_summary = json!({
        "messages": backlog,
        "accepted_per_sec": backlog as f64 / accepted_in.as_secs_f64(),
        "delivered_per_sec": backlog as f64 / took.as_secs_f64(),
        "node_cpu_us_per_message": backlog_cpu.as_secs_f64() * 1e6 / backlog as f64,
        "node_cpu_cores": backlog_cpu.as_secs_f64() / took.as_secs_f64(),
    });

    // Latency: an open-loop schedule.
    let first = first_index + backlog;
    let count = rate * seconds;
    let requests = Arc::new(seal(users, &bob.0, bob.1, node, first..first + count, hashes));
    let idle: Arc<Mutex<Vec<http1::Connection>>> = Arc::new(Mutex::new(Vec::new()));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let cpu_before = node.cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for offset in 0..count as usize {
        ticker.tick().await;
        let (address, requests, idle) = (node.address.clone(), requests.clone(), idle.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = idle.lock().unwrap().pop();
            let submitted = Instant::now();
            let ok = submit(&mut connection, &address, &requests[offset]).await;
            let accepted = Instant::now();
            if let Some(connection) = connection {
                idle.lock().unwrap().push(connection);
            }
            (ok, submitted, accepted)
        }));
    }
    let mut times = Vec::new();
    for task in tasks {
        let (ok, submitted, accepted) = task.await.unwrap();
        assert!(ok, "a submit failed");
        times.push((submitted, accepted));
    }
    let expected: Vec<u64> = (first..first + count).collect();
    let last = drain("DM3 → Matrix at a fixed rate", arrivals, &expected).await;
    let cpu = node.cpu() - cpu_before;
    let seen = arrivals.lock().unwrap();
    let end_to_end: Vec<Duration> = expected.iter().zip(&times).map(|(i, (s, _))| seen[i] - *s).collect();
    let after_accept: Vec<Duration> =
        expected.iter().zip(&times).map(|(i, (_, a))| seen[i].saturating_duration_since(*a)).collect();
    let submit_only: Vec<Duration> = times.iter().map(|(s, a)| *a - *s).collect();
    json!({
        "backlog": backlog_summary,
        "fixed_rate": {
            "rate": rate,
            "messages": count,
            "delivered_per_sec": count as f64 / (last - started).as_secs_f64(),
            "submit_to_homeserver": latency_summary(end_to_end),
            "accepted_to_homeserver": latency_summary(after_accept),
            "submit_answer": latency_summary(submit_only),
            "node_cpu_us_per_message": cpu.as_secs_f64() * 1e6 / count as f64,
        },
    })
}

/// How Matrix → DM3 messages are handed to the node: loopback transactions or bob on Synapse.
enum MatrixSide<'a> {
    /// `contents`: the content of message `i`, if not bob's marked text (gateway mode: the
    /// `network.dm3.envelope` his client sealed).
    Loopback {
        node: &'a Node,
        hs_token: String,
        bob: String,
        contents: Option<Arc<HashMap<u64, Value>>>,
    },
    Synapse {
        bob: BobOnSynapse,
    },
}

/// bob on Synapse: a user on the client-server API, or his own client on matrix-sdk, which
/// encrypts in an encrypted room.
#[derive(Clone)]
enum BobOnSynapse {
    Raw(synapse::MatrixUser),
    Sdk(Arc<MatrixUser>),
}

impl BobOnSynapse {
    async fn send_text(&self, room: &str, index: u64, text: &str) {
        match self {
            BobOnSynapse::Raw(bob) => {
                bob.send_text(room, &format!("bench{index}"), text).await.unwrap();
            }
            BobOnSynapse::Sdk(bob) => {
                bob.send_text(&ids::room_id(room).unwrap(), text).await.unwrap();
            }
        }
    }
}

/// Matrix → DM3, both phases; message indexes (and so event ids) start at `first_index`.
/// `rooms[n]` is bob's portal with alice<n>.
#[allow(clippy::too_many_arguments)]
async fn matrix_to_dm3(
    side: &MatrixSide<'_>,
    node: &Node,
    rooms: &[String],
    services: &DeliveryServices,
    backlog: u64,
    rate: u64,
    seconds: u64,
    first_index: u64,
) -> Value {
    let arrivals_before: Vec<usize> =
        (0..rooms.len()).map(|n| services.log.arrivals.lock().unwrap().get(&n).map_or(0, Vec::len)).collect();
    // Backlog.
    let cpu_before = node.cpu();
    let started = Instant::now();
    let created: Vec<Vec<Instant>> = hand_in(side, rooms, backlog, None, first_index).await;
    let accepted_in = started.elapsed();
    let last = drain_ds(services, &arrivals_before, &created).await;
    let took = last - started;
    let cpu = node.cpu() - cpu_before;
    let backlog_summary = json!({
        "messages": backlog,
        "accepted_per_sec": backlog as f64 / accepted_in.as_secs_f64(),
        "delivered_per_sec": backlog as f64 / took.as_secs_f64(),
        "node_cpu_us_per_message": cpu.as_secs_f64() * 1e6 / backlog as f64,
        "node_cpu_cores": cpu.as_secs_f64() / took.as_secs_f64(),
    });

    // Latency.
    let arrivals_before: Vec<usize> =
        (0..rooms.len()).map(|n| services.log.arrivals.lock().unwrap().get(&n).map_or(0, Vec::len)).collect();
    let count = rate * seconds;
    let cpu_before = node.cpu();
    let started = Instant::now();
    let created = hand_in(side, rooms, count, Some(rate), first_index + backlog).await;
    let last = drain_ds(services, &arrivals_before, &created).await;
    let cpu = node.cpu() - cpu_before;
    let arrivals = services.log.arrivals.lock().unwrap();
    let latencies: Vec<Duration> = created
        .iter()
        .enumerate()
        .flat_map(|(n, times)| {
            let arrived = &arrivals[&n][arrivals_before[n]..];
            times.iter().zip(arrived).map(|(c, a)| a.saturating_duration_since(*c)).collect::<Vec<_>>()
        })
        .collect();
    json!({
        "backlog": backlog_summary,
        "fixed_rate": {
            "rate": rate,
            "messages": count,
            "delivered_per_sec": count as f64 / (last - started).as_secs_f64(),
            "event_to_delivery_service": latency_summary(latencies),
            "node_cpu_us_per_message": cpu.as_secs_f64() * 1e6 / count as f64,
        },
    })
}

/// Waits until every room's delivery service got as many envelopes as were created for it;
/// the last arrival.
async fn drain_ds(services: &DeliveryServices, before: &[usize], created: &[Vec<Instant>]) -> Instant {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        {
            let arrivals = services.log.arrivals.lock().unwrap();
            let got = |n: usize| arrivals.get(&n).map_or(0, Vec::len) - before[n];
            let missing: usize =
                created.iter().enumerate().map(|(n, c)| c.len().saturating_sub(got(n))).sum();
            if missing == 0 {
                for (n, c) in created.iter().enumerate() {
                    assert_eq!(
                        got(n),
                        c.len(),
                        "alice{n}'s delivery service got more envelopes than bob sent"
                    );
                }
                return (0..created.len()).filter_map(|n| arrivals.get(&n)?.last().copied()).max().unwrap();
            }
            assert!(Instant::now() < deadline, "Matrix → DM3: {missing} envelopes never arrived");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hands `count` messages of bob to the node, round-robin over `rooms`, all at once or at
/// `rate`/s; per room, when each message was created, in order.
async fn hand_in(
    side: &MatrixSide<'_>,
    rooms: &[String],
    count: u64,
    rate: Option<u64>,
    first_index: u64,
) -> Vec<Vec<Instant>> {
    match side {
        MatrixSide::Loopback { node, hs_token, bob, contents } => {
            transactions(node, hs_token, bob, rooms, count, rate, first_index, contents.as_deref()).await
        }
        MatrixSide::Synapse { bob } => synapse_sends(bob, rooms, count, rate, first_index).await,
    }
}

/// As Synapse pushes to an application service: one transaction in flight, carrying every event
/// created meanwhile (at most 100).
#[allow(clippy::too_many_arguments)]
async fn transactions(
    node: &Node,
    hs_token: &str,
    bob: &str,
    rooms: &[String],
    count: u64,
    rate: Option<u64>,
    first_index: u64,
    contents: Option<&HashMap<u64, Value>>,
) -> Vec<Vec<Instant>> {
    let pending: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let created: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); rooms.len()]));
    let generator = {
        let (pending, created) = (pending.clone(), created.clone());
        let rooms = rooms.len() as u64;
        async move {
            let mut ticker = rate.map(|rate| {
                let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                ticker
            });
            for index in first_index..first_index + count {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let now = Instant::now();
                // Created and queued under one lock: a room's order in `created` is its order
                // in the transactions.
                let mut pending = pending.lock().unwrap();
                pending.push((index, now));
                created.lock().unwrap()[(index % rooms) as usize].push(now);
            }
        }
    };
    let generator = tokio::spawn(generator);
    let client = reqwest::Client::new();
    let mut sent = 0;
    let mut txn = 0u64;
    let scope = now_ms();
    while sent < count {
        let batch: Vec<(u64, Instant)> = {
            let mut pending = pending.lock().unwrap();
            let take = pending.len().min(MAX_EVENTS_PER_TRANSACTION);
            pending.drain(..take).collect()
        };
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        let events: Vec<Value> = batch
            .iter()
            .map(|(index, _)| {
                json!({
                    "type": "m.room.message",
                    "room_id": rooms[(*index % rooms.len() as u64) as usize],
                    "sender": bob,
                    "event_id": format!("$bench{index}:{LOOPBACK_SERVER}"),
                    "origin_server_ts": now_ms(),
                    "content": contents.map_or_else(
                        || json!({"msgtype": "m.text", "body": format!("bench#{index}# a typical short chat line")}),
                        |contents| contents[index].clone(),
                    ),
                })
            })
            .collect();
        txn += 1;
        let response = client
            .put(format!("{}/_matrix/app/v1/transactions/{scope}-{txn}", node.url))
            .bearer_auth(hs_token)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "transaction refused: {}", response.status());
        sent += batch.len() as u64;
    }
    generator.await.unwrap();
    Arc::try_unwrap(created).unwrap().into_inner().unwrap()
}

/// bob sends through Synapse: one send in flight per room (so that a room's order is the order
/// of creation), at `rate`/s over all rooms or as fast as Synapse answers.
async fn synapse_sends(
    bob: &BobOnSynapse,
    rooms: &[String],
    count: u64,
    rate: Option<u64>,
    first_index: u64,
) -> Vec<Vec<Instant>> {
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    for room in rooms {
        let (queue, mut scheduled) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
        queues.push(queue);
        let (bob, room) = (bob.clone(), room.clone());
        senders.push(tokio::spawn(async move {
            let mut created = Vec::new();
            while let Some((index, at)) = scheduled.recv().await {
                let text = format!("bench#{index}# a typical short chat line");
                bob.send_text(&room, index, &text).await;
                created.push(at);
            }
            created
        }));
    }
    let mut ticker = rate.map(|rate| {
        let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticker
    });
    for index in first_index..first_index + count {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        queues[(index % rooms.len() as u64) as usize].send((index, Instant::now())).unwrap();
    }
    drop(queues);
    let mut created = Vec::new();
    for sender in senders {
        created.push(sender.await.unwrap());
    }
    created
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The loopback mode; with `gateway`, followed by the same load with bob in gateway mode.
async fn run_loopback(options: &Options, gateway: bool) -> Value {
    let users: Vec<Dm3User> = (0..options.conversations).map(Dm3User::new).collect();
    let services = DeliveryServices::start().await;
    let homeserver = Homeserver::start(LOOPBACK_SERVER).await;
    let prepared = prepare_node(LOOPBACK_SERVER, &users, &services, options.replicas);
    let hs_token = registration_field(&prepared.registration_yaml, "hs_token");
    let node = prepared.run(&homeserver.url).await;
    let bob_id = format!("@bob:{LOOPBACK_SERVER}");
    let (status, body) = node
        .admin(
            reqwest::Method::POST,
            "/admin/identities",
            Some(json!({"network": "matrix", "userId": bob_id})),
        )
        .await;
    assert_eq!(status, 201, "creating bob's identity: {body}");
    let bob = node.identity(&bob_id).await;

    // Warm-up: alice<n>'s first message opens the portal (a DM created by her ghost).
    let arrivals: Arrivals = homeserver.log.sends.clone();
    let warm_up = options.conversations as u64;
    let requests = seal(&users, &bob.0, bob.1, &node, 0..warm_up, None);
    let mut connection = None;
    for request in &requests {
        assert!(submit(&mut connection, &node.address, request).await, "a warm-up submit failed");
    }
    drain("the warm-up", &arrivals, &(0..warm_up).collect::<Vec<_>>()).await;
    let rooms: Vec<String> = users
        .iter()
        .map(|user| {
            let ghost = user.ghost(LOOPBACK_SERVER);
            let rooms = homeserver.log.rooms.lock().unwrap();
            rooms
                .iter()
                .find(|(_, creator)| *creator == ghost)
                .unwrap_or_else(|| panic!("no DM of {ghost}"))
                .0
                .clone()
        })
        .collect();
    accept_invites(&node, &hs_token, &bob_id, &rooms).await;

    let load_before = load_average();
    let backlog = options.backlog.unwrap_or(options.seconds * 1_000);
    eprintln!(
        "loopback: DM3 → Matrix, {backlog} queued, then {}/s for {} s …",
        options.rate, options.seconds
    );
    let load =
        Load { backlog, rate: options.rate, seconds: options.seconds, connections: options.connections };
    let to_matrix = dm3_to_matrix(&node, &users, &bob, &arrivals, &load, warm_up, None).await;
    eprintln!("loopback: Matrix → DM3 …");
    let side =
        MatrixSide::Loopback { node: &node, hs_token: hs_token.clone(), bob: bob_id.clone(), contents: None };
    let to_dm3 =
        matrix_to_dm3(&side, &node, &rooms, &services, backlog, options.rate, options.seconds, 0).await;
    let mut row = json!({
        "mode": "loopback",
        "replicas": options.replicas,
        "conversations": options.conversations,
        "load_average_before": load_before,
        "dm3_to_matrix": to_matrix,
        "matrix_to_dm3": to_dm3,
    });
    if gateway {
        let next = warm_up + 2 * backlog + options.rate * options.seconds;
        let world = GatewayWorld {
            node: &node,
            users: &users,
            homeserver: &homeserver,
            services: &services,
            rooms: &rooms,
        };
        let gateway_row = run_gateway(&world, &bob_id, &hs_token, &arrivals, &load, next).await;
        row["gateway_vs_bridge"] = ratios(&row, &gateway_row);
        row["gateway"] = gateway_row;
        row["mode"] = json!("gateway");
    }
    row
}

/// What the gateway phases run against: the loopback world the bridge phases used.
struct GatewayWorld<'a> {
    node: &'a Node,
    users: &'a [Dm3User],
    homeserver: &'a Homeserver,
    services: &'a DeliveryServices,
    rooms: &'a [String],
}

/// bob takes his name into his own custody, then both directions run again as in bridge mode:
/// DM3 → Matrix envelopes sealed to bob's own key, carried sealed; Matrix → DM3 envelopes sealed
/// by bob's client, checked and posted as they are. Indexes start at `first_index`.
async fn run_gateway(
    world: &GatewayWorld<'_>,
    bob_id: &str,
    hs_token: &str,
    arrivals: &Arrivals,
    load: &Load,
    first_index: u64,
) -> Value {
    let GatewayWorld { node, users, homeserver, services, rooms } = *world;
    let wallet = Wallet::generate();
    let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
    let profile = UserProfile::from_keys(&keys, [NODE_NAME]).sign(&wallet);
    let path = format!("/admin/identities/matrix:{bob_id}/self-custody");
    let body = json!({"address": checksum(&wallet.address()), "signedProfile": profile.to_value()});
    let (status, answer) = node.admin(reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(status, 200, "bob's switch to self-custody: {answer}");
    let bob_name = answer["name"].as_str().unwrap().to_owned();
    let bob = (bob_name.clone(), *keys.encryption.public());

    eprintln!("gateway: DM3 → Matrix, sealed envelopes carried to bob …");
    let to_matrix =
        dm3_to_matrix(node, users, &bob, arrivals, load, first_index, Some(&homeserver.log.gateway_hashes))
            .await;

    eprintln!("gateway: Matrix → DM3, envelopes bob's client sealed …");
    let count = load.backlog + load.rate * load.seconds;
    let contents = sealed_by_bob(users, &bob_name, &keys, first_index..first_index + count);
    let side = MatrixSide::Loopback {
        node,
        hs_token: hs_token.to_owned(),
        bob: bob_id.to_owned(),
        contents: Some(Arc::new(contents)),
    };
    let to_dm3 =
        matrix_to_dm3(&side, node, rooms, services, load.backlog, load.rate, load.seconds, first_index).await;
    json!({"dm3_to_matrix": to_matrix, "matrix_to_dm3": to_dm3})
}

/// bob's messages `range`, sealed by his own client for alice<i % n> and her delivery service,
/// as `network.dm3.envelope` contents (docs/gateway.md 1.2), on every core.
fn sealed_by_bob(
    users: &[Dm3User],
    bob: &str,
    keys: &ProfileKeys,
    range: std::ops::Range<u64>,
) -> HashMap<u64, Value> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let timestamp = now_ms();
    let indexes: Vec<u64> = range.collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = indexes
            .chunks(indexes.len().div_ceil(threads).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&index| {
                            let alice = &users[(index % users.len() as u64) as usize];
                            let message = MessageBuilder::new(&alice.name, bob, timestamp + index)
                                .text(&format!("bench#{index}# a typical short chat line"), None)
                                .sign(&keys.signing);
                            let envelope = Envelope::seal(
                                &message,
                                &keys.signing,
                                alice.keys.encryption.public(),
                                alice.ds_kx.public(),
                            )
                            .unwrap();
                            let ds = EnsName::parse(&alice.ds_name).unwrap();
                            let document = GatewayEnvelope::from_envelope(&envelope, ds).unwrap();
                            (index, MatrixGatewayContent::encode(document).unwrap().to_content())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The second run over the first (gateway over bridge mode, encrypted over clear) for each
/// direction and phase: delivered messages/s and the node's CPU per message.
fn ratios(bridge: &Value, gateway: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for direction in ["dm3_to_matrix", "matrix_to_dm3"] {
        for phase in ["backlog", "fixed_rate"] {
            for figure in ["delivered_per_sec", "node_cpu_us_per_message"] {
                let (b, g) = (&bridge[direction][phase][figure], &gateway[direction][phase][figure]);
                if let (Some(b), Some(g)) = (b.as_f64(), g.as_f64()) {
                    out.insert(format!("{direction}.{phase}.{figure}"), json!(g / b));
                }
            }
        }
    }
    Value::Object(out)
}

/// bob joins the DMs the ghosts invited him to, as Synapse would tell the bridge, and the bench
/// waits for the engine to have taken it: until then a portal holds at most
/// `engine.max_held_until_consent` messages for him (docs/engine.md, "First contact").
async fn accept_invites(node: &Node, hs_token: &str, bob: &str, rooms: &[String]) {
    let joins: Vec<Value> = rooms
        .iter()
        .enumerate()
        .map(|(n, room)| {
            json!({
                "type": "m.room.member",
                "room_id": room,
                "sender": bob,
                "state_key": bob,
                "event_id": format!("$join{n}:{LOOPBACK_SERVER}"),
                "origin_server_ts": now_ms(),
                "content": {"membership": "join"},
            })
        })
        .collect();
    let response = node
        .http
        .put(format!("{}/_matrix/app/v1/transactions/joins-{}", node.url, now_ms()))
        .bearer_auth(hs_token)
        .json(&json!({"events": joins}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "the joins were refused: {}", response.status());
    wait_for("bob's joins taken", || async {
        let mut open = 0;
        for state in ["pending", "retrying"] {
            let (status, body) = node
                .admin(reqwest::Method::GET, &format!("/admin/jobs?queue=outbox&state={state}"), None)
                .await;
            assert_eq!(status, 200, "listing jobs: {body}");
            open += body["jobs"].as_array().map_or(0, Vec::len);
        }
        open == 0
    })
    .await;
}

fn registration_field(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .map(|value| value.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .unwrap_or_else(|| panic!("no {key} in the registration"))
}

/// Who bob is in a synapse run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bob {
    /// A user on the client-server API, reading his `/sync` himself.
    Raw,
    /// His own client on matrix-sdk (`clients/matrix`), in DMs encrypted or not.
    Sdk(RoomEncryption),
}

async fn run_synapse(options: &Options, kind: Bob) -> Value {
    let users: Vec<Dm3User> = (0..options.conversations).map(Dm3User::new).collect();
    let services = DeliveryServices::start().await;
    let server = synapse::SERVER_NAME;
    let prepared = prepare_node(server, &users, &services, options.replicas);
    let homeserver =
        synapse::Synapse::start(&prepared.registration_yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
    let node = prepared.run(homeserver.url()).await;
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let (bob, rooms, listener) = match kind {
        Bob::Raw => {
            let bob = homeserver.register_user("bob").await.unwrap();
            let mut rooms = Vec::new();
            for user in &users {
                let ghost = user.ghost(server);
                let room = bob
                    .create_room(
                        json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}),
                    )
                    .await
                    .unwrap();
                let path = format!("/_matrix/client/v3/rooms/{}/joined_members", synapse::encode(&room));
                wait_for("the ghost joins", || async {
                    let answer = bob.call(reqwest::Method::GET, &path, None).await.unwrap();
                    answer["joined"].get(&ghost).is_some()
                })
                .await;
                rooms.push(room);
            }
            // bob's client: a /sync loop noting when each bench message appears.
            let listener = tokio::spawn(sync_loop(bob.clone(), arrivals.clone()));
            (BobOnSynapse::Raw(bob), rooms, listener)
        }
        Bob::Sdk(encryption) => {
            let password = homeserver.register_account("bob").await.unwrap();
            let credentials =
                Credentials { homeserver: homeserver.url().to_owned(), user: "bob".to_owned(), password };
            let bob =
                Arc::new(credentials.login("bob's bench client").await.unwrap_or_else(|e| panic!("{e}")));
            let mut rooms = Vec::new();
            for user in &users {
                let ghost = ids::user_id(&user.ghost(server)).unwrap();
                let room = bob.create_dm(&ghost, encryption).await.unwrap();
                // His client shares a room key with the members it has seen join.
                wait_for("the ghost joins", || async {
                    bob.sync_once().await.unwrap();
                    bob.joined_members(&room).await.unwrap().contains(&ghost)
                })
                .await;
                rooms.push(room.to_string());
            }
            let mut messages = bob.watch_messages().unwrap();
            bob.start_sync();
            let arrivals = arrivals.clone();
            let encrypted = encryption == RoomEncryption::Encrypted;
            let listener = tokio::spawn(async move {
                while let Some(message) = messages.recv().await {
                    if let Some(index) = marker(&message.body) {
                        assert_eq!(message.encrypted, encrypted, "{message:?}");
                        arrivals.lock().unwrap().entry(index).or_insert(message.at);
                    }
                }
            });
            (BobOnSynapse::Sdk(bob), rooms, listener)
        }
    };
    let bob_id = match &bob {
        BobOnSynapse::Raw(bob) => bob.user_id.clone(),
        BobOnSynapse::Sdk(bob) => bob.user_id().unwrap().to_string(),
    };
    let identity = node.identity(&bob_id).await;

    let load_before = load_average();
    let backlog = options.seconds * options.synapse_rate;
    let rate = options.synapse_rate;
    eprintln!("synapse: DM3 → Matrix, {backlog} queued, then {rate}/s for {} s …", options.seconds);
    let load = Load { backlog, rate, seconds: options.seconds, connections: options.connections };
    let to_matrix = dm3_to_matrix(&node, &users, &identity, &arrivals, &load, 0, None).await;
    eprintln!("synapse: Matrix → DM3 …");
    let side = MatrixSide::Synapse { bob };
    let to_dm3 = matrix_to_dm3(&side, &node, &rooms, &services, backlog, rate, options.seconds, 0).await;
    listener.abort();
    json!({
        "mode": match kind {
            Bob::Raw => "synapse",
            Bob::Sdk(RoomEncryption::Clear) => "synapse, bob on matrix-sdk, rooms in the clear",
            Bob::Sdk(RoomEncryption::Encrypted) => "synapse, bob on matrix-sdk, rooms encrypted",
        },
        "replicas": options.replicas,
        "conversations": options.conversations,
        "load_average_before": load_before,
        "dm3_to_matrix": to_matrix,
        "matrix_to_dm3": to_dm3,
    })
}

/// `encrypted`: the synapse run twice with bob on matrix-sdk, first in DMs in the clear, then
/// in encrypted DMs, where the ghosts speak Megolm both ways; the second beside the first.
async fn run_encrypted(options: &Options) -> Value {
    let clear = run_synapse(options, Bob::Sdk(RoomEncryption::Clear)).await;
    let encrypted = run_synapse(options, Bob::Sdk(RoomEncryption::Encrypted)).await;
    let p50 = |row: &Value, direction: &str, latency: &str| {
        row[direction]["fixed_rate"][latency]["p50_ms"].as_f64().unwrap_or(f64::NAN)
    };
    let overhead = |direction: &str, latency: &str| {
        json!(p50(&encrypted, direction, latency) - p50(&clear, direction, latency))
    };
    json!({
        "mode": "encrypted",
        "clear": clear,
        "encrypted": encrypted,
        "encrypted_vs_clear": ratios(&clear, &encrypted),
        "p50_overhead_ms": {
            "dm3_to_matrix.submit_to_homeserver": overhead("dm3_to_matrix", "submit_to_homeserver"),
            "dm3_to_matrix.accepted_to_homeserver": overhead("dm3_to_matrix", "accepted_to_homeserver"),
            "matrix_to_dm3.event_to_delivery_service": overhead("matrix_to_dm3", "event_to_delivery_service"),
        },
    })
}

/// bob's `/sync`, long-polling: every ghost message with a bench marker, with when it came.
async fn sync_loop(bob: synapse::MatrixUser, arrivals: Arrivals) {
    let filter = json!({
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {"timeline": {"limit": 1000, "types": ["m.room.message"]}, "state": {"lazy_load_members": true}},
    });
    let filter = synapse::encode(&filter.to_string());
    let mut since: Option<String> = None;
    loop {
        let path = match &since {
            Some(token) => format!("/_matrix/client/v3/sync?filter={filter}&timeout=30000&since={token}"),
            None => format!("/_matrix/client/v3/sync?filter={filter}&timeout=0"),
        };
        let answer = bob.call(reqwest::Method::GET, &path, None).await.unwrap();
        let arrived = Instant::now();
        let rooms = answer["rooms"]["join"].as_object().cloned().unwrap_or_default();
        let mut seen = arrivals.lock().unwrap();
        for room in rooms.values() {
            assert_ne!(room["timeline"]["limited"], true, "a sync gap: messages were missed");
            for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                if event["sender"] != bob.user_id.as_str()
                    && let Some(index) = event["content"]["body"].as_str().and_then(marker)
                    && since.is_some()
                {
                    seen.entry(index).or_insert(arrived);
                }
            }
        }
        since = answer["next_batch"].as_str().map(str::to_owned);
    }
}

fn main() {
    let options = options();
    if options.replicas > 0 {
        // The replicas' throughput is claimed with every commit durable, as SQLite's is.
        postgres::keep_durability();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for mode in &options.modes {
            let row = match mode.as_str() {
                "synapse" => run_synapse(&options, Bob::Raw).await,
                "encrypted" => run_encrypted(&options).await,
                "names" => names_flood::run(options.lookups, options.connections).await,
                "gateway" => run_loopback(&options, true).await,
                _ => run_loopback(&options, false).await,
            };
            println!("{}", serde_json::to_string_pretty(&row).unwrap());
        }
    });
}
