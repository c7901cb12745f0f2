//! `bridge_load`'s `names` mode: what a flood costs the node at its public name routes, and what
//! a DM3 sender's flood costs once its per-sender budget is spent (issue #19; docs/benchmarks.md,
//! "On-demand names" and "Block and rate limits").
//!
//! `cargo bench --bench bridge_load -- names [--lookups N] [--connections N]`
//!
//! The node is the release binary with `[matrix]` (the loopback homeserver of the `loopback`
//! mode) and virtual identities on SQLite, so every Matrix user of its server is reachable on
//! demand. The per-client budgets of `/names/lookup` and `/ccip` are raised so far that the
//! bench, one client, never meets them (the limiter stays on the path); the per-sender budget
//! stays at its default (60 a minute, 20 at once).
//!
//! Phases, each over `--connections` keep-alive connections, as fast as the node answers:
//! 1. `GET /names/lookup?network=matrix&user=@unused<n>:bench.local` for `--lookups` distinct
//!    users nobody ever used: lookups/s, and the node's CPU per lookup;
//! 2. `GET /ccip/{resolver}/{resolve(name, text(node, "network.dm3.profile"))}.json` for as many
//!    other distinct unused names, the question a DM3 client's resolver asks: each answer
//!    derives the identity and signs its profile (docs/names.md section 7);
//! 3. one DM3 sender submitting `--lookups` envelopes to a bridged user: the first 20 pass, the
//!    rest are refused with 429 -32010 after the sender's signature was checked: refusals/s and
//!    the node's CPU per refusal.
//!
//! Around the two lookup phases: the identities the admin API counts, the bytes of the database
//! files (with its WAL) and the node's RSS, before and after. A lookup must write nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dm3::ccip::{Query, ResolveRequest};
use dm3::encoding::hex_encode;
use dm3::ens::EnsName;
use serde_json::{Value, json};

use super::loopback::{DeliveryServices, Homeserver};
use super::{Dm3User, LOOPBACK_SERVER, Node, PARENT, http1, load_average, prepare_node, seal, send};

/// The resolver contract the bench's CCIP-read requests name (any address: the gateway signs
/// for whichever asks).
const RESOLVER: [u8; 20] = [0x42; 20];

/// What the node holds, seen from outside.
struct Footprint {
    identities: u64,
    database_bytes: u64,
    rss_kib: u64,
}

impl Node {
    async fn footprint(&self, data_dir: &std::path::Path) -> Footprint {
        let (status, page) =
            self.admin(reqwest::Method::GET, "/admin/identities?page=1&perPage=1", None).await;
        assert_eq!(status, 200, "{page}");
        let database_bytes = std::fs::read_dir(data_dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("dm3-bridge.sqlite"))
            .map(|entry| entry.metadata().unwrap().len())
            .sum();
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.children[0].id())).unwrap();
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        Footprint { identities: page["total"].as_u64().unwrap(), database_bytes, rss_kib }
    }
}

/// Sends every request over `connections` keep-alive connections as fast as the node answers:
/// how many got each status (0: no answer), the time and the node's CPU time. Also the backlog
/// phase of the engine's modes (`dm3_to_matrix`).
pub async fn flood(
    node: &Node,
    requests: Vec<Vec<u8>>,
    connections: usize,
) -> (Vec<(u16, u64)>, Duration, Duration) {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = node.cpu();
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (address, requests, next) = (node.address.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let (mut connection, mut statuses) = (None, Vec::new());
                while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    statuses.push(send(&mut connection, &address, request).await.unwrap_or(0));
                }
                statuses
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for worker in workers {
        for status in worker.await.unwrap() {
            *counts.entry(status).or_insert(0u64) += 1;
        }
    }
    (counts.into_iter().collect(), started.elapsed(), node.cpu() - cpu_before)
}

