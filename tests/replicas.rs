//! Three node processes on one PostgreSQL database behind HAProxy: `kill -9` of one replica and
//! then another, mid-stream, loses nothing, repeats nothing, and keeps each conversation's order
//! (issue #20, docs/scaling.md).
//!
//! Three `dm3-bridge run` processes of one node (the same configuration and keys,
//! `BridgeProcess::replica`) share a throwaway PostgreSQL; HAProxy with the shipped
//! `deploy/haproxy/haproxy.cfg` is the node's public URL, so every DM3 submit (alice's client
//! posting to ann's delivery service) goes through it, spread over the replicas. Telegram is the
//! fake Bot API in long-polling mode: exactly one replica may poll (the lease
//! `telegram-polling`, `src/lease.rs`). Matrix is a real Synapse whose application-service
//! transactions go through HAProxy too. ann (Telegram) and alice (DM3) write to each other, and
//! so do bob (Matrix) and alice, all four streams at once; the test SIGKILLs the replica that polls once both streams are a third through, measures how
//! long until another replica holds the lease, then SIGKILLs that one at two thirds. The last
//! replica carries the rest: the killed replicas' claimed jobs come back when their job leases
//! run out (`[engine]`, 30 s), ann's unconfirmed updates when the new poller asks Telegram.
//!
//! Counted at both ends as in `tests/bridge_telegram_crash.rs` and `tests/bridge_matrix_crash.rs`:
//! alice's delivery service holds ann's and bob's messages exactly once and in order; bob's room
//! holds alice's exactly once and in order (Matrix sends carry transaction ids); ann's chat holds
//! alice's in order, a message at most once more right after itself per kill (the Bot API has no
//! idempotency key: a replica killed between Telegram's answer and the job's completion leaves
//! the send to be made again).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/haproxy.rs"]
mod haproxy;
mod support;
#[path = "support/synapse.rs"]
mod synapse;
/// The fake Bot API of the connector's tests (not every helper is used here).
#[allow(dead_code)]
#[path = "../connectors/telegram/tests/support"]
mod telegram {
    pub mod bot_api;
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge_process::BridgeProcess;
use dm3_bridge::lease::{HELD_FOR, TELEGRAM_POLLING, TRY_EVERY};
use dm3_bridge::store::{Store, StoreOptions};
use dm3_world::{ALICE, BRIDGE_NODE_NAME, Dm3World, PARENT, free_port};
use haproxy::Haproxy;
use serde_json::{Value, json};
use support::TestDb;
use support::bridge::ADMIN_TOKEN;
use support::crash::{LONG_WAIT, assert_exactly_once_in_order, outbox_jobs, pending_jobs, settled};
use synapse::{SERVER_NAME, Synapse};
use telegram::bot_api::{BotApi, TOKEN, visible_text};

/// Messages each way.
const COUNT: usize = 100;
/// The pause between two sends of one sender, so that the kills land while both flow.
const PACE: Duration = Duration::from_millis(40);
/// The kills happen once this many messages of each stream were accepted by the bridge.
const KILL_AT: [usize; 2] = [COUNT / 3, 2 * COUNT / 3];
/// The Telegram user (a private chat has the user's id).
const ANN: i64 = 1001;
/// The most a takeover of Telegram polling may take after the poller's `kill -9`: its lease
/// runs out ([`HELD_FOR`] after its last renewal, which was at most [`TRY_EVERY`] before the
/// kill), and a waiting replica tries every [`TRY_EVERY`]; a second for the database round trips.
const TAKEOVER_BOUND: Duration = Duration::from_secs(HELD_FOR.as_secs() + 2 * TRY_EVERY.as_secs() + 1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_and_repeat_nothing_when_two_are_killed_mid_stream() {
    let started = Instant::now();
    let db = TestDb::postgres().await;
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
    // The first start makes the gateway's signing key, which the others then share.
    first.start().await;
    let mut replicas = vec![first];
    for port in &ports[1..] {
        let mut replica = replicas[0].replica(*port);
        replica.start().await;
        replicas.push(replica);
    }
    world.point_parent_at_gateway(&lb.base(), ADMIN_TOKEN).await;
    let store = Store::open(&db.url, &StoreOptions::default()).await.unwrap();
    let logs = |replicas: &[BridgeProcess]| -> String {
        let tails: String =
            replicas.iter().map(|r| format!("--- replica on {}:\n{}\n", r.port(), r.log_tail(25))).collect();
        format!("{tails}--- Synapse's application-service log:\n{}", synapse.appservice_log())
    };

    // ann links and picks alice as her contact (through whichever replica polls).
    for command in ["/start".to_owned(), format!("/to {ALICE}")] {
        let before = api.sent_to(ANN).len();
        api.user_text(ANN, &command);
        let deadline = Instant::now() + LONG_WAIT;
        while api.sent_to(ANN).len() <= before {
            assert!(Instant::now() < deadline, "the bot did not answer {command}\n{}", logs(&replicas));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // bob opens a DM with alice's ghost; the bridge gives him a DM3 name.
    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    let room = bob
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    let deadline = Instant::now() + LONG_WAIT;
    while !bridged_matrix::members(&bob, &room).await.contains(&ghost) {
        assert!(Instant::now() < deadline, "the ghost did not join bob's DM\n{}", logs(&replicas));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bob_name = identity_name(&lb, &bob.user_id).await;
    let ann_name = format!("tg-{ANN}.tg.{PARENT}");
    let directory = world.directory();
    let alice = &world.alice;
    let route = alice.route(&directory, &ann_name).await;
    let route_to_bob = alice.route(&directory, &bob_name).await;
    settled(&store, || logs(&replicas)).await;
    let outbox_before = outbox_jobs(&store).await;
    let bot_before = api.sent_to(ANN).len();
    eprintln!("three replicas set up in {:.1} s", started.elapsed().as_secs_f64());

    let from_alice: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let from_ann: Vec<String> = (0..COUNT).map(|i| format!("t{i:03}")).collect();
    let from_alice_to_bob: Vec<String> = (0..COUNT).map(|i| format!("n{i:03}")).collect();
    let from_bob: Vec<String> = (0..COUNT).map(|i| format!("b{i:03}")).collect();
    let alice_accepted = AtomicUsize::new(0);
    let alice_to_bob_accepted = AtomicUsize::new(0);
    let streaming = Instant::now();
    let mut takeovers = Vec::new();

    // alice's client retries a send that failed (a replica killed under it), each message signed once.
    let alice_stream = async {
        let retries = alice
            .send_each_until_accepted(&route, &ann_name, &from_alice, PACE, LONG_WAIT, &alice_accepted)
            .await;
        eprintln!(
            "alice's {COUNT} accepted in {:.1} s, {retries} retries",
            streaming.elapsed().as_secs_f64()
        );
    };
    let alice_to_bob_stream = async {
        alice
            .send_each_until_accepted(
                &route_to_bob,
                &bob_name,
                &from_alice_to_bob,
                PACE,
                LONG_WAIT,
                &alice_to_bob_accepted,
            )
            .await;
    };
    // bob's client: Synapse takes every message whatever the bridge does, and pushes it to
    // whichever replica HAProxy picks.
    let bob_stream = async {
        for (i, text) in from_bob.iter().enumerate() {
            bob.send_text(&room, &format!("b{i}"), text).await.unwrap();
            tokio::time::sleep(PACE).await;
        }
    };
    // ann's Telegram app: Telegram takes every message whatever the bridge does.
    let ann_stream = async {
        for text in &from_ann {
            api.user_text(ANN, text);
            tokio::time::sleep(PACE).await;
        }
    };
    let kills = async {
        for kill_at in KILL_AT {
            let deadline = Instant::now() + LONG_WAIT;
            loop {
                // ann's and bob's together: the outbox holds both.
                let network_accepted = outbox_jobs(&store).await - outbox_before;
                let alice_least =
                    alice_accepted.load(Ordering::SeqCst).min(alice_to_bob_accepted.load(Ordering::SeqCst));
                if alice_least >= kill_at && network_accepted >= 2 * kill_at as u64 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the bridge did not accept {kill_at} messages of each stream; alice's: {alice_least}, \
                     ann's and bob's: {network_accepted}\n{}",
                    logs(&replicas)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The replica that polls Telegram now: its lease names its process.
            let poller = store.lease_holder(TELEGRAM_POLLING).await.unwrap().expect("a replica polls");
            let victim = replicas
                .iter()
                .position(|r| r.is_running() && poller.starts_with(&format!("pid-{}-", r.pid())))
                .unwrap_or_else(|| panic!("no running replica holds the polling lease {poller}"));
            replicas[victim].kill();
            let killed_at = Instant::now();
            eprintln!(
                "killed the polling replica on {} at {:.1} s: alice had {} accepted; jobs pending {:?}",
                replicas[victim].port(),
                streaming.elapsed().as_secs_f64(),
                alice_accepted.load(Ordering::SeqCst),
                pending_jobs(&store).await
            );
            assert!(
                alice_accepted.load(Ordering::SeqCst) < COUNT,
                "alice's stream had ended before the kill"
            );
            // Another replica takes polling over within the bound.
            loop {
                let holder = store.lease_holder(TELEGRAM_POLLING).await.unwrap();
                if holder.as_ref().is_some_and(|h| *h != poller) {
                    break;
                }
                assert!(
                    killed_at.elapsed() < TAKEOVER_BOUND,
                    "no replica took Telegram polling over within {TAKEOVER_BOUND:?}\n{}",
                    logs(&replicas)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let takeover = killed_at.elapsed();
            eprintln!("polling taken over {:.2} s after the kill", takeover.as_secs_f64());
            takeovers.push(takeover);
        }
    };
    tokio::join!(alice_stream, alice_to_bob_stream, bob_stream, ann_stream, kills);

    // Every message arrives, carried by the replica left; then nothing is left to do.
    let from_alice_at_ann = || -> Vec<String> {
        let prefix = format!("{ALICE}: ");
        api.sent_to(ANN)[bot_before..]
            .iter()
            .filter_map(|sent| visible_text(&sent.text).strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let folded = |texts: Vec<String>| {
        let mut texts = texts;
        texts.dedup();
        texts
    };
    let deadline = Instant::now() + LONG_WAIT;
    while alice.stored_count(&world.ds_b).await < 2 * COUNT
        || folded(from_alice_at_ann()).len() < COUNT
        || bob.bodies_from(&room, &ghost).await.unwrap().len() < COUNT
    {
        assert!(
            Instant::now() < deadline,
            "waited {LONG_WAIT:?}: alice has {} of ann's and bob's, ann {} of alice's, bob {} of alice's\n{}",
            alice.stored_count(&world.ds_b).await,
            from_alice_at_ann().len(),
            bob.bodies_from(&room, &ghost).await.unwrap().len(),
            logs(&replicas)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all arrived {:.1} s after the first send", streaming.elapsed().as_secs_f64());
    settled(&store, || logs(&replicas)).await;

    // DM3's side: exactly once, in order (as stored and by the sender's time).
    let mut at_alice = alice.incoming(&world.ds_b, &directory, &ann_name).await;
    at_alice.reverse(); // the delivery service lists newest first
    let stored: Vec<String> =
        at_alice.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect();
    assert_exactly_once_in_order("ann → alice (her delivery service, as stored)", &stored, &from_ann);
    at_alice.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
    let by_time: Vec<String> =
        at_alice.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect();
    assert_exactly_once_in_order("ann → alice (by the sender's time)", &by_time, &from_ann);

    // Matrix's side, and bob's messages at alice's: exactly once, in order.
    let at_bob = bob.bodies_from(&room, &ghost).await.unwrap();
    assert_exactly_once_in_order("alice → bob (bob's room timeline)", &at_bob, &from_alice_to_bob);
    let mut from_bob_at_alice = alice.incoming(&world.ds_b, &directory, &bob_name).await;
    from_bob_at_alice.reverse();
    let stored: Vec<String> =
        from_bob_at_alice.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect();
    assert_exactly_once_in_order("bob → alice (her delivery service, as stored)", &stored, &from_bob);

    // Telegram's side: all, in order; a repeat only right after its original, one per kill at most.
    let at_ann = from_alice_at_ann();
    assert_exactly_once_in_order(
        "alice → ann (the bot's messages, repeats folded)",
        &folded(at_ann.clone()),
        &from_alice,
    );
    let repeats = at_ann.len() - COUNT;
    assert!(
        repeats <= KILL_AT.len(),
        "{repeats} messages sent twice to Telegram for {} kills: {at_ann:?}",
        KILL_AT.len()
    );

    // Polling changed hands exactly at the two kills: three holders in all, one at a time.
    let holders: usize =
        replicas.iter().map(|r| r.log().matches("this process holds the lease now").count()).sum();
    assert_eq!(
        holders,
        1 + KILL_AT.len(),
        "the polling lease changed hands other than at the kills\n{}",
        logs(&replicas)
    );
    eprintln!(
        "takeovers of Telegram polling: {:?} (bound {TAKEOVER_BOUND:?}); Telegram got {repeats} message(s) twice",
        takeovers.iter().map(|t| format!("{:.2} s", t.as_secs_f64())).collect::<Vec<_>>()
    );

    for replica in replicas.iter_mut().filter(|r| r.is_running()) {
        replica.terminate().await;
    }
    store.close().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// The DM3 name the bridge gave the Matrix user `user_id`, asked of any replica.
async fn identity_name(lb: &Haproxy, user_id: &str) -> String {
    let url = format!("{}/admin/identities/matrix:{user_id}", lb.base());
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let response = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        if response.status().is_success() {
            let body: Value = response.json().await.unwrap();
            return body["name"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bridge made no identity for {user_id}");
}
