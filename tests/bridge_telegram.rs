//! DM3 ⇄ Telegram end to end, through the whole engine: the bridge node (its engine, its
//! CCIP-read gateway, its Telegram connector polling the fake Bot API of the connector's own
//! tests), a chain (anvil) with our ENS contracts, and a second relay node that is the DM3
//! users' delivery service (`tests/support/dm3_world.rs`).
//!
//! Only Telegram's servers are faked (`connectors/telegram/tests/support/bot_api.rs`, the real
//! Bot API JSON, which teloxide accepts unchanged). The Telegram users are the fake's; alice is
//! a DM3 user whose client is the SDK, carol one whose client is the reference npm libraries
//! (`interop/ds-client.js`). Every name resolves through the chain: the bridge verifies the DM3
//! users against their on-chain profiles, and node B and the npm client verify the Telegram
//! users' virtual identities, published by the bridge's gateway through the OffchainResolver.
//!
//! Every scenario runs on SQLite and on PostgreSQL (the bridge's database).
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

use bridged_telegram::{ANN, BEN, TgBridged, bridged, bridged_with, tg_name, wait_for};
use dm3::bridge_payload::{self, BridgePayload};
use dm3::message::{Attachment, MessageType};
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::identities::{IdentityError, IdentityRef, NetworkUserId};
use dm3_bridge::store::{JobState, QueueName};
use dm3_bridge_connector::{NetworkId, NetworkMessageId};
use dm3_bridge_telegram::RateLimits;
use dm3_bridge_telegram::deep_link;
use dm3_world::{ALICE, Received};
use serde_json::{Value, json};
use support::TestDb;
use support::bridge::{self, LONG_WAIT};
use support::js::JsProcess;
use telegram::bot_api::{Failure, SentFile, visible_text};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::postgres().await;
                    super::$name(Some(db.url.clone())).await;
                }
            )*
        }
    };
}

on_both_backends!(
    linking_and_a_round_trip_with_the_reference_client,
    replies_edits_deletes_and_files_reach_both_ends,
    a_429_storm_delivers_a_hundred_queued_messages_once_each_in_order,
    a_blocked_bot_is_reported_to_the_dm3_sender,
    an_outage_is_retried_until_the_message_expires_then_reported,
    telegram_reactions_reach_the_dm3_sender_and_are_taken_back,
    a_flood_of_commands_from_one_user_holds_up_no_one_else,
    a_replayed_to_and_an_unreadable_update_change_nothing,
    links_and_sender_names_cannot_be_forged_across_the_bridge,
);

/// Telegram users of the scenarios; only the first two may link.
const STRANGER: i64 = 666;
/// A DM3 user whose client is the reference npm libraries.
const CAROL: &str = "carol.test.eth";

impl TgBridged {
    /// `user` sends `/to <name>`; the bot confirms.
    async fn write_to(&self, user: i64, name: &str) {
        let before = self.api.sent_to(user).len();
        self.api.user_text(user, &format!("/to {name}"));
        let answer = self.next_from_bot(user, before).await;
        assert_eq!(
            answer,
            format!(
                "You are now writing to {name}. What you send here goes to them. To answer someone else, reply \
                 to their message or use /to again."
            )
        );
    }

    /// The inbox job of the DM3 message `hash` for `receiver`.
    async fn inbox_job(&self, receiver: &str, hash: &str) -> dm3_bridge::store::JobRecord {
        let key = format!("{receiver}:{hash}");
        self.bridge.node.store().get_job(QueueName::Inbox, &key).await.unwrap().unwrap()
    }

