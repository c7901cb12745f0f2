//! `GET /names/lookup` (docs/names.md, "Finding a name"): the name a node gives a Matrix or
//! Telegram user and whether that identity lives there, read from the store on SQLite and
//! PostgreSQL; bad input answered in JSON; and the route attacked as an outsider would, against
//! the real binary: one client's flood is cut off with 429 and Retry-After while another client
//! keeps its budget, oversize and malformed queries are refused, and the node's memory stays
//! within the budget of docs/relay.md under lookups from thousands of addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/hostile.rs"]
mod hostile;

use std::time::{Duration, Instant};

use dm3::bridge_names::{NameScheme, NetworkUserId};
use dm3::network::Network;
use hostile::{HostileNode, read_answer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::names::{Admin, NamesNode, PARENT, start_names_node};
use support::node::TestNode;
use tokio::io::AsyncWriteExt;

on_both_backends!(lookup_names_the_user_and_says_whether_the_identity_lives_here);

async fn lookup(node: &TestNode, query: &str) -> (StatusCode, Value) {
    let response = node.client.get(node.url(&format!("/names/lookup?{query}"))).send().await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json", "{query}");
    (status, response.json().await.unwrap())
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

async fn lookup_names_the_user_and_says_whether_the_identity_lives_here(db: &TestDb) {
    let node = start_names_node(NamesNode { database: Some(db.url.clone()), ..NamesNode::default() }).await;
    let admin = Admin { node: &node };
    let carol = "network=matrix&user=%40carol%3Aexample.org";
    let (status, body) = lookup(&node, carol).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({
        "name": "carol-sexample-porg.mx.bridge.example.eth",
        "network": "matrix",
        "userId": "@carol:example.org",
        "exists": false,
    });
    assert_eq!(body, expected);
    // The SDK's scheme (what `dm3 name-for` prints) gives the same name.
    let scheme = NameScheme::new(PARENT, "tg", "mx").unwrap();
    let user = NetworkUserId::parse(Network::Matrix, "@carol:example.org").unwrap();
    assert_eq!(body["name"], scheme.name_for(&user).unwrap().1.as_str());

    let created = admin.create("matrix", "@carol:example.org").await;
    assert_eq!(created["name"], body["name"], "the identity is made under the name the lookup gave");
    // Unencoded `@` and `:` are fine in a query too.
    let (_, body) = lookup(&node, "network=matrix&user=@carol:example.org").await;
    let mut live = expected.clone();
    live["exists"] = json!(true);
    assert_eq!(body, live);

    admin.post("/admin/identities/matrix:%40carol%3Aexample.org/disable", None).await;
    assert_eq!(lookup(&node, carol).await.1["exists"], false, "a disabled identity is not live");
    admin.post("/admin/identities/matrix:%40carol%3Aexample.org/enable", None).await;
    assert_eq!(lookup(&node, carol).await.1["exists"], true);
    let (status, _) =
        admin.request(reqwest::Method::DELETE, "/admin/identities/matrix:%40carol%3Aexample.org", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lookup(&node, carol).await.1["exists"], false, "a deleted identity is gone");

    // Telegram; and a Matrix id too long to escape, whose hashed name still finds its row.
    admin.create("telegram", "12345").await;
    let (_, body) = lookup(&node, "network=telegram&user=12345").await;
    assert_eq!(
        body,
        json!({"name": "tg-12345.tg.bridge.example.eth", "network": "telegram", "userId": "12345", "exists": true})
    );
    // A Telegram username: its alias, which this node without `[telegram]` does not answer
    // (docs/names.md, "Telegram username aliases"), whatever identities exist.
    // (`tests/bridge_telegram_alias.rs`: a node with Telegram answers it.)
    let (_, body) = lookup(&node, "network=telegram&user=%40Carol_X").await;
    assert_eq!(
        body,
        json!({"name": "u-carol-x.tg.bridge.example.eth", "network": "telegram", "userId": "@carol_x", "exists": false})
    );
    let long = format!("@{}:example.org", "a".repeat(70));
    let created = admin.create("matrix", &long).await;
    let (_, body) = lookup(&node, &format!("network=matrix&user={long}")).await;
    assert_eq!((&body["name"], &body["exists"]), (&created["name"], &json!(true)), "{body}");
    assert!(body["name"].as_str().unwrap().starts_with("-z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_a_json_400_that_says_why() {
    let node = start_names_node(NamesNode::default()).await;
    for (query, says) in [
        ("", "\"network\" is missing"),
        ("network=matrix", "\"user\" is missing"),
        ("user=12345", "\"network\" is missing"),
        ("network=irc&user=carol", "unknown network"),
        ("network=telegram&user=0", "not a Telegram user id"),
        ("network=telegram&user=%40car", "not a Telegram username"),
        ("network=telegram&user=@carol-x", "not a Telegram username"),
        ("network=telegram&user=1&user=2", "given twice"),
        ("network=telegram&user=1&admin=1", "unknown parameter"),
        ("network=matrix&user=carol", "not a Matrix user id"),
        ("network=matrix&user=%40car%00ol%3Ax", "printable ASCII"),
        ("network=matrix&user=%FF%FE", "not a Matrix user id"),
        ("network=matrix&user=@a+b:x", "printable ASCII"),
    ] {
        let (status, body) = lookup(&node, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(error_message(&body).contains(says), "{query}: {body}");
    }
    // Longer than any real query: refused before it is read.
    let (status, body) = lookup(&node, &format!("network=matrix&user=@{}:x", "a".repeat(1_100))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
    assert!(error_message(&body).contains("1024 bytes"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_identities_answers_a_json_404() {
    let node = start_names_node(NamesNode { parent: Some(String::new()), ..NamesNode::default() }).await;
    let (status, body) = lookup(&node, "network=telegram&user=12345").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_message(&body).contains("identities are disabled"), "{body}");
}

/// docs/relay.md, "Memory": the most the node may hold under attack, and how close to idle it
/// must come back, and how soon.
const PEAK_BUDGET_MIB: f64 = 150.0;
const RETURN_MARGIN_MIB: f64 = 20.0;
const RETURN_WITHIN: Duration = Duration::from_secs(15);

/// One GET on a fresh connection from `source`; the status, `None` if no answer came.
async fn get_from(node: &HostileNode, source: [u8; 4], path: &str) -> Option<u16> {
    let mut stream = node.connect_from(source).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(&mut stream, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsiders_flood_is_cut_off_per_client_and_memory_stays_bounded() {
    let node = HostileNode::start(None, &[("DM3_BRIDGE_IDENTITIES__PARENT", PARENT)]).await;
    let idle = node.settled_rss_mib(Duration::from_secs(10)).await;
    node.reset_peak();

    // One client, as fast as it can: the burst of 30, then one per 200 ms, each refusal a 429
    // with Retry-After and the node's JSON error.
    let http = reqwest::Client::new();
    let url = node.process.url("/names/lookup?network=telegram&user=12345");
    let started = Instant::now();
    let (mut served, mut refused) = (0usize, 0usize);
    for _ in 0..300 {
        let response = http.get(&url).send().await.unwrap();
        match response.status() {
            StatusCode::OK => served += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait >= 1);
                let body: Value = response.json().await.unwrap();
                assert!(error_message(&body).contains("too many requests"), "{body}");
            }
            other => panic!("{other}"),
        }
    }
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!((30..=31 + refilled).contains(&served), "{served} served in {:?}", started.elapsed());
    assert_eq!(served + refused, 300);
    // Another client has its own budget; the probes have none.
    assert_eq!(get_from(&node, [127, 0, 0, 2], "/names/lookup?network=telegram&user=1").await, Some(200));
    assert_eq!(get_from(&node, [127, 0, 0, 1], "/health").await, Some(200));

    // Oversize and malformed queries are refused, and cost no budget of anyone else's.
    let long = format!("/names/lookup?network=matrix&user=@{}:x", "a".repeat(4_000));
    assert_eq!(get_from(&node, [127, 0, 0, 3], &long).await, Some(414));
    let huge = format!("/names/lookup?network=matrix&user=@{}:x", "a".repeat(200_000));
    assert_ne!(get_from(&node, [127, 0, 0, 4], &huge).await, Some(200), "a head larger than [limits] allows");
    for query in ["network=matrix&user=%FF", "network=telegram", "a=b&c=d", "network=x&user=y"] {
        assert_eq!(get_from(&node, [127, 0, 0, 5], &format!("/names/lookup?{query}")).await, Some(400));
    }

    // Thousands of clients (all of 127/8 is local), each looking up a user of its own: the
    // limiter keeps a small entry per recent client and the store is read, nothing else grows.
    let mut answered = 0;
    for i in 0..2_000u32 {
        let [_, _, hi, lo] = (0x7f01_0000 + i).to_be_bytes();
        let path = format!("/names/lookup?network=matrix&user=%40user{i}%3Aexample.org");
        answered += usize::from(get_from(&node, [127, 1, hi, lo], &path).await == Some(200));
    }
    assert_eq!(answered, 2_000, "every new client is within its budget");
    let peak = node.peak_rss_mib();
    assert!(peak < PEAK_BUDGET_MIB, "peak RSS {peak:.1} MiB (idle {idle:.1} MiB)");
    let after = node.rss_falls_to(idle + RETURN_MARGIN_MIB, RETURN_WITHIN).await;
    assert!(after <= idle + RETURN_MARGIN_MIB, "RSS {after:.1} MiB after the flood, idle {idle:.1} MiB");
    eprintln!("idle {idle:.1} MiB, peak {peak:.1} MiB, after {after:.1} MiB; {served} served of 300");
}
