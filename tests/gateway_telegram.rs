//! Gateway mode on Telegram, end to end (docs/gateway.md sections 3 and 5): the bridge node
//! against the fake Bot API, a chain with our ENS contracts, and DM3 users whose clients are
//! the SDK (alice) and the reference npm libraries (carol), as in `tests/bridge_telegram.rs`.
//!
//! A Telegram user talks with DM3 users through the bridge in custodial mode, claims their name
//! through the bot in the middle of the conversation, and from then on receives what DM3 users
//! write sealed, as the gateway document their own client opens: the node holds no key of the
//! identity, and neither its database nor its logs hold the plaintext of what was sent after
//! the switch. The claim is attacked through the bot (someone else's challenge, a replay), and
//! an envelope sent as another DM3 user is refused. On SQLite and PostgreSQL.
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

use bridged_telegram::{ANN, BEN, TgBridged, bridged, tg_name, wait_for};
use dm3::crypto::eth::Wallet;
use dm3::crypto::signing::SigningKeyPair;
use dm3::encoding::b64_decode_array;
use dm3::envelope::Envelope;
use dm3::gateway_envelope::{FALLBACK_TEXT, GatewayEnvelope, TelegramGatewayDocument};
use dm3::message::{Message, MessageBuilder};
use dm3_bridge::store::JobState;
use dm3_world::{ALICE, BRIDGE_NODE_NAME, DS_B};
use serde_json::json;
use support::TestDb;
use support::bridge::settled;
use support::claims::{claim_json, gateway_keys};
use support::js::JsProcess;
use telegram::bot_api::{SentFile, visible_text};

on_both_backends!(
    a_telegram_user_claims_their_name_mid_conversation_and_then_gets_it_sealed,
    a_gateway_users_sealed_envelopes_reach_dm3_and_forgeries_are_refused_in_the_chat,
);

/// A DM3 user whose client is the reference npm libraries.
const CAROL: &str = "carol.test.eth";

impl TgBridged {
    /// `user` sends `text` to the bot; the bot's answer.
    async fn ask(&self, user: i64, text: &str) -> String {
        let before = self.api.sent_to(user).len();
        self.api.user_text(user, text);
        self.next_from_bot(user, before).await
    }

