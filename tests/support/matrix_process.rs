//! The bridge as its own process (`tests/support/bridge_process.rs`) on a real Synapse, in a
//! world of DM3 users on a chain, with bob's DM to alice's ghost open: what the scenarios that
//! break something under a running bridge share (`tests/bridge_matrix_crash.rs` kills the
//! bridge, `tests/fault_postgres.rs` restarts its database). A process, not an in-process node,
//! so that a fault hits the node as in production and its log can be read afterwards.
//! Included with `#[path]` beside `anvil`, `bridge_process`, `dm3_world`, `synapse` and `support`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{Store, StoreOptions};
use serde_json::json;

use crate::bridge_process::BridgeProcess;
use crate::dm3_world::{ALICE, BRIDGE_NODE_NAME, Dm3World, Route, free_port};
use crate::support::bridge::{ADMIN_TOKEN, matrix_identity_name};
use crate::support::crash::{LONG_WAIT, assert_exactly_once_in_order, settled};
use crate::synapse::{self, MatrixUser, SERVER_NAME, Synapse};

/// The world, the bridge process and bob's DM with alice's ghost.
pub struct ProcessBridged {
    pub world: Dm3World,
    pub bridge: BridgeProcess,
    pub synapse: Synapse,
    /// The bridge's database, opened beside it by the test to read its queues.
    pub store: Store,
    pub bob: MatrixUser,
    /// bob's password, for a client of his own (matrix-sdk) beside `bob`.
    pub bob_password: String,
    pub room: String,
    pub ghost: String,
    pub bob_name: String,
    /// alice's route to bob's DM3 name.
    pub route: Route,
}

impl ProcessBridged {
    /// Starts everything on `database` (SQLite in the bridge's data directory when `None`);
    /// `env` are more `DM3_BRIDGE_…` variables for the bridge. Answers once the bridge is idle.
    pub async fn start(database: Option<DatabaseUrl>, env: &[(&str, String)]) -> ProcessBridged {
        let world = Dm3World::start(None).await;
        let mut bridge = BridgeProcess::init(BRIDGE_NODE_NAME, free_port());
        let database =
            database.unwrap_or_else(|| DatabaseUrl::sqlite_file(&bridge.data_dir().join("bridge.sqlite")));
        let yaml = bridge.generate_registration(SERVER_NAME);
        let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
        for (key, value) in world.bridge_env() {
            bridge.set_env(key, value);
        }
        bridge.set_env("DM3_BRIDGE_MATRIX__HOMESERVER_URL", synapse.url());
        bridge.set_env("DM3_BRIDGE_ADMIN__TOKEN", ADMIN_TOKEN);
        bridge.set_env("DM3_BRIDGE_DATABASE__URL", database.expose());
        for (key, value) in env {
            bridge.set_env(*key, value.clone());
        }
        bridge.start().await;
        world.point_parent_at_gateway(&bridge.base(), ADMIN_TOKEN).await;
        let store = Store::open(&database, &StoreOptions::default()).await.unwrap();

        // bob opens a DM with alice's ghost; the bridge gives him a DM3 name.
        let bob_password = synapse.register_account("bob").await.unwrap();
        let bob = synapse.log_in("bob", &bob_password).await.unwrap();
        let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
        let room = bob
            .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
            .await
            .unwrap();
        wait_for("the ghost to join", &bridge, &synapse, || async {
            members(&bob, &room).await.contains(&ghost)
        })
        .await;
        let bob_name = identity_name(&bridge, &bob.user_id).await;
        let route = world.alice.route(&world.directory(), &bob_name).await;
        settled(&store, || format!("{}\n{}", bridge.log_tail(40), synapse.appservice_log())).await;
        ProcessBridged { world, bridge, synapse, store, bob, bob_password, room, ghost, bob_name, route }
    }

    /// Waits until both streams arrived whole and the bridge settled, then checks each end:
    /// bob's room timeline holds `from_alice`, alice's delivery service `from_bob`, each
    /// exactly once and in order (as stored, and by the sender's time).
    pub async fn assert_both_streams_arrived_once(&self, from_alice: &[String], from_bob: &[String]) {
        let (alice, bob) = (&self.world.alice, &self.bob);
        wait_for("bob's messages to reach alice", &self.bridge, &self.synapse, || async {
            alice.stored_count(&self.world.ds_b).await >= from_bob.len()
        })
        .await;
        wait_for("alice's messages to reach bob", &self.bridge, &self.synapse, || async {
            bob.bodies_from(&self.room, &self.ghost).await.unwrap().len() >= from_alice.len()
        })
        .await;
        settled(&self.store, || format!("{}\n{}", self.bridge.log_tail(40), self.synapse.appservice_log()))
            .await;

        let at_bob = bob.bodies_from(&self.room, &self.ghost).await.unwrap();
        assert_exactly_once_in_order("alice → bob (bob's room timeline)", &at_bob, from_alice);
        let directory = self.world.directory();
        alice
            .assert_incoming_once_in_order(
                &self.world.ds_b,
                &directory,
                &self.bob_name,
                "bob → alice",
                from_bob,
            )
            .await;
    }

    /// `GET /ready`: its status and body.
    pub async fn ready(&self) -> (u16, String) {
        match reqwest::get(self.bridge.url("/ready")).await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
            Err(error) => (0, format!("no answer: {error}")),
        }
    }

    /// Polls `/ready` until its status is `status`; answers the body then.
    pub async fn wait_for_ready_status(&self, status: u16) -> String {
        let deadline = Instant::now() + LONG_WAIT;
        loop {
            let (now, body) = self.ready().await;
            if now == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/ready answered {now} {body} for {LONG_WAIT:?}, not {status}\n{}",
                self.bridge.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The DM3 name the bridge gave the Matrix user `user_id`, once it made one.
pub async fn identity_name(bridge: &BridgeProcess, user_id: &str) -> String {
    matrix_identity_name(&bridge.base(), user_id, || bridge.log_tail(40)).await
}

pub async fn members(user: &MatrixUser, room: &str) -> Vec<String> {
    let path = format!("/_matrix/client/v3/rooms/{}/joined_members", synapse::encode(room));
    let answer = user.call(reqwest::Method::GET, &path, None).await.unwrap();
    answer["joined"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// Waits up to [`LONG_WAIT`] for `done`, showing both logs if it never comes.
pub async fn wait_for<F, Fut>(what: &str, bridge: &BridgeProcess, synapse: &Synapse, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LONG_WAIT;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "waited {LONG_WAIT:?} for {what}\n{}\n{}",
            bridge.log_tail(40),
            synapse.appservice_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
