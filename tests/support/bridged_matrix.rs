//! A bridge node with `[matrix]` on a real Synapse, in a world of DM3 users on a chain: what
//! the Matrix end-to-end tests (`tests/bridge_matrix.rs`, `tests/portal_lifecycle.rs`) share.
//! Included with `#[path]` beside `dm3_world`, `synapse` and `support`.
#![allow(dead_code)]

use std::time::Duration;

use dm3_bridge::config::{AdminToken, Config, DatabaseUrl};
use dm3_bridge::matrix::generate::{GenerateOptions, generate_registration};
use dm3_bridge::store::Portal;
use dm3_bridge_connector::{ConversationId, NetworkId};
use serde_json::{Value, json};

use crate::dm3_world::{ALICE, Dm3World};
use crate::support::bridge::{self, ADMIN_TOKEN};
use crate::support::node::{TestNode, init_data_dir};
use crate::synapse::{self, MatrixUser, SERVER_NAME, Synapse};

/// The bridge node, configured with `[matrix]` for `synapse` and names from `world`.
pub async fn start_bridge(world: &Dm3World, database: Option<DatabaseUrl>) -> (TestNode, Synapse) {
    start_bridge_with(world, database, |_| {}).await
}

/// [`start_bridge`] with `adjust` applied to the node's config last.
pub async fn start_bridge_with(
    world: &Dm3World,
    database: Option<DatabaseUrl>,
    adjust: impl FnOnce(&mut Config),
) -> (TestNode, Synapse) {
    let (dir, config_file) = init_data_dir();
    let mut config = Config::load(&config_file, []).unwrap();
    world.configure_bridge(&mut config);
    let options = GenerateOptions {
        config_file: config_file.clone(),
        homeserver_url: Some("http://127.0.0.1:1".to_owned()),
        server_name: Some(SERVER_NAME.to_owned()),
        bridge_url: Some(config.node.public_url.clone()),
        force: false,
    };
    let report = generate_registration(&options, &[]).unwrap();
    let yaml = std::fs::read_to_string(report.registration_file).unwrap();
    let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));

    // Reload: generate-registration wrote the tokens into the file.
    let listen = config.node.listen.clone();
    let public_url = config.node.public_url.clone();
    let mut config = Config::load(&config_file, []).unwrap();
    world.configure_bridge(&mut config);
    config.node.listen = listen;
    config.node.public_url = public_url;
    config.admin.token = Some(AdminToken::new(ADMIN_TOKEN));
    config.matrix.as_mut().unwrap().homeserver_url = synapse.url().to_owned();
    config.database.url = database;
    adjust(&mut config);
    let node = bridge::start(config, dir, || synapse.log_tail()).await;
    (node, synapse)
}

/// A world, its bridge and a DM between them: bob opened a DM with alice's ghost, the ghost
/// joined it, and the bridge gave bob a DM3 name.
pub struct Bridged {
    pub world: Dm3World,
    pub bridge: TestNode,
    pub synapse: Synapse,
    pub bob: MatrixUser,
    pub room: String,
    pub ghost: String,
    pub bob_name: String,
}

pub async fn bridged(database: Option<DatabaseUrl>) -> Bridged {
    bridged_with(database, |_| {}).await
}

/// [`bridged`] with `adjust` applied to the node's config last.
pub async fn bridged_with(database: Option<DatabaseUrl>, adjust: impl FnOnce(&mut Config)) -> Bridged {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = start_bridge_with(&world, database, adjust).await;
    world.point_parent_at(&bridge).await;
    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    let room = open_dm(&synapse, &bob, &ghost).await;
    let bob_name = identity_name(&bridge, &bob.user_id).await;
    Bridged { world, bridge, synapse, bob, room, ghost, bob_name }
}

/// `user` opens a DM with `ghost` as a Matrix client does; the room, once the ghost joined it.
pub async fn open_dm(synapse: &Synapse, user: &MatrixUser, ghost: &str) -> String {
    let room = user
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    wait_until("the ghost joins", synapse, || async {
        members(user, &room).await.iter().any(|m| m == ghost)
    })
    .await;
    room
}

/// The DM3 name of the Matrix user `user_id`, once the bridge made it.
pub async fn identity_name(bridge: &TestNode, user_id: &str) -> String {
    let url = bridge.url(&format!("/admin/identities/matrix:{user_id}"));
    for _ in 0..300 {
        let response = bridge.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        if response.status().is_success() {
            let body: Value = response.json().await.unwrap();
            return body["name"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bridge made no identity for {user_id}");
}

pub async fn members(user: &MatrixUser, room: &str) -> Vec<String> {
    let path = format!("/_matrix/client/v3/rooms/{}/joined_members", synapse::encode(room));
    let answer = user.call(reqwest::Method::GET, &path, None).await.unwrap();
    answer["joined"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

pub async fn wait_until<F, Fut>(what: &str, synapse: &Synapse, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 60 s\n{}", synapse.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first event of the room's timeline that `matches`, waiting for it.
pub async fn wait_for_event(
    synapse: &Synapse,
    user: &MatrixUser,
    room: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let timeline = user.messages(room).await.unwrap();
        if let Some(event) = timeline.into_iter().find(|e| matches(e)) {
            return event;
        }
        assert!(tokio::time::Instant::now() < deadline, "no such event within 60 s\n{}", synapse.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Matrix network's id.
pub fn matrix() -> NetworkId {
    NetworkId::new("matrix").unwrap()
}

/// The portal of `room`, if the bridge recorded one.
pub async fn portal_of(bridge: &TestNode, room: &str) -> Option<Portal> {
    bridge.node.store().portal_by_conversation(&matrix(), &ConversationId::new(room).unwrap()).await.unwrap()
}

/// Waits until the portal of `room` satisfies `check`.
pub async fn wait_for_portal(
    bridge: &TestNode,
    synapse: &Synapse,
    room: &str,
    what: &str,
    check: impl Fn(&Portal) -> bool,
) {
    wait_until(what, synapse, || async { portal_of(bridge, room).await.is_some_and(|p| check(&p)) }).await;
}

/// `user` sets the state event `kind` (state key empty) of `room` to `content`.
pub async fn put_state(user: &MatrixUser, room: &str, kind: &str, content: Value) {
    let path = format!("/_matrix/client/v3/rooms/{}/state/{kind}/", synapse::encode(room));
    user.call(reqwest::Method::PUT, &path, Some(content)).await.unwrap();
}

/// Waits until the bridge has no job pending in either queue; none may have failed.
pub async fn settled(bridge: &TestNode, synapse: &Synapse) {
    bridge::settled(bridge, || synapse.log_tail()).await;
}