    /// Waits until `count` jobs have failed (refusals are failures) and none is pending.
    async fn failed(&self, count: u64) {
        for _ in 0..600 {
            let counts = self.bridge.node.store().count_jobs().await.unwrap();
            let failed: u64 = counts.iter().filter(|c| c.state == JobState::Failed).map(|c| c.count).sum();
            let pending = counts.iter().any(|c| c.state == JobState::Pending && c.count > 0);
            assert!(failed <= count, "{failed} jobs failed, not {count}");
            if failed == count && !pending {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("not {count} failed jobs within 60 s");
    }

    /// `user` asks the bot for a claim challenge; its text, as the bot showed it.
    async fn challenge(&self, user: i64) -> String {
        let answer = self.ask(user, "/claim").await;
        answer[answer.find("dm3-bridge claim").expect(&answer)..].trim_end().to_owned()
    }

    /// `user` claims their name for a new wallet through the bot; the wallet.
    async fn claimed(&self, user: i64) -> Wallet {
        let wallet = Wallet::generate();
        let claim = claim_json(&self.challenge(user).await, &wallet, &wallet, BRIDGE_NODE_NAME);
        let done = self.ask(user, &format!("/claim {claim}")).await;
        assert!(done.starts_with(&format!("Done: {} now holds its own keys", tg_name(user))), "{done}");
        wallet
    }

    /// `user`'s client sends the bot a gateway document for `to`'s delivery service `service`
    /// (its encryption key `ds_key`): `message`, signed and sealed with `signing`. The bot's
    /// answer.
    async fn send_sealed(
        &self,
        user: i64,
        message: Message,
        signing: &SigningKeyPair,
        service: (&str, String),
    ) -> String {
        let before = self.api.sent_to(user).len();
        self.post_sealed(user, message, signing, service);
        self.next_from_bot(user, before).await
    }

    /// [`Self::send_sealed`] without waiting for an answer.
    fn post_sealed(&self, user: i64, message: Message, signing: &SigningKeyPair, service: (&str, String)) {
        let recipient = self.world.alice.keys.encryption.public();
        let ds_key: [u8; 32] = b64_decode_array(&service.1).unwrap();
        let envelope = Envelope::seal(&message.sign(signing), signing, recipient, &ds_key).unwrap();
        let document = GatewayEnvelope::from_envelope(&envelope, service.0.parse().unwrap()).unwrap();
        let file = TelegramGatewayDocument::encode(document).unwrap().file();
        let size = file.len() as u64;
        self.api.user_document(user, "dm3-envelope.json", "application/vnd.dm3.gateway+json", file, size);
    }

    /// The file named `name` the bot uploads to `chat` next, after `after` messages, with the
    /// visible caption.
    async fn next_file(&self, chat: i64, after: usize) -> (Vec<u8>, String) {
        wait_for(&format!("a file for {chat}"), || {
            self.api.sent_to(chat).into_iter().skip(after).find_map(|sent| match sent.file {
                Some(SentFile::Upload { name, bytes }) if name == "dm3-envelope.json" => {
                    Some((bytes, visible_text(&sent.text)))
                }
                _ => None,
            })
        })
        .await
    }
}

async fn a_telegram_user_claims_their_name_mid_conversation_and_then_gets_it_sealed(db: &TestDb) {
    let logs = support::logs::capture();
    let t = bridged(Some(db.url.clone())).await;
    let name = tg_name(ANN);
    t.start(ANN).await;

    // Custodial: alice writes, the bridge opens it and ANN reads it in the clear.
    let before = t.api.sent_to(ANN).len();
    t.world.alice.send(&t.directory, t.world.alice.builder(&name).text("before the switch", None)).await;
    assert!(t.next_from_bot(ANN, before).await.contains("before the switch"));

    // The claim: the challenge names ANN's own account, whatever ANN types.
    let challenge = t.challenge(ANN).await;
    assert!(challenge.contains(&format!("account: telegram:{ANN}\n")), "{challenge}");
    assert!(challenge.contains(&format!("name: {name}\n")), "{challenge}");
    let wallet = Wallet::generate();
    let claim = claim_json(&challenge, &wallet, &wallet, BRIDGE_NODE_NAME).to_string();
    // BEN hands in ANN's claim: refused, and ANN's challenge is not spent by it.
    let refused = t.ask(BEN, &format!("/claim {claim}")).await;
    assert!(refused.contains(&format!("not issued to telegram:{BEN}")), "{refused}");
    // A claim that is no JSON, told as such.
    assert!(t.ask(ANN, "/claim {not json").await.contains("not JSON"));
    let done = t.ask(ANN, &format!("/claim {claim}")).await;
    assert!(done.starts_with(&format!("Done: {name} now holds its own keys")), "{done}");
    // The same claim again (a replay): its nonce is spent.
    let replayed = t.ask(ANN, &format!("/claim {claim}")).await;
    assert!(replayed.contains("expired or was used"), "{replayed}");
    let store = t.bridge.node.store();
    assert!(store.identity_keys(&name.parse().unwrap()).await.unwrap().is_empty(), "no key of it is left");

    // Self-custody: alice's client resolves ANN's new profile through the chain (a fresh
    // directory, as after the answers' TTL) and seals to ANN's own keys; ANN's client opens it.
    let keys = gateway_keys(&wallet);
    let secret = "after the switch: for ann's eyes only";
    let before = t.api.sent_to(ANN).len();
    let fresh = t.world.directory();
    let sent = t.world.alice.send(&fresh, t.world.alice.builder(&name).text(secret, None)).await;
    let (file, caption) = t.next_file(ANN, before).await;
    assert!(
        caption.contains(FALLBACK_TEXT) && caption.contains(ALICE),
        "what a plain client shows: {caption}"
    );
    let document = TelegramGatewayDocument::decode(&file).unwrap();
    assert_eq!(document.envelope().delivery_service().as_str(), BRIDGE_NODE_NAME);
    let opened = document.envelope().envelope().open(&keys.encryption).unwrap();
    assert_eq!((opened.message.text(), opened.message_hash), (Some(secret), sent));
    assert_eq!(opened.message.from(), ALICE);

    // carol's client is the reference libraries: sealed by them, carried as they sealed it.
    let mut js = JsProcess::spawn("ds-client.js").await;
    let (carol, _) = t.world.npm_user(&mut js, CAROL).await;
    let submit = |from: &str, text: &str| {
        json!({
            "url": t.bridge.base,
            "from": {"ensName": from, "signingPrivateKey": carol["keys"]["signing"]["privateKey"]},
            "to": {"ensName": name, "publicEncryptionKey": keys.encryption.public_b64()},
            "dsPublicEncryptionKey": t.bridge.encryption_public_key(),
            "text": text,
        })
    };
    let before = t.api.sent_to(ANN).len();
    let answer = js.call("submit", submit(CAROL, "from carol, sealed by the reference")).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let (file, _) = t.next_file(ANN, before).await;
    let document = TelegramGatewayDocument::decode(&file).unwrap();
    let carried = document.envelope().envelope_text();
    assert_eq!(serde_json::from_str::<serde_json::Value>(carried).unwrap(), answer["envelope"]);
    let opened = document.envelope().envelope().open(&keys.encryption).unwrap();
    assert_eq!(opened.message.text(), Some("from carol, sealed by the reference"));
    // carol's key signing as alice: refused at submit, nothing reaches ANN.
    let forged = js.call("submit", submit(ALICE, "from \"alice\"")).await;
    assert_eq!(forged["status"], 400, "{forged}");
    assert!(forged.to_string().contains("bad signature"), "{forged}");

    // The node opened nothing after the switch: no plaintext in its database or its logs.
    settled(&t.bridge, String::new).await;
    let sent_to_ann = t.api.sent_to(ANN);
    assert!(!sent_to_ann.iter().any(|s| s.text.contains(secret) || s.text.contains("from \"alice\"")));
    for (what, text) in [("database", db.all_text().await), ("logs", logs.text())] {
        for plaintext in [secret, "from carol, sealed by the reference"] {
            assert!(!text.contains(plaintext), "the {what} holds a plaintext sent after the switch");
        }
        assert!(!text.contains(keys.encryption.secret_b64().as_str()), "the {what} holds the user's key");
    }
    assert!(logs.text().contains("dm3_bridge"), "the logs were captured");
    t.bridge.node.shutdown().await.unwrap();
}

async fn a_gateway_users_sealed_envelopes_reach_dm3_and_forgeries_are_refused_in_the_chat(db: &TestDb) {
    let t = bridged(Some(db.url.clone())).await;
    let name = tg_name(ANN);
    t.start(ANN).await;
    t.ask(ANN, &format!("/to {ALICE}")).await;
    let wallet = t.claimed(ANN).await;
    let keys = gateway_keys(&wallet);
    let ds_b = (DS_B, t.world.ds_b.encryption_public_key());
    let fresh = t.world.directory();

    // In the clear: the bridge cannot sign for a self-custody user, and says so.
    let refusal = t.ask(ANN, "hi alice, in the clear").await;
    assert!(refusal.contains("your DM3 client must seal the message"), "{refusal}");

    // Sealed by ANN's own client for alice's delivery service: forwarded as it is.
    let builder = MessageBuilder::now(ALICE, name.clone());
    t.post_sealed(ANN, builder.text("sealed by ann's own client", None), &keys.signing, ds_b.clone());
    let received = t.world.alice.wait_for(&t.world.ds_b, &fresh, &name, 1).await;
    assert_eq!(received[0].message.text(), Some("sealed by ann's own client"));

    // Signed by a key that is not ANN's profile's: refused in the chat, nothing sent.
    let stranger = SigningKeyPair::generate();
    let forged =
        t.send_sealed(ANN, builder.text("signed by someone else", None), &stranger, ds_b.clone()).await;
    assert!(forged.contains("is not signed with the key of"), "{forged}");
    // Sent as alice herself, signed by ANN: ANN's key passes the gateway, and alice's delivery
    // service, which authenticates senders, refuses it; ANN is told.
    let as_alice = MessageBuilder::now(ALICE, ALICE).text("I am alice, honest", None);
    let refused = t.send_sealed(ANN, as_alice, &keys.signing, ds_b.clone()).await;
    assert!(refused.contains("bad signature"), "{refused}");
    // Sealed for a delivery service that is not alice's.
    let elsewhere = (BRIDGE_NODE_NAME, t.bridge.encryption_public_key());
    let refused = t.send_sealed(ANN, builder.text("to the wrong DS", None), &keys.signing, elsewhere).await;
    assert!(refused.contains("not a delivery service of"), "{refused}");
    // A document declared over the 1 MiB bound: refused before it is fetched.
    let before = t.api.sent_to(ANN).len();
    t.api.user_document(ANN, "dm3-envelope.json", "application/json", b"{}".to_vec(), 2 * 1024 * 1024);
    let refused = t.next_from_bot(ANN, before).await;
    assert!(refused.contains("more than the 1048576"), "{refused}");
    // A flood of forged envelopes: each refused in its turn, none forwarded, and the same
    // refusal told once (a notice is keyed by its conversation and text).
    let told = t.api.sent_to(ANN).len();
    for index in 0..20 {
        let flood = builder.text(&format!("flood {index}"), None);
        t.post_sealed(ANN, flood, &stranger, ds_b.clone());
    }
    // The clear text, the four refused documents and the flood: each failed once.
    t.failed(5 + 20).await;
    assert_eq!(t.api.sent_to(ANN).len(), told, "no new answer for refusals told already");
    let received = t.world.alice.wait_for(&t.world.ds_b, &fresh, &name, 1).await;
    assert_eq!(received.len(), 1, "only ANN's own envelope reached alice");
    t.bridge.node.shutdown().await.unwrap();
}
