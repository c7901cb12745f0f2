//! DM3-first to a Telegram username (docs/names.md section 8), end to end through the bridge
//! node, its gateway, its engine and its Telegram connector polling the fake Bot API, with the
//! DM3 users of `tests/support/dm3_world.rs` (alice's client is the SDK; every name resolves
//! through the chain and the bridge's gateway).
//!
//! alice writes to `u-carol-x.tg.<parent>` before anyone with `@carol_x` used the bridge: her
//! messages are held, she gets one DM3 reply with a start link, and they reach only the account
//! that holds `@carol_x` when it opens that link, in order, once. A username that changed hands
//! gives the new holder nothing written before; a sender over the cap is refused with a DM3
//! reply; a message never released is reported when its TTL ends. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_telegram.rs"]
mod bridged_telegram;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[macro_use]
mod support;
/// The fake Bot API of the connector's tests (not every helper is used here).
#[allow(dead_code)]
#[path = "../connectors/telegram/tests/support"]
mod telegram {
    pub mod bot_api;
}

use std::time::{Duration, Instant};

use bridged_telegram::{ANN, BEN, TgBridged, bridged_with, wait_for};
use dm3::message::MessageType;
use dm3_bridge::store::{JobState, QueueName};
use dm3_world::{ALICE, PARENT};
use support::TestDb;
use telegram::bot_api::visible_text;

on_both_backends!(
    held_messages_reach_the_holder_who_opens_the_link_in_order_once,
    a_username_that_moved_gives_its_new_holder_nothing_written_before,
    a_sender_over_the_cap_is_refused_with_a_dm3_reply,
    a_message_never_released_is_reported_when_its_ttl_ends,
);

const USERNAME: &str = "carol_x";
const CAP: u32 = 3;

fn alias() -> String {
    format!("u-carol-x.tg.{PARENT}")
}

async fn bridged(db: &TestDb) -> TgBridged {
    bridged_with(Some(db.url.clone()), |config| config.engine.max_held_until_consent = CAP).await
}

impl TgBridged {
    /// What the bot sent `user`, as they see it.
    fn chat_of(&self, user: i64) -> Vec<String> {
        self.api.sent_to(user).iter().map(|sent| visible_text(&sent.text)).collect()
    }

    /// Waits until the bot sent `user` a message containing `text`; all it sent them then.
    async fn wait_in_chat(&self, user: i64, text: &str) -> Vec<String> {
        wait_for(&format!("{text:?} in the chat of {user}"), || {
            let chat = self.chat_of(user);
            chat.iter().any(|line| line.contains(text)).then_some(chat)
        })
        .await
    }

    /// The start payload of the link in alice's DM3 reply `text`.
    fn start_payload(text: &str) -> String {
        let at = text.find("?start=").unwrap_or_else(|| panic!("no start link in {text:?}"));
        text[at + "?start=".len()..].split_whitespace().next().unwrap().to_owned()
    }
}

/// alice writes twice; she gets one reply with the link. BEN, whose username is another, opens
/// it and is refused; ANN, who holds `@carol_x`, opens it: both messages arrive in order, once,
/// alice's third goes straight through, and ANN's answer reaches alice from the alias.
async fn held_messages_reach_the_holder_who_opens_the_link_in_order_once(db: &TestDb) {
    let t = bridged(db).await;
    let alice = &t.world.alice;
    let alias = alias();
    t.api.set_username(ANN, Some(USERNAME));
    t.api.set_username(BEN, Some("someone_else"));
    let lookup = format!("{}/names/lookup?network=telegram&user=%40Carol_X", t.bridge.base);
    let found: serde_json::Value = t.bridge.client.get(lookup).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (found["name"].as_str(), found["exists"].as_bool()),
        (Some(alias.as_str()), Some(true)),
        "{found}"
    );
    let hashes = alice
        .send_all(
            &t.directory,
            vec![alice.builder(&alias).text("one", None), alice.builder(&alias).text("two", None)],
        )
        .await;
    let replies = t.alice_got(&alias, 1).await;
    let link = &replies[0];
    assert_eq!(link.message.kind(), MessageType::Reply);
    assert_eq!(link.message.reference_message_hash(), Some(hashes[0].to_string().as_str()));
    let text = link.message.text().unwrap();
    assert!(text.contains("@carol_x") && text.contains("https://t.me/dm3_test_bot?start=H"), "{text}");
    let payload = TgBridged::start_payload(text);
    assert!(t.chat_of(ANN).is_empty() && t.chat_of(BEN).is_empty(), "held: nothing reached Telegram");

    t.api.user_text(BEN, &format!("/start {payload}"));
    let ben = t.wait_in_chat(BEN, "This link was made for @carol_x").await;
    t.api.user_text(ANN, &format!("/start {payload}"));
    let chat = t.wait_in_chat(ANN, &format!("{ALICE}: two")).await;
    let relayed: Vec<&String> = chat.iter().filter(|line| line.starts_with(&format!("{ALICE}:"))).collect();
    assert_eq!(relayed, [&format!("{ALICE}: one"), &format!("{ALICE}: two")], "{chat:?}");

    alice.send(&t.directory, alice.builder(&alias).text("three", None)).await;
    let chat = t.wait_in_chat(ANN, &format!("{ALICE}: three")).await;
    let relayed = chat.iter().filter(|line| line.starts_with(&format!("{ALICE}:"))).count();
    assert_eq!(relayed, 3, "each message once: {chat:?}");
    t.api.user_text(ANN, "hello alice");
    let got = t.alice_got(&alias, 2).await;
    assert_eq!(
        got.len(),
        2,
        "one link reply, then ANN's answer: {:?}",
        got.iter().map(|r| r.message.text()).collect::<Vec<_>>()
    );
    assert_eq!(got[1].message.text(), Some("hello alice"));
    assert_eq!(t.chat_of(BEN), ben, "BEN received nothing after his refusal");
    assert!(!t.chat_of(BEN).iter().any(|line| line.contains(&format!("{ALICE}:"))));
    t.bridge.node.shutdown().await.unwrap();
}

