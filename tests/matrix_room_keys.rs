//! Issue 17: a Matrix user's room keys are never lost on their way to the ghosts' devices,
//! against a real Synapse with bob on matrix-sdk (`clients/matrix`) and DM3 users on a chain,
//! on both backends:
//! - bob writes into eight encrypted DMs at once, after each ghost wrote there first (as the
//!   benchmark does): Synapse's appservice push skips some of his room keys, and every message
//!   still reaches its DM3 user once and in order, none told undecryptable;
//! - a room key the push never delivered (taken out of the transactions on their way, by a
//!   proxy in front of the bridge) is fetched by the catch-up, and the held message is bridged;
//! - a transaction's to-device messages arriving while they cannot be opened (the store fails
//!   to read the ghost's Olm sessions, as it would when the account is contended) are kept, the
//!   homeserver gets its 200 for every transaction, and the message decrypts once they open;
//! - a room key arriving while another replica holds the ghost's lease (`olm-account:<user>`,
//!   on PostgreSQL) is kept, not opened by the replica without the lease, and opened once, in
//!   order with the messages after it, when the other replica lets go or dies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use dm3_bridge::config::Config;
use dm3_bridge::lease::Leases;
use dm3_bridge::matrix::generate::{GenerateOptions, generate_registration};
use dm3_bridge_matrix::Encryption;
use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, MatrixUser as SdkUser, RoomEncryption};
use dm3_world::{ALICE, DS_B, Dm3User, Dm3World};
use serde_json::Value;
use sqlx::PgPool;
use support::TestDb;
use support::bridge::{self, ADMIN_TOKEN};
use support::node::{TestNode, init_data_dir};
use synapse::{SERVER_NAME, Synapse};
use tokio_util::sync::CancellationToken;

on_both_backends!(
    bobs_messages_into_eight_encrypted_dms_at_once_all_arrive_once_and_in_order,
    a_room_key_the_push_never_delivered_is_fetched_by_the_catch_up,
    to_device_messages_are_kept_while_opening_them_fails_and_open_later,
);

/// Long enough for a loaded machine; a wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(120);

/// The bridge's patience with a missing key here: longer than any wait below, so a message
/// told undecryptable is a key that never came.
const PATIENCE_SECS: u64 = 180;

/// Rooms bob writes into at once (the benchmark lost keys from eight on).
const ROOMS: usize = 8;
/// Messages bob writes into each room.
const PER_ROOM: usize = 3;

/// A proxy between Synapse and the bridge's appservice routes that can take the to-device
/// messages out of transactions, as a homeserver that lost them on the way.
struct Proxy {
    url: String,
    strip_to_device: Arc<AtomicBool>,
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    strip: Arc<AtomicBool>,
    http: reqwest::Client,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let strip = Arc::new(AtomicBool::new(false));
        let state = ProxyState { target, strip: strip.clone(), http: reqwest::Client::new() };
        let app = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Proxy { url, strip_to_device: strip }
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut bytes: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if path.starts_with("/_matrix/app/v1/transactions/") && state.strip.load(Ordering::SeqCst) {
        let mut transaction: Value = serde_json::from_slice(&bytes).unwrap();
        let object = transaction.as_object_mut().unwrap();
        object.remove("de.sorunome.msc2409.to_device");
        object.remove("to_device");
        bytes = Bytes::from(serde_json::to_vec(&transaction).unwrap());
    }
    let mut outgoing = state.http.request(parts.method, format!("{}{path}", state.target)).body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    let status = answer.status();
    (status, answer.bytes().await.unwrap()).into_response()
}

/// The world, the bridge on `db` behind the proxy, and bob on matrix-sdk.
struct World {
    world: Dm3World,
    bridge: TestNode,
    synapse: Synapse,
    proxy: Proxy,
    bob: Arc<SdkUser>,
}

