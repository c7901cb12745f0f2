//! Issue #16, "Bounds", end to end: the bridge node with `[telegram]` against the fake Bot API
//! (`connectors/telegram/tests/support/bot_api.rs`), a chain with our ENS contracts and a second
//! relay node as alice's delivery service (`tests/support/dm3_world.rs`), as in
//! `tests/bridge_telegram.rs`; on SQLite and PostgreSQL.
//!
//! - a flood from one DM3 sender to one Telegram user is capped per conversation: the submit
//!   beyond is refused with 429 / -32005, nothing accepted is lost, a replay is a duplicate, the
//!   sender gets one warning, and `/metrics` shows the queue depth at once;
//! - an old `/to` served again after a restart of the bridge does not undo the later `/to`.
//!
//! The scenarios run one at a time: they read the process-wide queue-depth gauges, which every
//! node of the process sets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_telegram.rs"]
mod bridged_telegram;
#[path = "support/dm3_world.rs"]
mod dm3_world;
mod support;
/// The fake Bot API of the connector's tests (not every helper is used here).
#[allow(dead_code)]
#[path = "../connectors/telegram/tests/support"]
mod telegram {
    pub mod bot_api;
}

use std::time::{Duration, Instant};

use bridged_telegram::{ANN, BEN, TgBridged, bridged_with, tg_name, wait_for};
use dm3::envelope::{DeliveryInformationField, Envelope};
use dm3::message::MessageType;
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{JobState, QueueName};
use dm3_world::ALICE;
use serde_json::Value;
use support::TestDb;
use support::bridge::{self, ADMIN_TOKEN, LONG_WAIT};
use telegram::bot_api::visible_text;
use tokio::sync::Mutex;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _alone = super::ONE_AT_A_TIME.lock().await;
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _alone = super::ONE_AT_A_TIME.lock().await;
                    let db = super::TestDb::postgres().await;
                    super::$name(Some(db.url.clone())).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_flood_is_capped_per_conversation_and_its_sender_warned_once,
    an_old_to_served_again_after_a_restart_changes_nothing,
);

/// The scenarios read process-wide gauges: one node at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

