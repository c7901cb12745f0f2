//! The bridge node of the end-to-end tests (`tests/bridge_*.rs`): started on a config the test
//! prepared (a data directory from `init`, names from a `Dm3World`, a connector section), stopped
//! gracefully and started again on the same directory, and watched until its queues settle.
//!
//! The node resolves names through `[names]` of its config, as in production, with the real
//! delivery service ([`Relay`]).

use std::time::{Duration, Instant};

use dm3_bridge::config::Config;
use dm3_bridge::delivery::Relay;
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::node::Node;
use dm3_bridge::store::{JobState, QueueName, Store};

use super::node::TestNode;

/// The admin token the bridge tests configure.
pub const ADMIN_TOKEN: &str = "bridge-admin-token-0123456789abcdef";
/// How long the many-message scenarios wait for a queue to drain.
pub const LONG_WAIT: Duration = Duration::from_secs(120);

/// Starts the bridge node of `config` on its data directory `dir`; `context` is shown if the
/// start fails (e.g. the homeserver's log).
pub async fn start(config: Config, dir: tempfile::TempDir, context: impl FnOnce() -> String) -> TestNode {
    let directory = build_directory(&config.names).unwrap();
    let node = Node::start(&config, &[], Relay::factory(directory))
        .await
        .unwrap_or_else(|e| panic!("the bridge did not start: {e}\n{}", context()));
    let base = format!("http://{}", node.local_addr());
    TestNode { node, base, client: reqwest::Client::new(), config, dir }
}

/// A bridge node shut down, with what starts it again.
pub struct StoppedBridge {
    config: Config,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

/// Shuts `bridge` down gracefully: requests in flight finish, then the jobs in flight.
pub async fn stop(bridge: TestNode) -> StoppedBridge {
    let TestNode { node, client, config, dir, .. } = bridge;
    let stopping = Instant::now();
    node.shutdown().await.unwrap();
    eprintln!("the bridge stopped in {:.1} s", stopping.elapsed().as_secs_f64());
    StoppedBridge { config, dir, client }
}

impl StoppedBridge {
    /// The bridge again, on the same data directory, database, keys and port.
    pub async fn start(self) -> TestNode {
        let StoppedBridge { config, dir, client } = self;
        let directory = build_directory(&config.names).unwrap();
        let node = Node::start(&config, &[], Relay::factory(directory)).await.unwrap();
        let base = format!("http://{}", node.local_addr());
        TestNode { node, base, client, config, dir }
    }
}

/// How many jobs the bridge ever queued in `queue`, in any state.
pub async fn jobs_in(bridge: &TestNode, queue: QueueName) -> u64 {
    jobs_in_store(bridge.node.store(), queue).await
}

/// [`jobs_in`] for a bridge known by its database (e.g. one running as its own process).
pub async fn jobs_in_store(store: &Store, queue: QueueName) -> u64 {
    let counts = store.count_jobs().await.unwrap();
    counts.iter().filter(|c| c.queue == queue).map(|c| c.count).sum()
}

/// Waits until the bridge has no job pending in either queue; none may have failed. `context`
/// is shown when it does not settle (e.g. the homeserver's log).
pub async fn settled(bridge: &TestNode, context: impl Fn() -> String) {
    store_settled(bridge.node.store(), LONG_WAIT, context).await;
}

/// [`settled`] for a bridge known by its database, waiting up to `wait`.
pub async fn store_settled(store: &Store, wait: Duration, context: impl Fn() -> String) {
    settled_failing(store, wait, 0, context).await;
}

/// [`store_settled`], where exactly `failures` jobs must have failed (each reported to its
/// sender): no more, and once settled, no fewer.
pub async fn settled_failing(store: &Store, wait: Duration, failures: u64, context: impl Fn() -> String) {
    let deadline = Instant::now() + wait;
    loop {
        let counts = store.count_jobs().await.unwrap();
        let failed: u64 = counts.iter().filter(|c| c.state == JobState::Failed).map(|c| c.count).sum();
        assert!(failed <= failures, "{failed} jobs failed, not {failures}: {counts:?}\n{}", context());
        if counts.iter().all(|c| c.state != JobState::Pending || c.count == 0) {
            assert_eq!(failed, failures, "jobs failed: {counts:?}\n{}", context());
            return;
        }
        assert!(Instant::now() < deadline, "jobs still pending after {wait:?}: {counts:?}\n{}", context());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DM3 name the bridge at `base` (one node, or the load balancer of its replicas) gave the
/// Matrix user `user_id`, once it made one; `context` is shown if it never does.
pub async fn matrix_identity_name(base: &str, user_id: &str, context: impl Fn() -> String) -> String {
    let url = format!("{base}/admin/identities/matrix:{user_id}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let response = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        if response.status().is_success() {
            let body: serde_json::Value = response.json().await.unwrap();
            return body["name"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bridge made no identity for {user_id}:\n{}", context());
}