async fn start(db: &TestDb) -> World {
    let world = Dm3World::start(None).await;
    let (dir, config_file) = init_data_dir();
    let mut config = Config::load(&config_file, []).unwrap();
    world.configure_bridge(&mut config);
    let proxy = Proxy::start(config.node.public_url.clone()).await;
    let options = GenerateOptions {
        config_file: config_file.clone(),
        homeserver_url: Some("http://127.0.0.1:1".to_owned()),
        server_name: Some(SERVER_NAME.to_owned()),
        // Synapse reaches the bridge through the proxy.
        bridge_url: Some(proxy.url.clone()),
        force: false,
    };
    let report = generate_registration(&options, &[]).unwrap();
    let yaml = std::fs::read_to_string(report.registration_file).unwrap();
    let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
    let (listen, public_url) = (config.node.listen.clone(), config.node.public_url.clone());
    let mut config = Config::load(&config_file, []).unwrap();
    world.configure_bridge(&mut config);
    config.node.listen = listen;
    config.node.public_url = public_url;
    config.admin.token = Some(dm3_bridge::config::AdminToken::new(ADMIN_TOKEN));
    let matrix = config.matrix.as_mut().unwrap();
    matrix.homeserver_url = synapse.url().to_owned();
    matrix.undecryptable_after_secs = PATIENCE_SECS;
    matrix.encryption = Encryption::On;
    config.database.url = Some(db.url.clone());
    let bridge = bridge::start(config, dir, || synapse.log_tail()).await;
    world.point_parent_at(&bridge).await;
    let password = synapse.register_account("bob").await.unwrap();
    let credentials = Credentials { homeserver: synapse.url().to_owned(), user: "bob".to_owned(), password };
    let bob = credentials.login("bob's phone").await.unwrap_or_else(|e| panic!("{e}"));
    World { world, bridge, synapse, proxy, bob: Arc::new(bob) }
}

impl World {
    /// bob's encrypted DM with `name`'s ghost, once his client saw the ghost join.
    async fn dm(&self, name: &str) -> OwnedRoomId {
        let ghost = ids::user_id(&ghost_of(name)).unwrap();
        let room = self.bob.create_dm(&ghost, RoomEncryption::Encrypted).await.unwrap();
        self.bob
            .sync_until(WAIT, "the ghost joins", || async {
                Ok(self.bob.joined_members(&room).await?.contains(&ghost).then_some(()))
            })
            .await
            .unwrap();
        room
    }

    async fn bob_name(&self) -> String {
        bridged_matrix::identity_name(&self.bridge, &format!("@bob:{SERVER_NAME}")).await
    }

