//! Three node processes on one PostgreSQL database behind HAProxy, with traffic both ways on
//! Matrix and Telegram: what the replica scenarios share (`tests/replicas.rs` kills two of them,
//! `tests/replica_clock.rs` runs one with its clock 30 s ahead and kills another).
//!
//! Three `dm3-bridge run` processes of one node (the same configuration and keys,
//! `BridgeProcess::replica`) share the database; HAProxy with the shipped
//! `deploy/haproxy/haproxy.cfg` is the node's public URL, so every DM3 submit goes through it,
//! spread over the replicas. Telegram is the fake Bot API in long-polling mode (one replica
//! polls, the lease `telegram-polling`); Matrix is a real Synapse whose application-service
//! transactions go through HAProxy too. ann (Telegram) and alice (DM3) write to each other, and
//! so do bob (Matrix) and alice, four streams at once ([`ReplicaSet::stream`]); at the end every
//! message is counted at both ends ([`ReplicaSet::assert_every_message_arrived`]).
//!
//! Included with `#[path]` beside `anvil`, `bridge_process`, `bridged_matrix`, `dm3_world`,
//! `haproxy`, `synapse`, `support` and `telegram::bot_api`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dm3_bridge::lease::TELEGRAM_POLLING;
use dm3_bridge::store::{Store, StoreOptions};
use serde_json::json;

use crate::bridge_process::BridgeProcess;
use crate::bridged_matrix;
use crate::dm3_world::{ALICE, BRIDGE_NODE_NAME, Dm3World, PARENT, Route, free_port};
use crate::haproxy::Haproxy;
use crate::support::TestDb;
use crate::support::bridge::{ADMIN_TOKEN, matrix_identity_name};
use crate::support::crash::{LONG_WAIT, assert_exactly_once_in_order, outbox_jobs, settled};
use crate::synapse::{MatrixUser, SERVER_NAME, Synapse};
use crate::telegram::bot_api::{BotApi, TOKEN, visible_text};

/// The Telegram user (a private chat has the user's id).
pub const ANN: i64 = 1001;

/// The world around the replicas, and what the streams have done so far.
pub struct ReplicaSet {
    pub world: Dm3World,
    pub api: BotApi,
    pub synapse: Synapse,
    pub lb: Haproxy,
    /// The node's database, opened beside the replicas by the test.
    pub store: Store,
    pub bob: MatrixUser,
    pub room: String,
    pub ghost: String,
    pub bob_name: String,
    pub ann_name: String,
    route_to_ann: Route,
    route_to_bob: Route,
    /// Jobs in the outbox and bot messages to ann before the streams.
    outbox_before: u64,
    bot_before: usize,
    alice_to_ann_accepted: AtomicUsize,
    alice_to_bob_accepted: AtomicUsize,
}