/// alice writes while nobody holds the alias; ANN, then holding `@carol_x`, starts the bot
/// without the link. The username moves to BEN, who opens alice's link: he receives nothing
/// written before the move, alice is told it moved, and what she writes afterwards reaches BEN.
async fn a_username_that_moved_gives_its_new_holder_nothing_written_before(db: &TestDb) {
    let t = bridged(db).await;
    let alice = &t.world.alice;
    let alias = alias();
    t.api.set_username(ANN, Some(USERNAME));
    let held = alice.send(&t.directory, alice.builder(&alias).text("for carol only", None)).await;
    let payload = TgBridged::start_payload(t.alice_got(&alias, 1).await[0].message.text().unwrap());
    t.api.user_text(ANN, "/start");
    t.wait_in_chat(ANN, "Welcome").await;

    t.api.set_username(ANN, None);
    t.api.set_username(BEN, Some(USERNAME));
    t.api.user_text(BEN, &format!("/start {payload}"));
    t.wait_in_chat(BEN, "Welcome").await;
    let told = t.alice_got(&alias, 2).await;
    let moved = &told[1];
    assert_eq!(moved.message.reference_message_hash(), Some(held.to_string().as_str()));
    let text = moved.message.text().unwrap();
    assert!(text.contains("moved to another account"), "{text}");

    alice.send(&t.directory, alice.builder(&alias).text("after the move", None)).await;
    t.wait_in_chat(BEN, &format!("{ALICE}: after the move")).await;
    for (user, chat) in [(ANN, t.chat_of(ANN)), (BEN, t.chat_of(BEN))] {
        assert!(
            !chat.iter().any(|line| line.contains("for carol only")),
            "{user} got the held message: {chat:?}"
        );
    }
    t.bridge.node.shutdown().await.unwrap();
}

/// The cap of held messages per sender: the one after it is refused at submit, and alice gets a
/// DM3 reply to it saying why; the held ones still arrive when the link is opened.
async fn a_sender_over_the_cap_is_refused_with_a_dm3_reply(db: &TestDb) {
    let t = bridged(db).await;
    let alice = &t.world.alice;
    let alias = alias();
    t.api.set_username(ANN, Some(USERNAME));
    let route = alice.route(&t.directory, &alias).await;
    for i in 0..CAP {
        let message = alice.sign(alice.builder(&alias).text(&format!("held {i}"), None));
        alice.try_submit(&route, &message).await.unwrap();
    }
    let over = alice.sign(alice.builder(&alias).text("one too many", None));
    let refused = alice.try_submit(&route, &over).await.unwrap_err();
    assert!(refused.contains(&format!("holds {CAP} of your messages")), "{refused}");
    let got = t.alice_got(&alias, 2).await;
    let report =
        got.iter().find(|r| r.message.reference_message_hash() == Some(over.hash().to_string().as_str()));
    let text = report.expect("a reply to the refused message").message.text().unwrap();
    assert!(text.contains(&format!("holds {CAP} of your messages")), "{text}");

    let link = got.iter().find_map(|r| r.message.text().filter(|text| text.contains("?start=")));
    t.api.user_text(ANN, &format!("/start {}", TgBridged::start_payload(link.unwrap())));
    let chat = t.wait_in_chat(ANN, &format!("{ALICE}: held {}", CAP - 1)).await;
    assert!(!chat.iter().any(|line| line.contains("one too many")), "{chat:?}");
    t.bridge.node.shutdown().await.unwrap();
}

/// Nobody opens the link: when the message's TTL ends, alice is told it was not delivered, and
/// nothing reached Telegram.
async fn a_message_never_released_is_reported_when_its_ttl_ends(db: &TestDb) {
    const TTL_SECS: u64 = 4;
    let t = bridged_with(Some(db.url.clone()), |config| config.relay.message_ttl_secs = TTL_SECS).await;
    let alice = &t.world.alice;
    let alias = alias();
    let sent_at = Instant::now();
    let hash = alice.send(&t.directory, alice.builder(&alias).text("anyone?", None)).await;
    let got = t.alice_got(&alias, 2).await;
    // Held, not given up on: the queue fails a job when its next retry would fall past its TTL.
    assert!(sent_at.elapsed() >= Duration::from_secs(1), "reported at once, not held");
    let key = format!("{alias}:{hash}");
    let job = t.bridge.node.store().get_job(QueueName::Inbox, &key).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.attempts > 1, "retried while held: {job:?}");
    let expired = &got[1];
    assert_eq!(expired.message.reference_message_hash(), Some(hash.to_string().as_str()));
    let text = expired.message.text().unwrap();
    assert!(text.contains("expired") && text.contains("@carol_x"), "{text}");
    assert!(t.chat_of(ANN).is_empty() && t.chat_of(BEN).is_empty());
    t.bridge.node.shutdown().await.unwrap();
}