    /// The value of `series` on the bridge's `/metrics`, 0 if absent.
    async fn metric(&self, series: &str) -> f64 {
        let text = self.bridge.metrics(ADMIN_TOKEN).await;
        text.lines().find_map(|line| line.strip_prefix(series)).map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Waits until `user` holds `count` messages from `from`; their texts, as stored.
    async fn texts_from(&self, user: &Dm3User, from: &str, count: usize, what: &str) -> Vec<String> {
        let directory = self.world.directory();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut received = user.incoming(&self.world.ds_b, &directory, from).await;
            if received.len() >= count {
                received.reverse(); // the delivery service lists newest first
                return received.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what}: {} of {count} messages arrived in {WAIT:?}\nSynapse's device inbox: {:?}\n{}",
                    received.len(),
                    self.synapse.device_inbox().await.unwrap_or_default(),
                    self.synapse.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Messages the bridge failed to decrypt (gave up on, or refused).
    async fn undecryptable(&self) -> f64 {
        let series = |outcome: &str| {
            format!(r#"dm3_network_decryptions_total{{network="matrix",outcome="{outcome}"}} "#)
        };
        self.metric(&series("gave_up")).await + self.metric(&series("refused")).await
    }

    /// To-device messages the catch-up brought that the push had not.
    async fn recovered(&self) -> f64 {
        self.metric(r#"dm3_matrix_to_device_messages_total{via="catch_up",outcome="new"} "#).await
    }
}

fn ghost_of(name: &str) -> String {
    format!("@_dm3_{name}:{SERVER_NAME}")
}

/// A DM3 user `name` on the chain with a session at node B.
async fn dm3_user(world: &Dm3World, name: &str) -> Dm3User {
    let mut user = Dm3User::new(name, &[DS_B]);
    world.publish_user(name, user.wallet.address(), &user.profile).await;
    user.register(&world.ds_b).await;
    user.token = Some(user.login(&world.ds_b).await);
    user
}

async fn bobs_messages_into_eight_encrypted_dms_at_once_all_arrive_once_and_in_order(db: &TestDb) {
    let w = start(db).await;
    let names: Vec<String> = (0..ROOMS).map(|i| format!("friend{i}.test.eth")).collect();
    let mut users = Vec::new();
    for name in &names {
        users.push(dm3_user(&w.world, name).await);
    }
    let mut rooms = Vec::new();
    for name in &names {
        rooms.push(w.dm(name).await);
    }
    let bob_name = w.bob_name().await;

    // Each ghost writes first: its device shares its room key with bob's over a new Olm session,
    // the one bob's client then answers on.
    let directory = w.world.directory();
    for user in &users {
        user.send(&directory, user.builder(&bob_name).text(&format!("hello bob from {}", user.name), None))
            .await;
    }
    for (room, name) in rooms.iter().zip(&names) {
        let hello = format!("hello bob from {name}");
        w.bob
            .sync_until(WAIT, "the ghost's message decrypts", || async {
                let seen = w.bob.messages(room).await?;
                Ok(seen.iter().any(|e| e.body() == Some(hello.as_str())).then_some(()))
            })
            .await
            .unwrap();
    }

    // bob's client syncs in the background (it answers key requests), and writes into every
    // room at once: his client shares each room's key with its ghost's device as it sends.
    w.bob.start_sync();
    let mut sends = tokio::task::JoinSet::new();
    for (r, room) in rooms.iter().enumerate() {
        let (bob, room) = (w.bob.clone(), room.clone());
        sends.spawn(async move {
            for i in 0..PER_ROOM {
                bob.send_text(&room, &format!("bob to room {r}, message {i}")).await.unwrap();
            }
        });
    }
    sends.join_all().await;

    for (r, user) in users.iter().enumerate() {
        let sent: Vec<String> = (0..PER_ROOM).map(|i| format!("bob to room {r}, message {i}")).collect();
        let texts = w.texts_from(user, &bob_name, PER_ROOM, &format!("room {r}")).await;
        assert_eq!(texts, sent, "room {r}: each message once, in order");
    }
    assert_eq!(w.undecryptable().await, 0.0, "a message was told undecryptable");
    bridged_matrix::settled(&w.bridge, &w.synapse).await;
    for (r, user) in users.iter().enumerate() {
        let texts = w.texts_from(user, &bob_name, PER_ROOM, "after settling").await;
        assert_eq!(texts.len(), PER_ROOM, "room {r}: a message was bridged twice: {texts:?}");
    }
    w.bridge.node.shutdown().await.unwrap();
}

async fn a_room_key_the_push_never_delivered_is_fetched_by_the_catch_up(db: &TestDb) {
    let w = start(db).await;
    let room = w.dm(ALICE).await;
    let bob_name_before = bridged_matrix::identity_name(&w.bridge, &format!("@bob:{SERVER_NAME}")).await;
    // From now on the transactions reach the bridge without their to-device messages: bob's
    // room key for the ghost's device never comes by the push. bob's client does not sync, so
    // it answers no key request: only the catch-up can bring the key.
    w.proxy.strip_to_device.store(true, Ordering::SeqCst);
    w.bob.send_text(&room, "its key never pushed").await.unwrap();
    w.bob.send_text(&room, "and the next one").await.unwrap();
    let bob_name = w.bob_name().await;
    assert_eq!(bob_name, bob_name_before);
    let alice = &w.world.alice;
    let texts = w.texts_from(alice, &bob_name, 2, "the key fetched by the catch-up").await;
    assert_eq!(texts, ["its key never pushed", "and the next one"]);
    assert!(w.recovered().await >= 1.0, "the key did not come by the catch-up");
    assert_eq!(w.undecryptable().await, 0.0);

    // The push works again: what it brings and the catch-up brings again is opened once.
    w.proxy.strip_to_device.store(false, Ordering::SeqCst);
    w.bob.send_text(&room, "after the push came back").await.unwrap();
    let texts = w.texts_from(alice, &bob_name, 3, "after the push came back").await;
    assert_eq!(texts[2], "after the push came back");
    bridged_matrix::settled(&w.bridge, &w.synapse).await;
    assert_eq!(w.texts_from(alice, &bob_name, 3, "settled").await.len(), 3, "a message was bridged twice");
    w.bridge.node.shutdown().await.unwrap();
}

async fn to_device_messages_are_kept_while_opening_them_fails_and_open_later(db: &TestDb) {
    let w = start(db).await;
    let room = w.dm(ALICE).await;
    // The ghost's Olm sessions cannot be read: every opening of a to-device message fails, as
    // with a store failing (the ghost's lease held by another replica: below).
    db.execute("ALTER TABLE matrix_olm_sessions RENAME TO matrix_olm_sessions_away").await;
    w.bob.send_text(&room, "its key kept while it could not be opened").await.unwrap();
    let bob_name = w.bob_name().await;
    let store = w.bridge.node.store();
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.to_device_pending_devices(10).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the room key was not kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alice = &w.world.alice;
    let directory = w.world.directory();
    assert!(
        alice.incoming(&w.world.ds_b, &directory, &bob_name).await.is_empty(),
        "decrypted without its key"
    );

    db.execute("ALTER TABLE matrix_olm_sessions_away RENAME TO matrix_olm_sessions").await;
    let texts = w.texts_from(alice, &bob_name, 1, "opened later").await;
    assert_eq!(texts, ["its key kept while it could not be opened"]);
    // Synapse got its 200 for every transaction (it logs each other answer), so none came again
    // without its to-device messages.
    let pushes = w.synapse.appservice_log();
    assert!(!pushes.contains("received code="), "a transaction was not answered 200:\n{pushes}");
    assert_eq!(w.undecryptable().await, 0.0);
    w.bridge.node.shutdown().await.unwrap();
}

// Lease contention among replicas exists only on PostgreSQL: on SQLite the node is the one
// process of its database and holds every lease without writing a row (`src/lease.rs`), so two
// nodes on one SQLite file would both open, and no replica can hold a ghost back there.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_keys_kept_while_another_replica_holds_the_ghosts_lease_open_once_when_it_lets_go_on_postgres() {
    another_replica_holds_the_ghosts_lease(LetGo::Release).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_keys_kept_while_another_replica_holds_the_ghosts_lease_open_once_when_it_dies_on_postgres() {
    another_replica_holds_the_ghosts_lease(LetGo::Die).await;
}

/// How the replica holding the ghost's lease stops holding it.
#[derive(Debug, Clone, Copy)]
enum LetGo {
    /// It gives the lease up (a graceful stop): taken at once.
    Release,
    /// It stops renewing (killed): the lease runs out `HELD_FOR` after its last renewal.
    Die,
}

/// A count the test reads from the database the node writes.
async fn count(pool: &PgPool, sql: &'static str, ghost: &str) -> i64 {
    sqlx::query_scalar(sql).bind(ghost).fetch_one(pool).await.unwrap()
}

/// The states of the to-device messages kept for `ghost`'s devices, in arrival order.
async fn inbox_states(pool: &PgPool, ghost: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT state FROM matrix_to_device_inbox WHERE user_id = $1 ORDER BY seq")
        .bind(ghost)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn another_replica_holds_the_ghosts_lease(let_go: LetGo) {
    let db = TestDb::postgres().await;
    let w = start(&db).await;
    let room = w.dm(ALICE).await;
    let ghost = ghost_of(ALICE);
    let pool = PgPool::connect(db.url.expose()).await.unwrap();
    let store = w.bridge.node.store();

    // Another replica on the same database takes the ghost's lease, as its work on the ghost
    // would, and renews it: it waits until the node's own lease (from making the device) ran out.
    let other = Leases::new(db.open().await);
    let lease: &'static str = Box::leak(format!("olm-account:{ghost}").into_boxed_str());
    let stop = CancellationToken::new();
    let held = tokio::time::timeout(WAIT, other.wait_for(lease, &stop)).await.unwrap().unwrap();
    assert_eq!(store.lease_holder(lease).await.unwrap().as_deref(), Some(other.owner()));

    // bob writes twice: his client shares the room key with the ghost's device over a new Olm
    // session (a pre-key message) before the first.
    w.bob.send_text(&room, "its key came while another replica held the ghost").await.unwrap();
    w.bob.send_text(&room, "and the one after it").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while inbox_states(&pool, &ghost).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the room key never reached the bridge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for the opener's polls, its backoff's first tries and the held job's retries
    // with their catch-up: none of them may open what the other replica's lease covers.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(inbox_states(&pool, &ghost).await, ["pending"], "the Olm message kept, and not opened");
    let sessions = "SELECT count(*) FROM matrix_olm_sessions WHERE user_id = $1";
    let room_keys = "SELECT count(*) FROM matrix_megolm_inbound WHERE user_id = $1";
    assert_eq!(count(&pool, sessions, &ghost).await, 0, "opened without the lease");
    assert_eq!(count(&pool, room_keys, &ghost).await, 0, "a room key kept without the lease");
    let bob_name = w.bob_name().await;
    let alice = &w.world.alice;
    let directory = w.world.directory();
    assert!(
        alice.incoming(&w.world.ds_b, &directory, &bob_name).await.is_empty(),
        "decrypted without its key"
    );
    assert_eq!(store.lease_holder(lease).await.unwrap().as_deref(), Some(other.owner()));

    match let_go {
        LetGo::Release => held.release().await,
        LetGo::Die => {
            stop.cancel();
            drop(held);
        }
    }
    let texts = w.texts_from(alice, &bob_name, 2, "opened once the lease was free").await;
    assert_eq!(texts, ["its key came while another replica held the ghost", "and the one after it"]);
    w.bob.send_text(&room, "after the other replica let go").await.unwrap();
    let texts = w.texts_from(alice, &bob_name, 3, "after the other replica let go").await;
    assert_eq!(texts[2], "after the other replica let go");
    bridged_matrix::settled(&w.bridge, &w.synapse).await;

    // Each message once; the Olm message kept once (pushed, or caught up, the other copy known
    // by its digest) and opened once: one session, no second one opened on its pre-key message.
    // Read from this test's database: the metrics (`dm3_matrix_to_device_messages_total`) belong
    // to the process, which the tests of this file share.
    assert_eq!(w.texts_from(alice, &bob_name, 3, "settled").await.len(), 3, "a message was bridged twice");
    assert_eq!(inbox_states(&pool, &ghost).await, ["opened"], "the Olm message kept once and opened");
    assert_eq!(count(&pool, sessions, &ghost).await, 1, "a second Olm session");
    assert_eq!(count(&pool, room_keys, &ghost).await, 1);
    assert_eq!(w.undecryptable().await, 0.0);
    let pushes = w.synapse.appservice_log();
    assert!(!pushes.contains("received code="), "a transaction was not answered 200:\n{pushes}");
    pool.close().await;
    w.bridge.node.shutdown().await.unwrap();
}
