//! The node with `[matrix]`: the appservice routes mounted on its own listener beside the DM3
//! API, the start-up ping through the homeserver, and clear refusals when that loop is broken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dm3_bridge::bridges::matrix::{MatrixContext, MatrixFactory, MatrixServices};
use dm3_bridge::config::Config;
use dm3_bridge::matrix::generate::{GenerateOptions, generate_registration};
use dm3_bridge::node::{Node, NodeError};
use dm3_bridge_connector::Inbound;
use matrix_bridge::{MemoryEngine, Names};
use serde_json::json;
use support::node::{StubProtocol, init_data_dir};
use synapse::Synapse;

/// A config with `[matrix]` for a node listening on `listen`, whose registration says the
/// bridge is at `bridge_url`; answers the config and the registration YAML.
fn matrix_config(listen: &str, bridge_url: &str) -> (tempfile::TempDir, Config, String) {
    let (dir, config_file) = init_data_dir();
    let options = GenerateOptions {
        config_file: config_file.clone(),
        homeserver_url: Some("http://127.0.0.1:1".to_owned()),
        server_name: Some(synapse::SERVER_NAME.to_owned()),
        bridge_url: Some(bridge_url.to_owned()),
        force: false,
    };
    let report = generate_registration(&options, &[]).unwrap();
    let yaml = std::fs::read_to_string(report.registration_file).unwrap();
    let mut config = Config::load(&config_file, []).unwrap();
    config.node.listen = listen.to_owned();
    // Matrix users get virtual identities: `[matrix]` needs a parent name (`dm3-bridge check`).
    config.identities.parent = "bridge.example.eth".to_owned();
    (dir, config, yaml)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The engine's halves, in memory; the context the node handed over is kept for inspection.
fn services(engine: Arc<MemoryEngine>, seen: Arc<Mutex<Option<String>>>) -> MatrixFactory {
    Box::new(move |context: MatrixContext| {
        *seen.lock().unwrap() = Some(context.connector.ghosts().prefix().to_owned());
        let names = Names { known: HashSet::from(["alice.eth".to_owned()]), asked: Mutex::default() };
        MatrixServices { sink: engine, directory: Arc::new(names) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_the_appservice_and_starts_once_the_homeserver_reaches_it() {
    let port = free_port();
    let (_dir, mut config, yaml) =
        matrix_config(&format!("127.0.0.1:{port}"), &format!("http://127.0.0.1:{port}"));
    let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
    config.matrix.as_mut().unwrap().homeserver_url = synapse.url().to_owned();

    let engine = Arc::new(MemoryEngine::default());
    let seen = Arc::new(Mutex::new(None));
    let node = Node::start_with_matrix(
        &config,
        &[],
        StubProtocol::factory(Duration::ZERO),
        Some(services(engine.clone(), seen.clone())),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", synapse.log_tail()));
    assert_eq!(seen.lock().unwrap().as_deref(), Some("_dm3_"), "the factory got the connector");
    let connector = node.matrix().expect("the node exposes its Matrix connector");
    assert_eq!(connector.max_media_bytes(), 50 * 1024 * 1024, "start read the homeserver's upload limit");

    // The node's own routes and the appservice's share the listener.
    let base = format!("http://{}", node.local_addr());
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/hello")).send().await.unwrap().status(), 200);
    let unknown = http.get(format!("{base}/_matrix/app/v1/unknown")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<serde_json::Value>().await.unwrap()["errcode"], "M_UNRECOGNIZED");

    // A real user's invite of a ghost travels homeserver → node → engine.
    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_alice.eth:{}", synapse::SERVER_NAME);
    let room = bob.create_room(json!({"is_direct": true, "invite": [ghost]})).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let requests: Vec<_> = engine
            .items()
            .into_iter()
            .filter(|i| matches!(i, Inbound::PortalRequest(r) if r.conversation.as_str() == room))
            .collect();
        if let [Inbound::PortalRequest(request)] = &requests[..] {
            assert_eq!(
                (request.requester.as_str(), request.remote.as_str()),
                (bob.user_id.as_str(), "alice.eth")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no portal request: {:?}\n{}",
            engine.items(),
            synapse.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_fails_clearly_when_the_homeserver_cannot_reach_the_bridge() {
    // The registration points at a port nobody listens on.
    let (_dir, mut config, yaml) = matrix_config("127.0.0.1:0", &format!("http://127.0.0.1:{}", free_port()));
    let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
    let matrix = config.matrix.as_mut().unwrap();
    matrix.homeserver_url = synapse.url().to_owned();
    matrix.ping_timeout_secs = 0;
    let engine = Arc::new(MemoryEngine::default());
    let error = Node::start_with_matrix(
        &config,
        &[],
        StubProtocol::factory(Duration::ZERO),
        Some(services(engine, Arc::default())),
    )
    .await
    .err()
    .unwrap();
    let message = error.to_string();
    assert!(matches!(error, NodeError::Matrix(_)), "{message}");
    assert!(
        message.contains("cannot reach the bridge") && message.contains("matrix.bridge_url"),
        "{message}"
    );

    // A homeserver that is not there at all names the other setting.
    config.matrix.as_mut().unwrap().homeserver_url = format!("http://127.0.0.1:{}", free_port());
    let error = Node::start_with_matrix(
        &config,
        &[],
        StubProtocol::factory(Duration::ZERO),
        Some(services(Arc::default(), Arc::default())),
    )
    .await
    .err()
    .unwrap();
    assert!(error.to_string().contains("matrix.homeserver_url"), "{error}");
}

#[tokio::test]
async fn matrix_without_the_engine_is_refused() {
    let (_dir, mut config, _) = matrix_config("127.0.0.1:0", "http://127.0.0.1:9");
    // No parent name: no virtual identities, so no engine for Matrix users.
    config.identities.parent.clear();
    let error = Node::start(&config, &[], StubProtocol::factory(Duration::ZERO)).await.err().unwrap();
    assert!(error.to_string().contains("[matrix] is configured"), "{error}");
}