fn phase(what: &str, count: usize, (statuses, took, cpu): (Vec<(u16, u64)>, Duration, Duration)) -> Value {
    eprintln!("names: {what}: {count} in {took:?}, statuses {statuses:?}");
    json!({
        "requests": count,
        "per_sec": count as f64 / took.as_secs_f64(),
        "node_cpu_us_each": cpu.as_secs_f64() * 1e6 / count as f64,
        "statuses": statuses.iter().map(|(status, n)| (status.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    })
}

fn unused_name(user: &str) -> EnsName {
    let scheme = dm3::bridge_names::NameScheme::new(PARENT, "tg", "mx").unwrap();
    let user = dm3::bridge_names::NetworkUserId::parse(dm3::network::Network::Matrix, user).unwrap();
    scheme.name_for(&user).unwrap().1
}

pub async fn run(lookups: usize, connections: usize) -> Value {
    let users = vec![Dm3User::new(0)];
    let services = DeliveryServices::start().await;
    let homeserver = Homeserver::start(LOOPBACK_SERVER).await;
    let mut prepared = prepare_node(LOOPBACK_SERVER, &users, &services, 0);
    for (key, value) in [
        ("NAMES_LOOKUP_PER_MINUTE", "100000000"),
        ("NAMES_LOOKUP_BURST", "1000000"),
        ("CCIP_PER_MINUTE", "100000000"),
        ("CCIP_BURST", "1000000"),
        // prepare_node turns the sender budgets off for the other modes; here it is measured.
        ("DM3_SENDER_PER_MINUTE", "60"),
        ("DM3_SENDER_BURST", "20"),
    ] {
        prepared.env.push((format!("DM3_BRIDGE_RATE_LIMITS__{key}"), value.to_owned()));
    }
    let data_dir = prepared.dir.path().to_owned();
    let node = prepared.run(&homeserver.url).await;
    let load_before = load_average();

    let lookup = |n: usize, prefix: &str| {
        let path = format!("/names/lookup?network=matrix&user=%40{prefix}{n}%3A{LOOPBACK_SERVER}");
        http1::get_request(&node.address, &path)
    };
    let resolve = |n: usize| {
        let name = unused_name(&format!("@resolved{n}:{LOOPBACK_SERVER}"));
        let query = Query::text(&name, "network.dm3.profile");
        let calldata = ResolveRequest::new(name, query, None).unwrap().encode();
        let path = format!("/ccip/{}/{}.json", hex_encode(&RESOLVER), hex_encode(&calldata));
        http1::get_request(&node.address, &path)
    };
    // Warm-up: connections, caches of the node's own records, the allocator.
    flood(&node, (0..200).map(|n| lookup(n, "warm")).collect(), connections).await;
    let before = node.footprint(&data_dir).await;

    eprintln!("names: {lookups} lookups of distinct unused names through /names/lookup …");
    let requests: Vec<Vec<u8>> = (0..lookups).map(|n| lookup(n, "unused")).collect();
    let names_lookup = phase("/names/lookup", lookups, flood(&node, requests, connections).await);
    let after_lookups = node.footprint(&data_dir).await;
    eprintln!("names: {lookups} profiles of distinct unused names through /ccip …");
    let requests: Vec<Vec<u8>> = (0..lookups).map(resolve).collect();
    let ccip = phase("/ccip", lookups, flood(&node, requests, connections).await);
    let after = node.footprint(&data_dir).await;
    assert_eq!(after.identities, before.identities, "a lookup wrote an identity");

    // A DM3 sender past their budget: bob's identity made, alice0's envelopes sealed first.
    let bob_id = format!("@bob:{LOOPBACK_SERVER}");
    let body = json!({"network": "matrix", "userId": bob_id});
    let (status, answer) = node.admin(reqwest::Method::POST, "/admin/identities", Some(body)).await;
    assert_eq!(status, 201, "creating bob's identity: {answer}");
    let bob = node.identity(&bob_id).await;
    let requests = seal(&users, &bob.0, bob.1, &node, 0..lookups as u64, None);
    eprintln!("names: {lookups} envelopes of one sender, past its budget …");
    let refusals = phase("refusals", lookups, flood(&node, requests, connections).await);

    let footprint = |f: &Footprint| json!({"identities": f.identities, "database_bytes": f.database_bytes, "rss_kib": f.rss_kib});
    json!({
        "mode": "names",
        "connections": connections,
        "load_average_before": load_before,
        "names_lookup": names_lookup,
        "ccip": ccip,
        "sender_over_budget": refusals,
        "before": footprint(&before),
        "after_lookups": footprint(&after_lookups),
        "after_ccip": footprint(&after),
    })
}