/// The texts of one stream: `<prefix>000`, `<prefix>001`, …
pub fn texts(prefix: char, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

impl ReplicaSet {
    /// Starts the world and three replicas on `db`, `adjust(i, replica)` called before replica
    /// `i` starts (0 is the first, whose start makes the keys the others share); ann links and
    /// picks alice, bob opens a DM with alice's ghost. Answers once the node is idle.
    pub async fn start(
        db: &TestDb,
        adjust: impl Fn(usize, &mut BridgeProcess),
    ) -> (ReplicaSet, Vec<BridgeProcess>) {
        let world = Dm3World::start(None).await;
        let api = BotApi::start().await;
        let lb_port = free_port();
        let ports = [free_port(), free_port(), free_port()];

        let lb_base = format!("http://127.0.0.1:{lb_port}");
        let mut first = BridgeProcess::init_behind(BRIDGE_NODE_NAME, &lb_base, ports[0]);
        let yaml = first.generate_registration_reached_at(SERVER_NAME, &lb_base);
        let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
        first.set_env("DM3_BRIDGE_MATRIX__HOMESERVER_URL", synapse.url());
        for (key, value) in world.bridge_env() {
            first.set_env(key, value);
        }
        first.set_env("DM3_BRIDGE_ADMIN__TOKEN", ADMIN_TOKEN);
        first.set_env("DM3_BRIDGE_DATABASE__URL", db.url.expose());
        first.set_env("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN);
        first.set_env("DM3_BRIDGE_TELEGRAM__API_URL", api.url.as_str());
        first.set_env("DM3_BRIDGE_TELEGRAM__POLL_TIMEOUT_SECS", "1");
        // Paced, but faster than Telegram's 1/s per chat: the streams are a hundred messages.
        first.set_env(
            "DM3_BRIDGE_TELEGRAM__RATE_LIMITS",
            "{ per_chat_interval_ms = 10, global_per_second = 1000, max_wait_ms = 5000 }",
        );
        // Behind HAProxy, as deploy/haproxy/haproxy.cfg says.
        first.set_env("DM3_BRIDGE_RATE_LIMITS__TRUST_FORWARDED_FOR", "true");
        first.set_env("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS_PER_IP", "0");
        // HAProxy first: a replica starts once the homeserver answered its ping, which Synapse
        // checks by calling the bridge through HAProxy.
        let lb = Haproxy::start(lb_port, ports).await;
        adjust(0, &mut first);
        first.start().await;
        let mut replicas = vec![first];
        for (i, port) in ports.iter().enumerate().skip(1) {
            let mut replica = replicas[0].replica(*port);
            adjust(i, &mut replica);
            replica.start().await;
            replicas.push(replica);
        }
        world.point_parent_at_gateway(&lb.base(), ADMIN_TOKEN).await;
        let store = Store::open(&db.url, &StoreOptions::default()).await.unwrap();

        link_ann(&api, || logs(&replicas, &synapse)).await;
        let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
        let (bob, room) = open_dm(&synapse, "bob", &ghost, || logs(&replicas, &synapse)).await;
        let bob_name = matrix_identity_name(&lb.base(), &bob.user_id, || logs(&replicas, &synapse)).await;
        let ann_name = format!("tg-{ANN}.tg.{PARENT}");
        let directory = world.directory();
        let route_to_ann = world.alice.route(&directory, &ann_name).await;
        let route_to_bob = world.alice.route(&directory, &bob_name).await;
        settled(&store, || logs(&replicas, &synapse)).await;
        let outbox_before = outbox_jobs(&store).await;
        let bot_before = api.sent_to(ANN).len();
        let set = ReplicaSet {
            world,
            api,
            synapse,
            lb,
            store,
            bob,
            room,
            ghost,
            bob_name,
            ann_name,
            route_to_ann,
            route_to_bob,
            outbox_before,
            bot_before,
            alice_to_ann_accepted: AtomicUsize::new(0),
            alice_to_bob_accepted: AtomicUsize::new(0),
        };
        (set, replicas)
    }

    /// The last lines of each replica's log and Synapse's application-service log.
    pub fn logs(&self, replicas: &[BridgeProcess]) -> String {
        logs(replicas, &self.synapse)
    }

    /// The four streams of `count` messages, all at once, `pace` between two sends of one
    /// sender: alice → ann (`m…`), alice → bob (`n…`), ann → alice (`t…`), bob → alice (`b…`).
    /// alice's client retries a send that failed (a replica killed under it), each message
    /// signed once; Synapse and Telegram take every message whatever the bridge does.
    pub async fn stream(&self, count: usize, pace: Duration) {
        let alice = &self.world.alice;
        let (to_ann_texts, to_bob_texts) = (texts('m', count), texts('n', count));
        let started = Instant::now();
        let to_ann = async {
            let retries = alice
                .send_each_until_accepted(
                    &self.route_to_ann,
                    &self.ann_name,
                    &to_ann_texts,
                    pace,
                    LONG_WAIT,
                    &self.alice_to_ann_accepted,
                )
                .await;
            eprintln!(
                "alice's {count} to ann accepted in {:.1} s, {retries} retries",
                started.elapsed().as_secs_f64()
            );
        };
        let to_bob = alice.send_each_until_accepted(
            &self.route_to_bob,
            &self.bob_name,
            &to_bob_texts,
            pace,
            LONG_WAIT,
            &self.alice_to_bob_accepted,
        );
        let from_bob = async {
            for (i, text) in texts('b', count).iter().enumerate() {
                self.bob.send_text(&self.room, &format!("b{i}"), text).await.unwrap();
                tokio::time::sleep(pace).await;
            }
        };
        let from_ann = async {
            for text in texts('t', count) {
                self.api.user_text(ANN, &text);
                tokio::time::sleep(pace).await;
            }
        };
        tokio::join!(to_ann, to_bob, from_bob, from_ann);
    }

    /// How many of alice's messages were accepted, in her slower stream.
    pub fn alice_accepted(&self) -> usize {
        self.alice_to_ann_accepted
            .load(Ordering::SeqCst)
            .min(self.alice_to_bob_accepted.load(Ordering::SeqCst))
    }

    /// Waits until the node accepted `at` messages of each stream.
    pub async fn wait_for_each_stream(&self, at: usize, replicas: &[BridgeProcess]) {
        let deadline = Instant::now() + LONG_WAIT;
        loop {
            // ann's and bob's together: the outbox holds both.
            let network_accepted = outbox_jobs(&self.store).await - self.outbox_before;
            if self.alice_accepted() >= at && network_accepted >= 2 * at as u64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not accept {at} messages of each stream; alice's: {}, ann's and bob's: \
                 {network_accepted}\n{}",
                self.alice_accepted(),
                self.logs(replicas)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The owner of the Telegram polling lease now, and the running replica it names.
    pub async fn poller(&self, replicas: &[BridgeProcess]) -> (String, usize) {
        let owner = self.store.lease_holder(TELEGRAM_POLLING).await.unwrap().expect("a replica polls");
        let index = replicas
            .iter()
            .position(|r| r.is_running() && owner.starts_with(&format!("pid-{}-", r.pid())))
            .unwrap_or_else(|| panic!("no running replica holds the polling lease {owner}"));
        (owner, index)
    }

    /// Waits until a replica other than `owner` holds the polling lease, for at most `bound`
    /// after `killed_at`; answers how long after the kill it did.
    pub async fn wait_for_takeover(
        &self,
        owner: &str,
        killed_at: Instant,
        bound: Duration,
        replicas: &[BridgeProcess],
    ) -> Duration {
        loop {
            let holder = self.store.lease_holder(TELEGRAM_POLLING).await.unwrap();
            if holder.as_ref().is_some_and(|h| h != owner) {
                return killed_at.elapsed();
            }
            assert!(
                killed_at.elapsed() < bound,
                "no replica took Telegram polling over within {bound:?}\n{}",
                self.logs(replicas)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the `count` messages of every stream arrived and the node settled, then
    /// counts each end: alice's delivery service holds ann's and bob's exactly once and in
    /// order; bob's room holds alice's exactly once and in order (Matrix sends carry
    /// transaction ids); ann's chat holds alice's in order, a message at most once more right
    /// after itself per kill (the Bot API has no idempotency key: a replica killed between
    /// Telegram's answer and the job's completion leaves the send to be made again). Answers
    /// how many messages Telegram got twice.
    pub async fn assert_every_message_arrived(
        &self,
        count: usize,
        kills: usize,
        replicas: &[BridgeProcess],
    ) -> usize {
        let (alice, bob, world) = (&self.world.alice, &self.bob, &self.world);
        let deadline = Instant::now() + LONG_WAIT;
        while alice.stored_count(&world.ds_b).await < 2 * count
            || folded(self.alices_at_ann()).len() < count
            || bob.bodies_from(&self.room, &self.ghost).await.unwrap().len() < count
        {
            assert!(
                Instant::now() < deadline,
                "waited {LONG_WAIT:?}: alice has {} of ann's and bob's, ann {} of alice's, bob {} of alice's\n{}",
                alice.stored_count(&world.ds_b).await,
                self.alices_at_ann().len(),
                bob.bodies_from(&self.room, &self.ghost).await.unwrap().len(),
                self.logs(replicas)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        settled(&self.store, || self.logs(replicas)).await;

        let directory = world.directory();
        // DM3's side: exactly once, in order (as stored and by the sender's time); and Matrix's.
        alice
            .assert_incoming_once_in_order(
                &world.ds_b,
                &directory,
                &self.ann_name,
                "ann → alice",
                &texts('t', count),
            )
            .await;
        alice
            .assert_incoming_once_in_order(
                &world.ds_b,
                &directory,
                &self.bob_name,
                "bob → alice",
                &texts('b', count),
            )
            .await;
        let at_bob = bob.bodies_from(&self.room, &self.ghost).await.unwrap();
        assert_exactly_once_in_order("alice → bob (bob's room timeline)", &at_bob, &texts('n', count));

        // Telegram's side: all, in order; a repeat only right after its original, one per kill at most.
        let at_ann = self.alices_at_ann();
        assert_exactly_once_in_order(
            "alice → ann (the bot's messages, repeats folded)",
            &folded(at_ann.clone()),
            &texts('m', count),
        );
        let repeats = at_ann.len() - count;
        assert!(repeats <= kills, "{repeats} messages sent twice to Telegram for {kills} kills: {at_ann:?}");
        repeats
    }

    /// What the bot posted to ann from alice since the streams began.
    fn alices_at_ann(&self) -> Vec<String> {
        let prefix = format!("{ALICE}: ");
        self.api.sent_to(ANN)[self.bot_before..]
            .iter()
            .filter_map(|sent| visible_text(&sent.text).strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

/// The last lines of each replica's log and Synapse's application-service log.
fn logs(replicas: &[BridgeProcess], synapse: &Synapse) -> String {
    let tails: String =
        replicas.iter().map(|r| format!("--- replica on {}:\n{}\n", r.port(), r.log_tail(25))).collect();
    format!("{tails}--- Synapse's application-service log:\n{}", synapse.appservice_log())
}

/// ann links and picks alice as her contact (through whichever replica polls).
async fn link_ann(api: &BotApi, logs: impl Fn() -> String) {
    for command in ["/start".to_owned(), format!("/to {ALICE}")] {
        let before = api.sent_to(ANN).len();
        api.user_text(ANN, &command);
        let deadline = Instant::now() + LONG_WAIT;
        while api.sent_to(ANN).len() <= before {
            assert!(Instant::now() < deadline, "the bot did not answer {command}\n{}", logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A new Matrix user `name` opens a DM with `ghost`, which joins; answers the user and room.
async fn open_dm(
    synapse: &Synapse,
    name: &str,
    ghost: &str,
    logs: impl Fn() -> String,
) -> (MatrixUser, String) {
    let user = synapse.register_user(name).await.unwrap();
    let room = user
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    let deadline = Instant::now() + LONG_WAIT;
    while !bridged_matrix::members(&user, &room).await.iter().any(|m| m == ghost) {
        assert!(Instant::now() < deadline, "the ghost did not join {name}'s DM\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (user, room)
}

/// `texts` with a repeat right after its original folded into one.
fn folded(mut texts: Vec<String>) -> Vec<String> {
    texts.dedup();
    texts
}