    /// Waits until the bridge's message map holds Telegram message `message` of `chat`: the bot
    /// shows a relayed message a moment before the bridge records which DM3 message it was, and
    /// a reaction to it within that moment would find no DM3 message to react to.
    async fn wait_until_mapped(&self, chat: i64, message: i32) {
        let network = NetworkId::new("telegram").unwrap();
        let id = NetworkMessageId::new(format!("{chat}:{message}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.bridge.node.store().message_by_network_id(&network, &id).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "{id} was not mapped within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.bridge.node.shutdown().await.unwrap();
    }
}

async fn linking_and_a_round_trip_with_the_reference_client(database: Option<DatabaseUrl>) {
    let started = Instant::now();
    let t = bridged(database).await;
    let vault = &t.bridge.node.names().vault;
    let telegram_user = |id: i64| {
        IdentityRef::User(NetworkUserId::parse("telegram".parse().unwrap(), &id.to_string()).unwrap())
    };

    // Outside the allow-list: told so, with the id to give the operator; no identity, nothing queued.
    t.api.user_text(STRANGER, "/start");
    t.api.user_text(STRANGER, "hello?");
    for index in 0..2 {
        let refusal = t.next_from_bot(STRANGER, index).await;
        assert!(refusal.contains("not open to your Telegram account (id 666)"), "{refusal}");
    }
    assert!(matches!(vault.get(&telegram_user(STRANGER)).await, Err(IdentityError::NotFound(_))));
    assert_eq!(bridge::jobs_in(&t.bridge, QueueName::Outbox).await, 0);

    // /start: a DM3 name under the parent, published through the chain, and a deep link to it.
    let welcome = t.start(ANN).await;
    let link = format!("https://t.me/dm3_test_bot?start={}", deep_link::encode(&tg_name(ANN)).unwrap());
    assert!(welcome.contains(&link), "{welcome}");
    let record = vault.get(&telegram_user(ANN)).await.unwrap();
    assert_eq!(record.name.as_str(), tg_name(ANN));
    let published = t.directory.user_profile(&tg_name(ANN).parse().unwrap()).await.unwrap();
    assert!(published.is_some(), "{} does not resolve through the chain", tg_name(ANN));
    // A second /start finds the same identity.
    t.start(ANN).await;
    assert_eq!(vault.list(1, 10).await.unwrap().total, 1);

    // A deep link to alice: BEN is linked and writes to her at once.
    t.api.user_text(BEN, &format!("/start {}", deep_link::encode(ALICE).unwrap()));
    assert!(t.next_from_bot(BEN, 0).await.contains(&tg_name(BEN)));
    assert!(t.next_from_bot(BEN, 1).await.starts_with(&format!("You are now writing to {ALICE}.")));
    t.api.user_text(BEN, "/who");
    assert_eq!(t.next_from_bot(BEN, 2).await, format!("You are writing to {ALICE}."));
    t.api.user_text(BEN, "hello alice, from **telegram**");
    let received = t.alice_got(&tg_name(BEN), 1).await;
    assert_eq!(received[0].message.text(), Some("hello alice, from **telegram**"));
    assert_eq!(received[0].message.kind(), MessageType::New);

    // carol's client is the reference libraries: her profile on chain, her session at node B.
    let mut js = JsProcess::spawn("ds-client.js").await;
    let (carol, carol_token) = t.world.npm_user(&mut js, CAROL).await;

    // Telegram → DM3: ANN writes to carol; her libraries fetch, decrypt and verify it.
    t.write_to(ANN, CAROL).await;
    let (_, ann_message) = t.api.user_text(ANN, "hi carol, from telegram");
    let ann_profile = t.directory.user_profile(&tg_name(ANN).parse().unwrap()).await.unwrap().unwrap();
    let ann_keys = ann_profile.profile.profile();
    let incoming = json!({
        "url": t.world.ds_b.base,
        "ensName": CAROL,
        "token": carol_token,
        "encryptionKeyPair": carol["keys"]["encryption"],
        "dsPublicSigningKey": t.world.ds_b.signing_public_key(),
        "senderSigningKeys": {tg_name(ANN): ann_keys.public_signing_key()},
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let fetched = loop {
        let answer = js.call("incoming", incoming.clone()).await;
        assert_eq!(answer["status"], 200, "{answer}");
        if !answer["envelopes"].as_array().unwrap().is_empty() {
            break answer["envelopes"][0].clone();
        }
        assert!(Instant::now() < deadline, "carol got nothing from {} within 60 s", tg_name(ANN));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fetched["text"], "hi carol, from telegram");
    assert_eq!(fetched["from"], tg_name(ANN).as_str());
    assert_eq!(fetched["type"], "NEW");
    assert_eq!(fetched["postmarkValid"], true, "{fetched}");
    assert_eq!(fetched["messageSignatureValid"], true, "{fetched}");

    // DM3 → Telegram: carol's libraries answer with a reply, sealed for ANN's identity and
    // submitted to the bridge, its delivery service; ANN sees it as a reply to their message.
    let submit = |text: &str, reply_to: Value| {
        json!({
            "url": t.bridge.base,
            "from": {"ensName": CAROL, "signingPrivateKey": carol["keys"]["signing"]["privateKey"]},
            "to": {"ensName": tg_name(ANN), "publicEncryptionKey": ann_keys.public_encryption_key()},
            "dsPublicEncryptionKey": t.bridge.encryption_public_key(),
            "text": text,
            "replyTo": reply_to,
        })
    };
    let bot_messages = t.api.sent_to(ANN).len();
    let answer =
        js.call("submit", submit("hi ann, from the npm client", fetched["messageHash"].clone())).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let answer = js.call("submit", submit("and something new", Value::Null)).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let relayed = wait_for("carol's two messages in ANN's chat", || {
        let sent = t.api.sent_to(ANN);
        (sent.len() >= bot_messages + 2).then(|| sent[bot_messages..].to_vec())
    })
    .await;
    assert_eq!(visible_text(&relayed[0].text), format!("{CAROL}: hi ann, from the npm client"));
    assert_eq!(relayed[0].reply_to, Some(ann_message));
    assert_eq!(visible_text(&relayed[1].text), format!("{CAROL}: and something new"));
    assert_eq!(relayed[1].reply_to, None);
    assert_eq!(relayed[0].parse_mode.as_deref(), Some("HTML"));

    // ANN reacts 👍 to carol's second message; her libraries fetch a REACTION to it, signed by
    // ANN's identity.
    let carol_message = answer["messageHash"].clone();
    t.wait_until_mapped(ANN, relayed[1].message_id).await;
    t.api.user_reaction(ANN, relayed[1].message_id, &["👍"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let reaction = loop {
        let answer = js.call("incoming", incoming.clone()).await;
        assert_eq!(answer["status"], 200, "{answer}");
        let envelopes = answer["envelopes"].as_array().unwrap();
        if let Some(reaction) = envelopes.iter().find(|e| e["type"] == "REACTION") {
            break reaction.clone();
        }
        assert!(Instant::now() < deadline, "carol got no reaction from {} within 60 s", tg_name(ANN));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reaction["text"], "👍");
    assert_eq!(reaction["referenceMessageHash"], carol_message, "{reaction}");
    assert_eq!(reaction["from"], tg_name(ANN).as_str());
    assert_eq!(reaction["messageSignatureValid"], true, "{reaction}");

    // A name whose source is down (a CCIP-read gateway that does not answer) is answered
    // after a few tries, and does not hold up the updates after it.
    t.world.ens.use_offchain_resolver("offchain.test.eth").await.unwrap();
    t.world.ens.set_gateway_url("http://127.0.0.1:1/{sender}/{data}.json").await.unwrap();
    let ann_before = t.api.sent_to(ANN).len();
    let ben_before = t.api.sent_to(BEN).len();
    t.api.user_text(ANN, "/to dave.offchain.test.eth");
    t.api.user_text(BEN, "/who");
    let answer = t.next_from_bot(ANN, ann_before).await;
    assert!(answer.contains("could not look up dave.offchain.test.eth right now"), "{answer}");
    assert_eq!(t.next_from_bot(BEN, ben_before).await, format!("You are writing to {ALICE}."));
    t.api.user_text(ANN, "/who");
    assert_eq!(t.next_from_bot(ANN, ann_before + 1).await, format!("You are writing to {CAROL}."));
    t.world.point_parent_at(&t.bridge).await;

    bridge::settled(&t.bridge, String::new).await;
    t.stop().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

async fn replies_edits_deletes_and_files_reach_both_ends(database: Option<DatabaseUrl>) {
    let started = Instant::now();
    let t = bridged(database).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(BEN).await;
    t.start(ANN).await;
    t.write_to(ANN, ALICE).await;

    // ANN writes; alice answers with a message of her own and a reply.
    let (_, first) = t.api.user_text(ANN, "first, from telegram");
    let from_ann = t.alice_got(&ann, 1).await;
    let first_hash = from_ann[0].message.hash();
    let bot_messages = t.api.sent_to(ANN).len();
    let alice_new = alice.send(&t.directory, alice.builder(&ann).text("from *alice*", None)).await;
    let alice_reply =
        alice.send(&t.directory, alice.builder(&ann).reply("answering you", &first_hash, None)).await;
    let relayed = wait_for("alice's two messages", || {
        let sent = t.api.sent_to(ANN);
        (sent.len() >= bot_messages + 2).then(|| sent[bot_messages..].to_vec())
    })
    .await;
    assert_eq!(visible_text(&relayed[0].text), format!("{ALICE}: from alice"));
    assert_eq!(relayed[0].text, format!("<b>{ALICE}</b>: from <i>alice</i>"), "markdown rendered");
    assert_eq!(relayed[0].reply_to, None);
    assert_eq!(visible_text(&relayed[1].text), format!("{ALICE}: answering you"));
    assert_eq!(relayed[1].reply_to, Some(first), "a DM3 reply is a Telegram reply");
    let (alice_message, alice_reply_message) = (relayed[0].message_id, relayed[1].message_id);

    // Two messages alike within one second (Telegram dates messages in whole seconds) are two
    // DM3 messages, not one message sent twice.
    let (_, ok_first) = t.api.user_text(ANN, "ok");
    let (_, ok_second) = t.api.user_text(ANN, "ok");
    let from_ann = t.alice_got(&ann, 3).await;
    let oks: Vec<&Received> = from_ann.iter().filter(|r| r.message.text() == Some("ok")).collect();
    assert_eq!(oks.len(), 2, "{oks:#?}");
    assert_ne!(oks[0].message.hash(), oks[1].message.hash());
    let network = NetworkId::new("telegram").unwrap();
    for id in [ok_first, ok_second] {
        let id = NetworkMessageId::new(format!("{ANN}:{id}")).unwrap();
        let mapped = t.bridge.node.store().message_by_network_id(&network, &id).await.unwrap();
        assert!(mapped.is_some(), "{id} became no DM3 message");
    }

    // Files from Telegram: a document and a photo reach alice with their bytes.
    let pdf = b"%PDF-1.4 a small document".to_vec();
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"a small photo"].concat();
    t.api.user_document(ANN, "notes.pdf", "application/pdf", pdf.clone(), pdf.len() as u64);
    t.api.user_photo(ANN, jpeg.clone(), "a photo");
    let from_ann = t.alice_got(&ann, 5).await;
    let file_of = |received: &Received| {
        // Beside the file: the original Telegram call as a bridge payload (docs/bridge-payload.md).
        let payload = bridge_payload::find(&received.message, bridge_payload::Network::Telegram).unwrap();
        assert!(matches!(payload, Some(BridgePayload::Telegram(_))), "{payload:?}");
        let attachments = received.message.attachments().expect("the message has attachments");
        let files: Vec<&Value> = attachments
            .iter()
            .filter(|a| !a["data"].as_str().is_some_and(bridge_payload::is_bridge_payload))
            .collect();
        assert_eq!(files.len(), 1, "{attachments:?}");
        let attachment = Attachment::from_value(files[0]).unwrap();
        let data = attachment.decode_data(1 << 20).unwrap();
        (attachment.name().map(str::to_owned), data.mime, data.bytes)
    };
    let document = the(&from_ann, "the document", |r| r.message.text() == Some("see attached"));
    assert_eq!(file_of(document), (Some("notes.pdf".to_owned()), "application/pdf".to_owned(), pdf));
    let photo = the(&from_ann, "the photo", |r| r.message.text() == Some("a photo"));
    assert_eq!(file_of(photo), (Some("photo.jpg".to_owned()), "image/jpeg".to_owned(), jpeg));

    // Files from DM3: an image goes as a photo, anything else as a document, bytes intact.
    let png = [&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..], b"pixels"].concat();
    let csv = b"a,b\n1,2\n".to_vec();
    let bot_messages = t.api.sent_to(ANN).len();
    for attachment in
        [Attachment::inline("pic.png", "image/png", &png), Attachment::inline("table.csv", "text/csv", &csv)]
    {
        alice.send(&t.directory, alice.builder(&ann).text("a file", Some(vec![attachment]))).await;
    }
    let files = wait_for("alice's two files", || {
        let sent = t.api.sent_to(ANN);
        (sent.len() >= bot_messages + 2).then(|| sent[bot_messages..].to_vec())
    })
    .await;
    assert_eq!(files[0].method, "sendPhoto");
    assert_eq!(files[0].file, Some(SentFile::Upload { name: "pic.png".to_owned(), bytes: png }));
    assert_eq!(visible_text(&files[0].text), format!("{ALICE}: a file"));
    assert_eq!(files[1].method, "sendDocument");
    assert_eq!(files[1].file, Some(SentFile::Upload { name: "table.csv".to_owned(), bytes: csv }));

    // Reply routing: ANN now writes to BEN, but a reply to alice's message goes to alice, as a
    // DM3 reply to it; the current contact stays BEN.
    t.write_to(ANN, &tg_name(BEN)).await;
    let bot_messages = t.api.sent_to(ANN).len();
    let (_, ann_reply) = t.api.user_reply(ANN, "replying to alice", alice_message);
    let from_ann = t.alice_got(&ann, 6).await;
    let reply = the(&from_ann, "ANN's reply", |r| r.message.kind() == MessageType::Reply).clone();
    assert_eq!(reply.message.text(), Some("replying to alice"));
    assert_eq!(reply.message.reference_message_hash(), Some(alice_new.to_string().as_str()));
    t.api.user_text(ANN, "/who");
    assert_eq!(t.next_from_bot(ANN, bot_messages).await, format!("You are writing to {}.", tg_name(BEN)));
    let ben_chat = t.api.sent_to(BEN);
    assert!(
        ben_chat.iter().all(|s| !visible_text(&s.text).contains("replying to alice")),
        "the reply went to BEN: {ben_chat:?}"
    );
    // A plain message goes to the current contact, BEN, who sees it from ANN's DM3 name.
    let ben_before = t.api.sent_to(BEN).len();
    t.api.user_text(ANN, "hello ben");
    assert_eq!(t.next_from_bot(BEN, ben_before).await, format!("{ann}: hello ben"));

    // Edits both ways: ANN's edit reaches alice as an EDIT of the original; alice's edit
    // changes the bot's message in place.
    t.api.user_edit(ANN, first, "first, from telegram (edited)");
    t.api.user_edit(ANN, ann_reply, "replying to alice (edited)");
    let from_ann = t.alice_got(&ann, 8).await;
    let edits: Vec<(Option<&str>, Option<&str>)> = from_ann
        .iter()
        .filter(|r| r.message.kind() == MessageType::Edit)
        .map(|r| (r.message.text(), r.message.reference_message_hash()))
        .collect();
    assert_eq!(edits.len(), 2, "{edits:?}");
    let first_hash = first_hash.to_string();
    let reply_hash = reply.message.hash().to_string();
    assert!(edits.contains(&(Some("first, from telegram (edited)"), Some(first_hash.as_str()))), "{edits:?}");
    assert!(edits.contains(&(Some("replying to alice (edited)"), Some(reply_hash.as_str()))), "{edits:?}");
    alice.send(&t.directory, alice.builder(&ann).edit("from *alice* (edited)", &alice_new, None)).await;
    let edit = wait_for("alice's edit", || t.api.edits().first().cloned()).await;
    assert_eq!((edit.0, edit.1), (ANN, alice_message));
    assert_eq!(visible_text(&edit.2), format!("{ALICE}: from alice (edited)"));

    // alice deletes her reply: the bot deletes the message it relayed, and only that one.
    alice.send(&t.directory, alice.builder(&ann).delete_request(&alice_reply)).await;
    let deleted = wait_for("alice's delete", || t.api.deleted().first().copied()).await;
    assert_eq!(deleted, (ANN, alice_reply_message));

    bridge::settled(&t.bridge, String::new).await;
    assert_eq!(t.api.deleted().len(), 1);
    assert_eq!(t.api.edits().len(), 1);
    t.stop().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

async fn a_429_storm_delivers_a_hundred_queued_messages_once_each_in_order(database: Option<DatabaseUrl>) {
    const COUNT: usize = 100;
    /// Every this many `sendMessage` calls, Telegram answers 429 …
    const EVERY: u32 = 7;
    /// … with this `retry_after`.
    const RETRY_AFTER: u32 = 1;
    let started = Instant::now();
    let t = bridged(database).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    let bot_messages = t.api.sent_to(ANN).len();

    // The storm starts before the messages arrive: Telegram answers every send with 429 until
    // all hundred wait in the bridge's durable inbox, then every EVERY-th.
    t.api.rate_limit_every("sendMessage", 1, RETRY_AFTER);
    let storm = Instant::now();
    let texts: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let messages = texts.iter().map(|text| alice.builder(&ann).text(text, None)).collect();
    let hashes = alice.send_all(&t.directory, messages).await;
    eprintln!("alice sent {COUNT} in {:.1} s", storm.elapsed().as_secs_f64());
    let counts = t.bridge.node.store().count_jobs().await.unwrap();
    let pending: u64 = counts
        .iter()
        .filter(|c| c.queue == QueueName::Inbox && c.state == JobState::Pending)
        .map(|c| c.count)
        .sum();
    assert_eq!(pending, COUNT as u64, "all queued, none delivered: {counts:?}");
    assert_eq!(t.api.sent_to(ANN).len(), bot_messages);
    let second_phase = Instant::now();
    t.api.rate_limit_every("sendMessage", EVERY, RETRY_AFTER);

    let deadline = Instant::now() + LONG_WAIT;
    while t.api.sent_to(ANN).len() < bot_messages + COUNT {
        assert!(
            Instant::now() < deadline,
            "{} of {COUNT} delivered within {LONG_WAIT:?}",
            t.api.sent_to(ANN).len() - bot_messages
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("all delivered {:.1} s after the first send", storm.elapsed().as_secs_f64());
    bridge::settled(&t.bridge, String::new).await;

    // All, once each, in order.
    let delivered: Vec<String> =
        t.api.sent_to(ANN)[bot_messages..].iter().map(|s| visible_text(&s.text)).collect();
    let expected: Vec<String> = texts.iter().map(|text| format!("{ALICE}: {text}")).collect();
    assert_eq!(delivered, expected);

    // Telegram did say 429, and every time the bridge waited retry_after before it sent to
    // that chat again.
    let calls: Vec<_> =
        t.api.log().into_iter().filter(|c| c.method == "sendmessage" && c.chat == Some(ANN)).collect();
    let limited: Vec<usize> = (0..calls.len()).filter(|&i| calls[i].status == 429).collect();
    let limited_later = limited.iter().filter(|&&i| calls[i].at >= second_phase).count();
    assert!(
        limited_later >= COUNT / EVERY as usize,
        "only {limited_later} answers were 429 after the first phase"
    );
    for &i in &limited {
        let retry_after = Duration::from_secs(u64::from(calls[i].retry_after.unwrap()));
        let next = calls.get(i + 1).expect("a 429 is followed by a retry");
        let waited = next.at.duration_since(calls[i].at);
        assert!(
            waited >= retry_after,
            "call {} came {waited:?} after a 429 with retry_after {retry_after:?}",
            i + 1
        );
    }
    // The retries were the engine's, from its durable inbox: each message Telegram refused
    // took another attempt of its job.
    let mut retried = 0;
    for hash in &hashes {
        let job = t.inbox_job(&ann, &hash.to_string()).await;
        assert_eq!(job.state, JobState::Done, "{job:?}");
        retried += usize::from(job.attempts > 1);
    }
    assert!(retried >= limited_later, "{retried} jobs were retried for {limited_later} answers 429");
    eprintln!("{} answers were 429; done in {:.1} s", limited.len(), started.elapsed().as_secs_f64());
    t.stop().await;
}

async fn a_blocked_bot_is_reported_to_the_dm3_sender(database: Option<DatabaseUrl>) {
    let t = bridged(database).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    let bot_messages = t.api.sent_to(ANN).len();

    // ANN blocked the bot: Telegram answers 403 to the relay of alice's message.
    t.api.fail_next("sendMessage", Failure::blocked());
    let hash = alice.send(&t.directory, alice.builder(&ann).text("are you there?", None)).await;
    let reports = t.alice_got(&ann, 1).await;
    let report = &reports[0];
    assert_eq!(report.message.kind(), MessageType::Reply);
    assert_eq!(report.message.reference_message_hash(), Some(hash.to_string().as_str()));
    let text = report.message.text().unwrap();
    assert!(text.contains("could not deliver your message"), "{text}");
    assert!(text.contains("blocked the bridge's bot"), "{text}");

    let job = t.inbox_job(&ann, &hash.to_string()).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 1, "a 403 is not retried");
    // Reported; why it failed is kept, and the envelope too, for an admin's retry (issue #20;
    // pruning bounds it). (`tests/bridge_bounds.rs` looks at what the relay queued.)
    assert!(job.payload.contains(r#""kind":"envelope""#), "{job:?}");
    assert!(job.last_error.as_deref().unwrap_or_default().contains("blocked"), "{job:?}");
    assert_eq!(t.api.sent_to(ANN).len(), bot_messages, "nothing reached the chat");
    // Once unblocked, the next message arrives.
    alice.send(&t.directory, alice.builder(&ann).text("now?", None)).await;
    assert_eq!(t.next_from_bot(ANN, bot_messages).await, format!("{ALICE}: now?"));
    t.stop().await;
}

/// Telegram's servers down (502): alice's message is retried until its TTL has passed, then
/// she is told from the Telegram user's identity; once Telegram is back, the next one arrives.
async fn an_outage_is_retried_until_the_message_expires_then_reported(database: Option<DatabaseUrl>) {
    const TTL_SECS: u64 = 4;
    let t = bridged_with(database, |config| config.relay.message_ttl_secs = TTL_SECS).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    let bot_messages = t.api.sent_to(ANN).len();

    t.api.fail_after("sendMessage", 0, Failure::bad_gateway());
    let sent_at = Instant::now();
    let hash = alice.send(&t.directory, alice.builder(&ann).text("anyone there?", None)).await;
    let reports = t.alice_got(&ann, 1).await;
    let waited = sent_at.elapsed();
    let report = &reports[0];
    assert_eq!(report.message.kind(), MessageType::Reply);
    assert_eq!(report.message.reference_message_hash(), Some(hash.to_string().as_str()));
    let text = report.message.text().unwrap();
    assert!(text.contains("could not deliver your message") && text.contains("expired"), "{text}");
    assert!(waited >= Duration::from_secs(TTL_SECS), "reported after {waited:?}, before the TTL");

    let job = t.inbox_job(&ann, &hash.to_string()).await;
    assert_eq!(job.state, JobState::Failed);
    // Retried, not given up on: the job failed only when its retry found the TTL passed.
    let last_error = job.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("expired while delivery was being retried") && last_error.contains("Bad Gateway"),
        "{last_error}"
    );
    let tries = t.api.log().iter().filter(|call| call.method == "sendmessage" && call.status == 502).count();
    assert_eq!(tries as u32, job.attempts, "each attempt asked Telegram once");
    assert_eq!(t.api.sent_to(ANN).len(), bot_messages, "nothing reached the chat");

    t.api.end_outage();
    alice.send(&t.directory, alice.builder(&ann).text("back?", None)).await;
    assert_eq!(t.next_from_bot(ANN, bot_messages).await, format!("{ALICE}: back?"));
    t.stop().await;
}

/// ANN reacts to alice's relayed message: alice gets a REACTION to her message's hash; taking it
/// back is a DELETE_REQUEST of that REACTION, and reacting again a new REACTION. A reaction to a
/// message the bridge never relayed is dropped, and what follows still flows; one to the
/// bridge's own notice is answered as undeliverable.
async fn telegram_reactions_reach_the_dm3_sender_and_are_taken_back(database: Option<DatabaseUrl>) {
    let started = Instant::now();
    let t = bridged(database).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    t.write_to(ANN, ALICE).await;
    let bot_messages = t.api.sent_to(ANN).len();
    let hello = alice.send(&t.directory, alice.builder(&ann).text("react to this", None)).await;
    let relayed =
        wait_for("alice's message in ANN's chat", || t.api.sent_to(ANN).get(bot_messages).cloned()).await;
    assert_eq!(visible_text(&relayed.text), format!("{ALICE}: react to this"));
    t.wait_until_mapped(ANN, relayed.message_id).await;

    // 🔥 on ANN's own /start, which went to no one: nothing to react to on the DM3 side.
    t.api.user_reaction(ANN, 1, &["🔥"]);
    t.api.user_reaction(ANN, relayed.message_id, &["👍"]);
    let reactions_of = |received: &[Received]| -> Vec<(String, String, String)> {
        received
            .iter()
            .filter(|r| r.message.kind() == MessageType::Reaction)
            .map(|r| {
                let text = r.message.text().unwrap_or_default().to_owned();
                let target = r.message.reference_message_hash().unwrap_or_default().to_owned();
                (text, target, r.message.hash().to_string())
            })
            .collect()
    };
    let from_ann = t.alice_got(&ann, 1).await;
    let reactions = reactions_of(&from_ann);
    assert_eq!(reactions.len(), 1, "{from_ann:#?}");
    let (emoji, target, first_reaction) = reactions[0].clone();
    assert_eq!((emoji.as_str(), target.as_str()), ("👍", hello.to_string().as_str()));

    // Taken back, then given again, then a message: all three reach alice.
    t.api.user_reaction(ANN, relayed.message_id, &[]);
    t.api.user_reaction(ANN, relayed.message_id, &["👍"]);
    t.api.user_text(ANN, "after the reactions");
    let from_ann = t.alice_got(&ann, 4).await;
    // In the order given (a reaction is dated by its update, a message by its own id, so only
    // the reactions' order among themselves is defined within a second).
    let changes: Vec<&Received> = from_ann.iter().filter(|r| r.message.kind() != MessageType::New).collect();
    let kinds: Vec<MessageType> = changes.iter().map(|r| r.message.kind()).collect();
    assert_eq!(
        kinds,
        [MessageType::Reaction, MessageType::DeleteRequest, MessageType::Reaction],
        "{from_ann:#?}"
    );
    assert_eq!(
        changes[1].message.reference_message_hash(),
        Some(first_reaction.as_str()),
        "the 👍 taken back"
    );
    let reactions = reactions_of(&from_ann);
    assert_eq!(reactions[1].0, "👍");
    assert_eq!(reactions[1].1, hello.to_string());
    assert_ne!(reactions[1].2, first_reaction, "given again is a new reaction, not a replay");
    the(&from_ann, "the message after the reactions", |r| r.message.text() == Some("after the reactions"));

    bridge::settled(&t.bridge, String::new).await;
    assert_eq!(t.alice_got(&ann, 4).await.len(), 4, "the 🔥 on /start reached no one");
    assert_eq!(t.api.pending_updates(), 0, "every update was confirmed");

    // The bridge's own notice belongs to alice's conversation but is no DM3 message: a reaction
    // to it cannot reach her, and ANN is told so (the engine's rule for unknown targets).
    let bot_messages = t.api.sent_to(ANN).len();
    t.api.user_location(ANN);
    let notice =
        wait_for("the notice about the location", || t.api.sent_to(ANN).get(bot_messages).cloned()).await;
    assert!(visible_text(&notice.text).contains("locations cannot be sent"), "{}", notice.text);
    t.api.user_reaction(ANN, notice.message_id, &["👍"]);
    let answer = t.next_from_bot(ANN, bot_messages + 1).await;
    assert!(answer.contains("could not deliver") && answer.contains("reaction"), "{answer}");
    assert_eq!(t.alice_got(&ann, 4).await.len(), 4, "the 👍 on the notice reached no one");
    t.stop().await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Issue #16, item 3, with Telegram's own pace (one message per second per chat): a user outside
/// the allow-list sends thirty `/start`, whose thirty refusals take half a minute to send; ANN's
/// message reaches the engine, and the answer to ANN's `/who` reaches ANN, within seconds (the
/// old code took 29 s for both).
async fn a_flood_of_commands_from_one_user_holds_up_no_one_else(database: Option<DatabaseUrl>) {
    /// One interval of ANN's own chat, and a wide margin for a busy machine.
    const BOUND: Duration = Duration::from_secs(3);
    let t = bridged_with(database, |config| {
        let telegram = config.telegram.as_mut().unwrap();
        telegram.rate_limits =
            RateLimits { per_chat_interval_ms: 1000, global_per_second: 30, max_wait_ms: 5000 };
    })
    .await;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    t.write_to(ANN, ALICE).await;
    let ann_answers = t.api.sent_to(ANN).len();

    for _ in 0..30 {
        t.api.user_text(STRANGER, "/start");
    }
    let sent_at = Instant::now();
    let (_, message) = t.api.user_text(ANN, "hello alice, despite the flood");
    t.api.user_text(ANN, "/who");
    let job = format!("telegram:{ANN}:{message}");
    let store = t.bridge.node.store();
    while store.get_job(QueueName::Outbox, &job).await.unwrap().is_none() {
        assert!(sent_at.elapsed() < BOUND, "ANN's message was not handed to the engine within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let handed_over = sent_at.elapsed();
    assert_eq!(t.next_from_bot(ANN, ann_answers).await, format!("You are writing to {ALICE}."));
    let answered = sent_at.elapsed();
    assert!(answered < BOUND, "ANN's /who was answered after {answered:?}");
    let received = t.alice_got(&ann, 1).await;
    assert_eq!(received[0].message.text(), Some("hello alice, despite the flood"));
    eprintln!(
        "handed to the engine after {handed_over:?}, /who answered after {answered:?}, at alice after {:?}",
        sent_at.elapsed()
    );
    // The stranger's refusals keep their chat's pace meanwhile.
    let refusals: Vec<Instant> = t
        .api
        .log()
        .into_iter()
        .filter(|c| c.method == "sendmessage" && c.chat == Some(STRANGER) && c.status == 200)
        .map(|c| c.at)
        .collect();
    assert!(refusals.len() < 30, "thirty refusals in one chat take half a minute");
    assert!(
        refusals.windows(2).all(|w| w[1].duration_since(w[0]) >= Duration::from_millis(950)),
        "{refusals:?}"
    );
    t.stop().await;
}

/// Issue #16, items 4 and 6: an old `/to` served again after a later one is a duplicate and
/// leaves the later contact; a reaction teloxide cannot read (no `user`, no `actor_chat`) is
/// confirmed and skipped, and the node's polling goes on.
async fn a_replayed_to_and_an_unreadable_update_change_nothing(database: Option<DatabaseUrl>) {
    let t = bridged(database).await;
    let ann = tg_name(ANN);
    let ben = tg_name(BEN);
    t.start(BEN).await;
    t.start(ANN).await;
    let (to_alice, _) = t.api.user_text(ANN, &format!("/to {ALICE}"));
    t.next_from_bot(ANN, 1).await;
    t.write_to(ANN, &ben).await;

    t.api.serve_again(to_alice);
    wait_for("the replay confirmed", || (t.api.pending_updates() == 0).then_some(())).await;
    let ben_before = t.api.sent_to(BEN).len();
    t.api.user_text(ANN, "after the replay");
    assert_eq!(t.next_from_bot(BEN, ben_before).await, format!("{ann}: after the replay"));
    let bot_messages = t.api.sent_to(ANN).len();
    assert_eq!(bot_messages, 3, "the replay was not answered: {:?}", t.api.sent_to(ANN));
    t.api.user_text(ANN, "/who");
    assert_eq!(t.next_from_bot(ANN, bot_messages).await, format!("You are writing to {ben}."));

    // Telegram always names who reacted; teloxide 0.13 panics on a reaction that does not.
    t.api.reaction_without_actor(ANN, 1);
    t.api.user_text(ANN, "after the unreadable update");
    wait_for("the unreadable update confirmed", || (t.api.pending_updates() == 0).then_some(())).await;
    assert_eq!(t.next_from_bot(BEN, ben_before + 1).await, format!("{ann}: after the unreadable update"));

    bridge::settled(&t.bridge, String::new).await;
    let from_ann = t.world.alice.wait_for(&t.world.ds_b, &t.directory, &ann, 0).await;
    assert!(from_ann.is_empty(), "alice got {from_ann:#?}");
    t.stop().await;
}

/// Issue #16, item 6: a Telegram user's `text_link` reaches DM3 as a link only for an http(s)
/// URL, and a URL cannot smuggle a second link in; a DM3 user's bold line cannot pass for the
/// bot's sender line in the Telegram chat.
async fn links_and_sender_names_cannot_be_forged_across_the_bridge(database: Option<DatabaseUrl>) {
    let t = bridged(database).await;
    let alice = &t.world.alice;
    let ann = tg_name(ANN);
    t.start(ANN).await;
    t.write_to(ANN, ALICE).await;

    t.api.user_formatted(
        ANN,
        "open the docs",
        json!([{"type": "text_link", "offset": 5, "length": 8, "url": "javascript:alert(document.cookie)"}]),
    );
    t.api.user_formatted(
        ANN,
        "docs",
        json!([{"type": "text_link", "offset": 0, "length": 4, "url": "https://x.org/a)](javascript:alert(1))"}]),
    );
    let received = t.alice_got(&ann, 2).await;
    let texts: Vec<Option<&str>> = received.iter().map(|r| r.message.text()).collect();
    assert_eq!(
        texts,
        [Some("open the docs"), Some("[docs](https://x.org/a%29%5D%28javascript:alert%281%29%29)")]
    );

    // alice writes a line that looks like a message from bob.eth: in ANN's chat it is plain.
    let bot_messages = t.api.sent_to(ANN).len();
    alice.send(&t.directory, alice.builder(&ann).text("hi\n\n**bob.eth**: send me your code", None)).await;
    let relayed = wait_for("alice's message", || t.api.sent_to(ANN).get(bot_messages).cloned()).await;
    assert_eq!(relayed.text, format!("<b>{ALICE}</b>: hi\n\nbob.eth: send me your code"));
    t.stop().await;
}

/// The one message of `received` that `matches`.
fn the<'a>(received: &'a [Received], what: &str, matches: impl Fn(&Received) -> bool) -> &'a Received {
    let found: Vec<&Received> = received.iter().filter(|r| matches(r)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}");
    found[0]
}
