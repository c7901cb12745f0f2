//! `kill -9` of the bridge while a Telegram user and a DM3 user write to each other loses
//! nothing.
//!
//! The bridge runs as its own process (the real `dm3-bridge run`,
//! `tests/support/bridge_process.rs`) with `[telegram]` against the fake Bot API of the
//! connector's tests, which keeps what Telegram keeps: the updates the bridge has not confirmed
//! (the `getUpdates` offset) and the messages the bot sent. Everything else is as in
//! `tests/bridge_telegram.rs`: a chain with our ENS contracts and node B as alice's delivery
//! service. ann (Telegram) and alice (DM3) each send [`COUNT`] messages while the test
//! SIGKILLs the bridge twice, each time once both streams are part-way through, and starts it
//! again on the same data directory, database and port.
//!
//! DM3's side must see every message of ann's exactly once and in order: a re-run job seals
//! the same DM3 message (its time comes from Telegram), and the delivery service dedups by
//! hash. Telegram's side must see every message of alice's, in order; the Bot API has no
//! idempotency key, so a kill between Telegram's answer and the job's completion makes the
//! bridge send that one message again after the restart. That is the only duplicate allowed:
//! at most one per kill, right after the original (the conversation's next message waits for
//! the job to complete), as docs/telegram.md says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/dm3_world.rs"]
mod dm3_world;
mod support;
/// The fake Bot API of the connector's tests (not every helper is used here).
#[allow(dead_code)]
#[path = "../connectors/telegram/tests/support"]
mod telegram {
    pub mod bot_api;
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridge_process::BridgeProcess;
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{QueueName, Store, StoreOptions};
use dm3_world::{ALICE, BRIDGE_NODE_NAME, Dm3World, PARENT, free_port};
use support::TestDb;
use support::bridge::ADMIN_TOKEN;
use support::crash::{LONG_WAIT, assert_exactly_once_in_order, outbox_jobs, pending_jobs, settled};
use telegram::bot_api::{BotApi, TOKEN, visible_text};

/// Messages each way.
const COUNT: usize = 100;
/// The pause between two sends of one sender, so that the kills land while both flow.
const PACE: Duration = Duration::from_millis(15);
/// The kills happen once this many messages of each stream were accepted by the bridge.
const KILL_AT: [usize; 2] = [COUNT / 3, 2 * COUNT / 3];
/// How long the bridge stays dead: alice's client retries meanwhile, the fake keeps ann's updates.
const DOWN_FOR: Duration = Duration::from_millis(500);
/// The Telegram user (a private chat has the user's id).
const ANN: i64 = 1001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_on_sqlite() {
    crash_scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_on_postgres() {
    let db = TestDb::postgres().await;
    crash_scenario(Some(db.url.clone())).await;
}

async fn crash_scenario(database: Option<DatabaseUrl>) {
    let started = Instant::now();
    let world = Dm3World::start(None).await;
    let api = BotApi::start().await;
    let mut bridge = BridgeProcess::init(BRIDGE_NODE_NAME, free_port());
    let database =
        database.unwrap_or_else(|| DatabaseUrl::sqlite_file(&bridge.data_dir().join("bridge.sqlite")));
    for (key, value) in world.bridge_env() {
        bridge.set_env(key, value);
    }
    bridge.set_env("DM3_BRIDGE_ADMIN__TOKEN", ADMIN_TOKEN);
    bridge.set_env("DM3_BRIDGE_DATABASE__URL", database.expose());
    bridge.set_env("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN);
    bridge.set_env("DM3_BRIDGE_TELEGRAM__API_URL", api.url.as_str());
    bridge.set_env("DM3_BRIDGE_TELEGRAM__POLL_TIMEOUT_SECS", "1");
    // Paced, but faster than Telegram's 1/s per chat: the streams are a hundred messages.
    bridge.set_env(
        "DM3_BRIDGE_TELEGRAM__RATE_LIMITS",
        "{ per_chat_interval_ms = 10, global_per_second = 1000, max_wait_ms = 5000 }",
    );
    bridge.start().await;
    world.point_parent_at_gateway(&bridge.base(), ADMIN_TOKEN).await;
    let store = Store::open(&database, &StoreOptions::default()).await.unwrap();

    // ann links and picks alice as her contact.
    bot_answers(&api, &bridge, "/start").await;
    bot_answers(&api, &bridge, &format!("/to {ALICE}")).await;
    let ann_name = format!("tg-{ANN}.tg.{PARENT}");
    let directory = world.directory();
    let alice = &world.alice;
    let route = alice.route(&directory, &ann_name).await;
    settled(&store, || bridge.log_tail(40)).await;
    let outbox_before = outbox_jobs(&store).await;
    let bot_before = api.sent_to(ANN).len();
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    let from_alice: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let from_ann: Vec<String> = (0..COUNT).map(|i| format!("t{i:03}")).collect();
    let alice_accepted = AtomicUsize::new(0);
    let streaming = Instant::now();

    // alice's client retries a send that failed, each message signed once.
    let alice_stream = async {
        let retries = alice
            .send_each_until_accepted(&route, &ann_name, &from_alice, PACE, LONG_WAIT, &alice_accepted)
            .await;
        eprintln!(
            "alice's {COUNT} accepted in {:.1} s, {retries} retries",
            streaming.elapsed().as_secs_f64()
        );
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
                let ann_accepted = outbox_jobs(&store).await - outbox_before;
                if alice_accepted.load(Ordering::SeqCst) >= kill_at && ann_accepted >= kill_at as u64 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the bridge did not accept {kill_at} messages each way; alice's: {}, ann's: {ann_accepted}\n{}",
                    alice_accepted.load(Ordering::SeqCst),
                    bridge.log_tail(40)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            bridge.kill();
            let alice_at_kill = alice_accepted.load(Ordering::SeqCst);
            let pending = pending_jobs(&store).await;
            eprintln!(
                "killed at {:.1} s: alice had {alice_at_kill} accepted; the bridge had {pending:?} jobs pending",
                streaming.elapsed().as_secs_f64()
            );
            assert!(alice_at_kill < COUNT, "alice's stream had ended before the kill");
            let holds = |queue| pending.iter().any(|(q, n)| *q == queue && *n > 0);
            assert!(holds(QueueName::Inbox) || holds(QueueName::Outbox), "the bridge was idle at the kill");
            tokio::time::sleep(DOWN_FOR).await;
            bridge.start().await;
        }
    };
    tokio::join!(alice_stream, ann_stream, kills);

    // Every message arrives; then the bridge has nothing left to do.
    let from_alice_at_ann = || -> Vec<String> {
        let prefix = format!("{ALICE}: ");
        api.sent_to(ANN)[bot_before..]
            .iter()
            .filter_map(|sent| visible_text(&sent.text).strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let deadline = Instant::now() + LONG_WAIT;
    while alice.stored_count(&world.ds_b).await < COUNT || dedup_adjacent(&from_alice_at_ann()).len() < COUNT
    {
        assert!(
            Instant::now() < deadline,
            "waited {LONG_WAIT:?}: alice has {} of ann's, ann {} of alice's\n{}",
            alice.stored_count(&world.ds_b).await,
            from_alice_at_ann().len(),
            bridge.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all arrived {:.1} s after the first send", streaming.elapsed().as_secs_f64());
    settled(&store, || bridge.log_tail(40)).await;

    // DM3's side: exactly once, in order (as stored and by the sender's time).
    alice
        .assert_incoming_once_in_order(
            &world.ds_b,
            &directory,
            &ann_name,
            "ann → alice (her delivery service)",
            &from_ann,
        )
        .await;

    // Telegram's side: all, in order; a repeat only right after its original, one per kill at most.
    let at_ann = from_alice_at_ann();
    assert_exactly_once_in_order(
        "alice → ann (the bot's messages, repeats folded)",
        &dedup_adjacent(&at_ann),
        &from_alice,
    );
    let repeats = at_ann.len() - COUNT;
    assert!(
        repeats <= KILL_AT.len(),
        "{repeats} messages sent twice to Telegram for {} kills: {at_ann:?}",
        KILL_AT.len()
    );
    eprintln!("Telegram got {repeats} message(s) twice (sent, then killed before the job completed)");

    bridge.terminate().await;
    store.close().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// `texts` with each run of equal neighbours folded into one.
fn dedup_adjacent(texts: &[String]) -> Vec<String> {
    let mut folded = texts.to_vec();
    folded.dedup();
    folded
}

/// ann sends `command`; waits for the bot's answer.
async fn bot_answers(api: &BotApi, bridge: &BridgeProcess, command: &str) {
    let before = api.sent_to(ANN).len();
    api.user_text(ANN, command);
    let deadline = Instant::now() + LONG_WAIT;
    while api.sent_to(ANN).len() <= before {
        assert!(Instant::now() < deadline, "the bot did not answer {command}\n{}", bridge.log_tail(40));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
