//! The HTTP API of a real node on `127.0.0.1:0`: probes, metrics, JSON-RPC framing, body
//! limits, the protocol seam, and graceful shutdown. The DM3 protocol is a stub here
//! (`support::node::StubProtocol`); `relay.rs` and `interop_relay.rs` test the real one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use dm3_bridge::store::{IncomingLimits, Store, StoreOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::node::{StubProtocol, TestNode, start_node};

async fn stub() -> TestNode {
    start_node(|_| {}, StubProtocol::factory(Duration::ZERO)).await
}

async fn rpc(node: &TestNode, body: &Value) -> (StatusCode, String) {
    let response = node.client.post(node.url("/rpc")).json(body).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn error_code(body: &str) -> i64 {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["jsonrpc"], "2.0", "{body}");
    v["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Message hashes as envelopes carry them: `0x` and 64 hex digits.
const HASH_A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const HASH_C: &str = "0xcccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const HASH_1: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";

fn submit(to: &str, from: &str, hash: &str) -> Value {
    let envelope = json!({"to": to, "from": from, "hash": hash}).to_string();
    json!({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": [envelope]})
}

#[tokio::test]
async fn hello_health_and_ready_answer() {
    let node = stub().await;
    let hello = node.client.get(node.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(hello.text().await.unwrap(), "Hello DM3");
    let health = node.client.get(node.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = node.client.get(node.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    node.node.shutdown().await.unwrap();
}

const ADMIN_TOKEN: &str = "metrics-scraper-token-0123456789";

#[tokio::test]
async fn metrics_show_requests_latency_and_stored_envelopes() {
    let node = start_node(
        |c| c.admin.token = Some(dm3_bridge::config::AdminToken::new(ADMIN_TOKEN)),
        StubProtocol::factory(Duration::ZERO),
    )
    .await;
    node.client.get(node.url("/hello")).send().await.unwrap();
    let (status, _) = rpc(&node, &submit("bob.eth", "alice.eth", HASH_1)).await;
    assert_eq!(status, StatusCode::OK);
    let response = node.client.get(node.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for needle in [
        r#"dm3_http_requests_total{route="/hello",method="GET",outcome="ok"}"#,
        r#"dm3_http_request_duration_seconds_bucket{route="/rpc",method="POST",le="0.05"}"#,
        r#"dm3_rpc_requests_total{method="dm3_submitMessage",outcome="ok"}"#,
        "dm3_rpc_request_duration_seconds_bucket",
        "dm3_stored_envelopes ",
        "dm3_pending_envelope_writes ",
        "dm3_store_write_batch_size_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    node.node.shutdown().await.unwrap();
}

/// The metrics tell how much is stored and whom the node refuses: only the admin token's
/// holder reads them, unless the operator makes them public.
#[tokio::test]
async fn metrics_are_for_the_admin_token_unless_made_public() {
    let token = Some(dm3_bridge::config::AdminToken::new(ADMIN_TOKEN));
    let guarded = start_node(|c| c.admin.token = token.clone(), StubProtocol::factory(Duration::ZERO)).await;
    let get = |node: &TestNode, auth: Option<&str>| {
        let request = node.client.get(node.url("/metrics"));
        let request = match auth {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(get(&guarded, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&guarded, Some("Bearer wrong-token-wrong-token")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&guarded, Some(&format!("BEARER {ADMIN_TOKEN}"))).await, StatusCode::OK);
    guarded.node.shutdown().await.unwrap();

    let no_token = stub().await;
    assert_eq!(get(&no_token, None).await, StatusCode::FORBIDDEN, "no token configured: nobody reads them");
    no_token.node.shutdown().await.unwrap();

    let public = start_node(|c| c.admin.public_metrics = true, StubProtocol::factory(Duration::ZERO)).await;
    assert_eq!(get(&public, None).await, StatusCode::OK);
    public.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn properties_disclose_only_ttl_in_ms_size_and_channels() {
    let node = start_node(|c| c.relay.message_ttl_secs = 3_600, StubProtocol::factory(Duration::ZERO)).await;
    let (status, body) =
        rpc(&node, &json!({"jsonrpc": "2.0", "method": "dm3_getDeliveryServiceProperties", "params": []}))
            .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert!(v.get("id").is_none(), "no id asked, none answered: {body}");
    // The result is a JSON string to be parsed again (docs/protocol.md P10).
    let props: Value = serde_json::from_str(v["result"].as_str().unwrap()).unwrap();
    assert_eq!(props, json!({"messageTTL": 3_600_000, "sizeLimit": 100_000, "notificationChannel": []}));

    // With an id, the id is echoed.
    let (_, body) =
        rpc(&node, &json!({"jsonrpc": "2.0", "id": 7, "method": "dm3_getDeliveryServiceProperties"})).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], 7);
    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_body_is_413_before_parsing() {
    let node = start_node(|c| c.relay.size_limit = 1_000, StubProtocol::factory(Duration::ZERO)).await;
    // Not even JSON: it must be refused for its size, not for its syntax.
    let big = "x".repeat(100_000);
    let response = node.client.post(node.url("/rpc")).body(big.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The body was not read, so the connection closes: the answer must say so, or a pooling
    // client would send its next request on a connection the server is dropping.
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(error_code(&response.text().await.unwrap()), -32011);

    // Without Content-Length (chunked), the limit still holds while streaming.
    let (status, body) = chunked_post(&node, "/rpc", big.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("-32011"), "{body}");
    assert!(body.to_ascii_lowercase().contains("connection: close"), "{body}");

    // The same pooled client goes on working after the refusals.
    let (status, _) = rpc(&node, &submit("bob.eth", "alice.eth", HASH_1)).await;
    assert_eq!(status, StatusCode::OK);

    // Just under the raw limit is read and parsed (and here fails as JSON), on a connection
    // that stays open.
    let response = node.client.post(node.url("/rpc")).body("x".repeat(2_000)).send().await.unwrap();
    assert!(response.headers().get("connection").is_none_or(|v| v != "close"));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response.text().await.unwrap()), -32700);
    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_body_of_too_many_json_values_is_refused_before_it_is_built() {
    let node = stub().await;
    // 3 bytes a value on the wire, some 40 in a serde_json::Value: refused by count instead.
    let bomb = format!(
        r#"{{"jsonrpc":"2.0","method":"dm3_submitMessage","params":[[{}[]]]}}"#,
        "[],".repeat(50_000)
    );
    let response = node.client.post(node.url("/rpc")).body(bomb).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.unwrap();
    assert_eq!(error_code(&body), -32602);
    assert!(body.contains("more than 1024 values"), "{body}");
    // The same inside the envelope text, which the protocol would parse into a Value.
    let envelope = format!("[{}[]]", "[],".repeat(20_000));
    let (status, body) =
        rpc(&node, &json!({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": [envelope]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("the envelope has more than 1024 JSON values"), "{body}");
    node.node.shutdown().await.unwrap();
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no Content-Length) over a raw socket and
/// returns the status code and the rest of the answer.
async fn chunked_post(node: &TestNode, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(node.node.local_addr()).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may answer and close before it has read everything: that is the point.
        if socket.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

#[tokio::test]
async fn unknown_method_is_405_method_not_allowed() {
    let node = stub().await;
    let (status, body) = rpc(&node, &json!({"jsonrpc": "2.0", "method": "dm3_nope"})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), -32601);
    assert!(body.contains("Method not allowed"), "{body}");
    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_json_rpc_error() {
    let node = stub().await;
    let (status, body) = rpc(&node, &json!({"jsonrpc": "2.0", "params": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing method");
    assert_eq!(error_code(&body), -32600);

    let (status, body) = rpc(&node, &json!([{"jsonrpc": "2.0", "method": "x"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "batch");
    assert_eq!(error_code(&body), -32600);

    let (status, body) =
        rpc(&node, &json!({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "params not an array");
    assert_eq!(error_code(&body), -32602);

    let response = node.client.post(node.url("/rpc")).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response.text().await.unwrap()), -32700);
    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn submitted_envelope_is_listed_once_then_acknowledged_away() {
    let node = stub().await;
    let request = submit("bob.eth", "alice.eth", HASH_A);
    let response = node.client.post(node.url("/rpc")).json(&request).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "OK");
    // The same message again: accepted, stored once.
    let (status, _) = rpc(&node, &request).await;
    assert_eq!(status, StatusCode::OK);

    let incoming = node.url("/delivery/messages/incoming/bob.eth");
    let denied = node.client.get(&incoming).bearer_auth("token-mallory.eth").send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);

    let listed: Value =
        node.client.get(&incoming).bearer_auth("token-bob.eth").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!([{"to": "bob.eth", "from": "alice.eth", "hash": HASH_A}]));

    let ack = node
        .client
        .post(node.url("/delivery/messages/bob.eth/syncAcknowledgements"))
        .bearer_auth("token-bob.eth")
        .json(&json!({"acknowledgements": [{"contactAddress": "Alice.eth", "messageHash": HASH_A}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), StatusCode::OK);
    let bad_ack = node
        .client
        .post(node.url("/delivery/messages/bob.eth/syncAcknowledgements"))
        .bearer_auth("token-bob.eth")
        .json(&json!({"acks": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_ack.status(), StatusCode::BAD_REQUEST);

    let listed: Value =
        node.client.get(&incoming).bearer_auth("token-bob.eth").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!([]));
    node.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_submits_in_flight_and_keeps_them() {
    let node = start_node(|_| {}, StubProtocol::factory(Duration::from_millis(400))).await;
    let url = node.config.database_url();
    let client = node.client.clone();
    let rpc_url = node.url("/rpc");
    let in_flight = tokio::spawn(async move {
        client.post(rpc_url).json(&submit("bob.eth", "alice.eth", HASH_B)).send().await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = node.base.clone();
    node.node.shutdown().await.unwrap();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the accepted request finished");
    // No new connections after shutdown.
    assert!(reqwest::get(format!("{base}/health")).await.is_err());
    // And what was acknowledged is stored.
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    let listed = store
        .list_incoming(
            &dm3::ens::EnsName::from_normalized("bob.eth").unwrap(),
            i64::MAX - 1,
            IncomingLimits::REFERENCE,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_from_postgres_too() {
    let db = TestDb::postgres().await;
    let url = db.url.clone();
    let node = start_node(move |c| c.database.url = Some(url), StubProtocol::factory(Duration::ZERO)).await;
    assert_eq!(node.node.store().backend(), dm3_bridge::config::Backend::Postgres);
    let ready = node.client.get(node.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let (status, _) = rpc(&node, &submit("bob.eth", "alice.eth", HASH_C)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node.node.store().count_envelopes().await.unwrap(), 1);
    node.node.shutdown().await.unwrap();
}
