//! Issue #19, item 4: a DM3 user may write first, but not as a spam cannon. End to end, as in
//! `tests/bridge_telegram.rs`: the bridge with `[telegram]` against the fake Bot API
//! (`connectors/telegram/tests/support/bot_api.rs`), a chain with our ENS contracts and a second
//! relay node as the DM3 users' delivery service (`tests/support/dm3_world.rs`).
//!
//! - `/block` in the bot chat, answered there: the relay refuses the sender's next envelope at
//!   submit (400, -32012), a message queued before the block is dropped, not delivered and not
//!   reported, a
//!   replay of the refused envelope is refused again, `/unblock` lets the sender through again,
//!   and the old `/block` served again after the `/unblock` changes nothing; on SQLite and
//!   PostgreSQL (the block is a row);
//! - the rate limits per DM3 sender (over all bridged users) and per bridged user (over all
//!   senders) refuse with 429 / -32010 and let the same envelope through after the window, and
//!   envelopes forged in a sender's name spend none of its budget;
//! - a bridged user's list of blocks is bounded (store level, both backends).
//!
//! The limiter's memory under a flood of distinct senders is asserted beside it
//! (`engine::inbox_limits`' unit tests: 100 000 senders, the table never above its bound).
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

use std::time::Duration;

use bridged_telegram::{ANN, BEN, bridged, bridged_with, tg_name, wait_for};
use dm3::ens::EnsName;
use dm3_bridge::store::{Blocked, JobState, MAX_BLOCKS_PER_IDENTITY, QueueName, Store};
use dm3_world::{ALICE, DS_B, Dm3User};
use support::TestDb;
use support::bridge;
use telegram::bot_api::visible_text;

on_both_backends!(block_in_telegram_refuses_the_sender_at_submit_and_unblock_lets_them_through);

fn name(text: &str) -> EnsName {
    EnsName::parse(text).unwrap()
}

/// Waits until the bridge's store says whether `identity` blocks `sender` as `expected`.
async fn block_stored(store: &Store, identity: &EnsName, sender: &EnsName, expected: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.is_blocked(identity, sender).await.unwrap() != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "the block of {sender} by {identity} is not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ANN writes to alice, then blocks her with `/block` (the current contact) while a message of
/// hers waits in the inbox (Telegram answered its send with 429, retry after 20 s). Her next
/// submit is refused with 400 / -32012, its replay too, and the waiting one never reaches ANN,
/// nor does alice get a failure report for it. `/unblock alice` lets her through again; the old
/// `/block`, served again by Telegram afterwards, does not block her again.
async fn block_in_telegram_refuses_the_sender_at_submit_and_unblock_lets_them_through(db: &TestDb) {
    let t = bridged(Some(db.url.clone())).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    let (ann_name, alice_name) = (name(&ann), name(ALICE));
    let store = t.bridge.node.store().clone();
    t.start(ANN).await;
    t.api.user_text(ANN, &format!("/to {ALICE}"));
    t.next_from_bot(ANN, 1).await;
    let route = alice.route(&t.directory, &ann).await;

    // Telegram refuses the first send of alice's message for 20 s: it waits in the inbox.
    t.api.rate_limit_every("sendMessage", 1, 20);
    let waiting = alice.sign(alice.builder(&ann).text("waiting before the block", None));
    alice.try_submit(&route, &waiting).await.expect("accepted before the block");
    let key = format!("{ann}:{}", waiting.hash());
    wait_for_async("the first send refused", || async {
        let job = store.get_job(QueueName::Inbox, &key).await.unwrap()?;
        // Its first attempt is over (not merely claimed): it waits for its retry.
        (job.state == JobState::Pending && job.last_error.is_some() && job.lease_until_ms.is_none())
            .then_some(())
    })
    .await;
    t.api.rate_limit_every("sendMessage", u32::MAX, 1);

    let (block, _) = t.api.user_text(ANN, "/block");
    let answer = t.next_from_bot(ANN, 2).await;
    assert!(answer.contains(&format!("{ALICE} is blocked")), "{answer}");
    block_stored(&store, &ann_name, &alice_name, true).await;

    let refused = alice.sign(alice.builder(&ann).text("after the block", None));
    let error = alice.try_submit(&route, &refused).await.unwrap_err();
    assert!(error.contains("400") && error.contains("-32012"), "{error}");
    assert!(error.contains("has blocked"), "{error}");
    let again = alice.try_submit(&route, &refused).await.unwrap_err();
    assert!(again.contains("-32012"), "a replay is refused too: {again}");

    // The waiting message's turn comes: dropped, neither sent nor failed.
    bridge::settled(&t.bridge, String::new).await;
    let job = store.get_job(QueueName::Inbox, &key).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);
    assert_eq!(t.api.sent_to(ANN).len(), 3, "nothing from alice reached ANN: {:?}", t.api.sent_to(ANN));

    t.api.user_text(ANN, &format!("/unblock {ALICE}"));
    let answer = t.next_from_bot(ANN, 3).await;
    assert!(answer.contains(&format!("{ALICE} is not blocked")), "{answer}");
    block_stored(&store, &ann_name, &alice_name, false).await;

    // The old /block, served again after the /unblock, changes nothing.
    t.api.serve_again(block);
    wait_for("the replay confirmed", || (t.api.pending_updates() == 0).then_some(())).await;
    assert!(!store.is_blocked(&ann_name, &alice_name).await.unwrap());

    let through = alice.sign(alice.builder(&ann).text("after the unblock", None));
    alice.try_submit(&route, &through).await.expect("unblocked");
    assert_eq!(t.next_from_bot(ANN, 4).await, format!("{ALICE}: after the unblock"));
    bridge::settled(&t.bridge, String::new).await;
    let texts: Vec<String> = t.api.sent_to(ANN).iter().map(|sent| visible_text(&sent.text)).collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    let from_ann = alice.wait_for(&t.world.ds_b, &t.directory, &ann, 0).await;
    assert!(from_ann.is_empty(), "alice was told nothing of the dropped message: {from_ann:#?}");
    t.bridge.node.shutdown().await.unwrap();
}