impl TgBridged {
    /// `dm3_engine_queue_depth{queue="inbox",state}` as the bridge's `/metrics` says now.
    async fn inbox_depth(&self, state: JobState) -> Option<u64> {
        let text = self.bridge.metrics(ADMIN_TOKEN).await;
        let series = format!(r#"dm3_engine_queue_depth{{queue="inbox",state="{}"}} "#, state.as_str());
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map(|value| value.trim().parse::<f64>().unwrap() as u64)
    }
}

/// Issue #16, item 5: alice floods ANN while Telegram takes nothing (every send answered 429).
/// The conversation holds `CAP` of her messages; the next is refused with 429 / -32005 and the
/// ones accepted are kept, a replay of one of them is still accepted (a duplicate), she is told
/// once, from ANN's identity, that her messages wait, and `/metrics` shows the backlog right
/// after each submit (the gauges used to be refreshed every 15 s). Once Telegram takes messages
/// again, every accepted one reaches ANN once, in order, and the refused one goes through.
async fn a_flood_is_capped_per_conversation_and_its_sender_warned_once(database: Option<DatabaseUrl>) {
    const CAP: u32 = 6;
    let t = bridged_with(database, |config| config.engine.max_pending_per_conversation = CAP).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    let bot_messages = t.api.sent_to(ANN).len();

    t.api.rate_limit_every("sendMessage", 1, 1);
    let route = alice.route(&t.directory, &ann).await;
    let texts: Vec<String> = (0..=CAP).map(|i| format!("m{i}")).collect();
    let signed: Vec<_> = texts.iter().map(|text| alice.sign(alice.builder(&ann).text(text, None))).collect();
    for (i, message) in signed.iter().take(CAP as usize).enumerate() {
        alice.try_submit(&route, message).await.unwrap();
        assert_eq!(t.inbox_depth(JobState::Pending).await, Some(i as u64 + 1), "at once after submit {i}");
    }
    let refused = alice.try_submit(&route, &signed[CAP as usize]).await.unwrap_err();
    assert!(refused.contains("429") && refused.contains("-32005"), "{refused}");
    assert!(refused.contains("retry later"), "{refused}");
    alice.try_submit(&route, &signed[1]).await.expect("a replay of an accepted message is a duplicate");
    assert_eq!(t.inbox_depth(JobState::Pending).await, Some(u64::from(CAP)));

    // What the relay queued for the bridge: the delivery information in clear and no
    // postmark, which nobody would open (the engine opens the envelope where it arrived).
    let key = format!("{ann}:{}", signed[0].hash());
    let job = t.bridge.node.store().get_job(QueueName::Inbox, &key).await.unwrap().unwrap();
    let payload: Value = serde_json::from_str(&job.payload).unwrap();
    let queued = Envelope::parse(payload["envelope"].as_str().unwrap()).unwrap();
    assert!(matches!(queued.delivery_information_field(), DeliveryInformationField::Plain(_)));
    assert_eq!(queued.postmark(), None);

    // One warning, a reply to the message that made half the cap wait.
    let warnings = t.world.alice.wait_for(&t.world.ds_b, &t.directory, &ann, 1).await;
    let warning = &warnings[0].message;
    assert_eq!(warning.kind(), MessageType::Reply);
    let crossing = signed[CAP as usize / 2 - 1].hash().to_string();
    assert_eq!(warning.reference_message_hash(), Some(crossing.as_str()));
    let text = warning.text().unwrap();
    assert!(text.contains(&format!("{} of your messages to {ann} are waiting", CAP / 2)), "{text}");

    // Telegram takes messages again: all accepted arrive, once each, in order.
    t.api.rate_limit_every("sendMessage", u32::MAX, 1);
    let deadline = Instant::now() + LONG_WAIT;
    while t.api.sent_to(ANN).len() < bot_messages + CAP as usize {
        assert!(Instant::now() < deadline, "{:?}", t.api.sent_to(ANN));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bridge::settled(&t.bridge, String::new).await;
    // The store says nothing is pending a moment before the worker counts its last completion.
    let deadline = Instant::now() + Duration::from_secs(1);
    while t.inbox_depth(JobState::Pending).await != Some(0) {
        assert!(
            Instant::now() < deadline,
            "pending {:?} after the last completion",
            t.inbox_depth(JobState::Pending).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.try_submit(&route, &signed[CAP as usize]).await.expect("room again");
    assert_eq!(t.next_from_bot(ANN, bot_messages + CAP as usize).await, format!("{ALICE}: m{CAP}"));
    let delivered: Vec<String> =
        t.api.sent_to(ANN)[bot_messages..].iter().map(|s| visible_text(&s.text)).collect();
    let expected: Vec<String> = texts.iter().map(|text| format!("{ALICE}: {text}")).collect();
    assert_eq!(delivered, expected);
    bridge::settled(&t.bridge, String::new).await;
    let from_ann = t.world.alice.wait_for(&t.world.ds_b, &t.directory, &ann, 1).await;
    assert_eq!(from_ann.len(), 1, "one warning for the flood: {from_ann:#?}");
    t.bridge.node.shutdown().await.unwrap();
}

/// Issue #16, item 6: ANN chooses alice, then BEN; the bridge restarts (its memory of each
/// chat's newest update is gone) and Telegram serves the old `/to alice` again. It is confirmed
/// and changes nothing: ANN still writes to BEN.
async fn an_old_to_served_again_after_a_restart_changes_nothing(database: Option<DatabaseUrl>) {
    let t = bridged_with(database, |_| {}).await;
    let (ann, ben) = (tg_name(ANN), tg_name(BEN));
    t.start(BEN).await;
    t.start(ANN).await;
    let (to_alice, _) = t.api.user_text(ANN, &format!("/to {ALICE}"));
    t.next_from_bot(ANN, 1).await;
    t.api.user_text(ANN, &format!("/to {ben}"));
    t.next_from_bot(ANN, 2).await;
    wait_for("the updates confirmed", || (t.api.pending_updates() == 0).then_some(())).await;

    let TgBridged { world, api, bridge, directory } = t;
    let stopped = bridge::stop(bridge).await;
    let bridge = stopped.start().await;
    let t = TgBridged { world, api, bridge, directory };

    t.api.serve_again(to_alice);
    wait_for("the replay confirmed", || (t.api.pending_updates() == 0).then_some(())).await;
    let ben_before = t.api.sent_to(BEN).len();
    t.api.user_text(ANN, "after the restart");
    assert_eq!(t.next_from_bot(BEN, ben_before).await, format!("{ann}: after the restart"));
    assert_eq!(t.api.sent_to(ANN).len(), 3, "the replay was not answered: {:?}", t.api.sent_to(ANN));
    t.api.user_text(ANN, "/who");
    assert_eq!(t.next_from_bot(ANN, 3).await, format!("You are writing to {ben}."));
    bridge::settled(&t.bridge, String::new).await;
    let from_ann = t.world.alice.wait_for(&t.world.ds_b, &t.directory, &ann, 0).await;
    assert!(from_ann.is_empty(), "alice got {from_ann:#?}");
    t.bridge.node.shutdown().await.unwrap();
}