/// Polls the async `check` for at most a minute.
async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    check: impl Fn() -> F,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// alice may send 3 envelopes for bridged users, then one every 10 s; ANN may receive 3, then one
/// every 10 s. alice reaches ANN and BEN until her budget is spent (429 / -32010, "alice … sends"),
/// bob fills ANN's budget (429 / -32010, "… receives"), and after the window the refused
/// envelopes go through. Every accepted one arrives once. Envelopes forged in alice's name before
/// spend nothing of her budget. In memory, so SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_sender_and_per_bridged_user_refuse_with_32010_and_recover() {
    let t = bridged_with(None, |config| {
        // Slow enough that the submits of one burst, on a loaded machine, stay in one window.
        config.rate_limits.dm3_sender_per_minute = 6;
        config.rate_limits.dm3_sender_burst = 3;
        config.rate_limits.bridged_user_per_minute = 6;
        config.rate_limits.bridged_user_burst = 3;
    })
    .await;
    let bob = Dm3User::new("bob.test.eth", &[DS_B]);
    t.world.publish_user(&bob.name, bob.wallet.address(), &bob.profile).await;
    let alice = &t.world.alice;
    let (ann, ben) = (tg_name(ANN), tg_name(BEN));
    t.start(ANN).await;
    t.start(BEN).await;
    let (to_ann, to_ben) = (alice.route(&t.directory, &ann).await, alice.route(&t.directory, &ben).await);
    let bob_to_ann = bob.route(&t.directory, &ann).await;

    // Forged: bob writes alice's name in `from`. Refused for its signature before any budget is
    // looked at, so a forger cannot spend alice's budget (nor ANN's).
    for i in 0..5 {
        let forged = bob.sign(alice.builder(&ann).text(&format!("forged {i}"), None));
        let error = bob.try_submit(&to_ann, &forged).await.unwrap_err();
        assert!(error.contains("400") && error.contains("-32003"), "{error}");
    }

    let a1 = alice.sign(alice.builder(&ann).text("a1", None));
    let a2 = alice.sign(alice.builder(&ben).text("a2", None));
    let a3 = alice.sign(alice.builder(&ben).text("a3", None));
    let a4 = alice.sign(alice.builder(&ben).text("a4", None));
    alice.try_submit(&to_ann, &a1).await.unwrap();
    alice.try_submit(&to_ben, &a2).await.unwrap();
    alice.try_submit(&to_ben, &a3).await.unwrap();
    let error = alice.try_submit(&to_ben, &a4).await.unwrap_err();
    assert!(error.contains("429") && error.contains("-32010"), "{error}");
    assert!(error.contains(&format!("{ALICE} sends")), "the sender's budget: {error}");

    let b1 = bob.sign(bob.builder(&ann).text("b1", None));
    let b2 = bob.sign(bob.builder(&ann).text("b2", None));
    let b3 = bob.sign(bob.builder(&ann).text("b3", None));
    bob.try_submit(&bob_to_ann, &b1).await.unwrap();
    bob.try_submit(&bob_to_ann, &b2).await.unwrap();
    let error = bob.try_submit(&bob_to_ann, &b3).await.unwrap_err();
    assert!(error.contains("429") && error.contains("-32010"), "{error}");
    assert!(error.contains(&format!("{ann} receives")), "the bridged user's budget: {error}");

    // After the window (one envelope every 10 s), both refused envelopes go through.
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    alice.try_submit(&to_ben, &a4).await.expect("alice's budget refilled");
    bob.try_submit(&bob_to_ann, &b3).await.expect("ann's budget refilled");

    bridge::settled(&t.bridge, String::new).await;
    let at = |chat: i64| -> Vec<String> {
        t.api.sent_to(chat).iter().skip(1).map(|sent| visible_text(&sent.text)).collect()
    };
    // Conversations are delivered in parallel: alice's and bob's to ANN in either order.
    let mut ann_got = wait_for("ANN's four messages", || (at(ANN).len() >= 4).then(|| at(ANN))).await;
    ann_got.sort();
    let ben_got = wait_for("BEN's three messages", || (at(BEN).len() >= 3).then(|| at(BEN))).await;
    let bob_name = &bob.name;
    assert_eq!(
        ann_got,
        [
            format!("{ALICE}: a1"),
            format!("{bob_name}: b1"),
            format!("{bob_name}: b2"),
            format!("{bob_name}: b3")
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(ben_got, [format!("{ALICE}: a2"), format!("{ALICE}: a3"), format!("{ALICE}: a4")]);
    t.bridge.node.shutdown().await.unwrap();
}

/// A bridged user blocks at most `MAX_BLOCKS_PER_IDENTITY` senders; blocking again, and
/// unblocking, are idempotent; on both backends.
#[tokio::test]
async fn the_blocks_of_one_identity_are_bounded_and_idempotent() {
    for db in [TestDb::sqlite(), TestDb::postgres().await] {
        let store = db.open().await;
        let (ann, other) = (name("tg-1001.tg.bridge.test.eth"), name("tg-1002.tg.bridge.test.eth"));
        let alice = name(ALICE);
        assert_eq!(store.block_sender(&ann, &alice, 1).await.unwrap(), Blocked::New);
        assert_eq!(store.block_sender(&ann, &alice, 2).await.unwrap(), Blocked::Already);
        assert!(store.is_blocked(&ann, &alice).await.unwrap());
        assert!(!store.is_blocked(&other, &alice).await.unwrap(), "a block is per identity");
        for i in 1..MAX_BLOCKS_PER_IDENTITY {
            assert_eq!(store.block_sender(&ann, &name(&format!("s{i}.eth")), 3).await.unwrap(), Blocked::New);
        }
        assert_eq!(store.block_sender(&ann, &name("one-too-many.eth"), 4).await.unwrap(), Blocked::Full);
        assert!(!store.is_blocked(&ann, &name("one-too-many.eth")).await.unwrap());
        assert_eq!(store.block_sender(&other, &name("one-too-many.eth"), 4).await.unwrap(), Blocked::New);
        assert!(store.unblock_sender(&ann, &alice).await.unwrap());
        assert!(!store.unblock_sender(&ann, &alice).await.unwrap(), "unblocking twice changes nothing");
        assert_eq!(store.block_sender(&ann, &name("one-too-many.eth"), 5).await.unwrap(), Blocked::New);
    }
}
