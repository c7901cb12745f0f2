//! The matrix-sdk client of `clients/matrix` (crate `dm3-matrix-client`) on a real Synapse:
//! users with their own Olm/Megolm (matrix-sdk-crypto), as the encrypted-room tests use them
//! and as a gateway user runs them (docs/gateway.md, "The client"): envelopes sealed by the
//! client opened by the reference libraries and the other way round, a plain client's fallback,
//! and the claim against the node's own checks, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::time::Duration;

use dm3::ds_profile::{DeliveryServiceKeys, DeliveryServiceProfile};
use dm3::ens::EnsName;
use dm3::gateway_envelope::{FALLBACK_TEXT, GatewayEnvelope, MatrixGatewayContent};
use dm3_bridge::clock::now_ms;
use dm3_bridge::identities::IdentityVault;
use dm3_bridge::identities::network::{Network, NetworkUserId};
use dm3_bridge::identities::vault::claim::Claim;
use dm3_matrix_client::gateway::envelopes::Recipient;
use dm3_matrix_client::gateway::node::NodeClient;
use dm3_matrix_client::gateway::{Dm3Keys, GatewayClientError};
use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, Decryption, GatewayUser, MatrixUser, RoomEncryption, SeenEvent};
use serde_json::{Value, json};
use support::TestDb;
use support::js::{JsProcess, user};
use support::names::{NamesNode, start_names_node};
use synapse::Synapse;

on_both_backends!(a_claim_through_the_bot_makes_the_name_serve_the_users_own_profile);

/// Long enough for a loaded CI machine; a wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(30);

/// An application service that claims nobody: Synapse requires a registration, and this one
/// is never sent anything.
const NO_APPSERVICE: &str = r#"id: nobody
url: "http://127.0.0.1:9"
as_token: "as-token-of-nobody"
hs_token: "hs-token-of-nobody"
sender_localpart: "_nobody"
namespaces:
  users: [{exclusive: true, regex: "@_nobody_.*"}]
  aliases: []
  rooms: []
rate_limited: false
"#;

async fn synapse() -> Synapse {
    Synapse::start(NO_APPSERVICE).await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Registers `name` and answers their password login.
async fn account(synapse: &Synapse, name: &str) -> Credentials {
    let password = synapse.register_account(name).await.unwrap();
    Credentials { homeserver: synapse.url().to_owned(), user: name.to_owned(), password }
}

/// `alice` opens an encrypted DM with `bob`, who joins once he sees the invite.
async fn encrypted_dm(alice: &MatrixUser, bob: &MatrixUser) -> OwnedRoomId {
    let room = alice.create_dm(&bob.user_id().unwrap(), RoomEncryption::Encrypted).await.unwrap();
    let invited = room.clone();
    bob.sync_until(WAIT, "bob's invite", || {
        let invited = invited.clone();
        async move { Ok(bob.invited_rooms().contains(&invited).then_some(())) }
    })
    .await
    .unwrap();
    bob.join(&room).await.unwrap();
    alice.sync_once().await.unwrap();
    room
}

/// Syncs `user` until the room holds a message with `body`; answers the messages seen then.
async fn until_body(user: &MatrixUser, room: &OwnedRoomId, body: &str) -> Vec<SeenEvent> {
    user.sync_until(WAIT, &format!("{body:?} in {room}"), || async move {
        let messages = user.messages(room).await?;
        Ok(messages.iter().any(|m| m.body() == Some(body)).then_some(messages))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn texts(messages: &[SeenEvent]) -> Vec<(String, &str, Decryption)> {
    messages
        .iter()
        .map(|m| {
            let sender = m.sender.as_ref().map(ToString::to_string).unwrap_or_default();
            (sender, m.body().unwrap_or("<no body>"), m.decryption.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_encrypting_users_read_each_others_messages_decrypted() {
    let synapse = synapse().await;
    let alice = account(&synapse, "alice").await.login("alice's laptop").await.unwrap();
    let bob = account(&synapse, "bob").await.login("bob's phone").await.unwrap();
    let room = encrypted_dm(&alice, &bob).await;
    assert!(alice.is_encrypted(&room).await.unwrap());
    assert!(bob.is_encrypted(&room).await.unwrap());

    alice.send_text(&room, "hello bob, only you can read this").await.unwrap();
    let seen_by_bob = until_body(&bob, &room, "hello bob, only you can read this").await;
    bob.send_text(&room, "hello alice").await.unwrap();
    let seen_by_alice = until_body(&alice, &room, "hello alice").await;

    let (alice_id, bob_id) = (alice.user_id().unwrap().to_string(), bob.user_id().unwrap().to_string());
    assert_eq!(
        texts(&seen_by_bob),
        [(alice_id.clone(), "hello bob, only you can read this", Decryption::Decrypted)]
    );
    assert_eq!(
        texts(&seen_by_alice),
        [
            (alice_id, "hello bob, only you can read this", Decryption::Decrypted),
            (bob_id, "hello alice", Decryption::Decrypted),
        ]
    );
    // What the homeserver holds is ciphertext only: no body in the clear.
    let stored = synapse.stored_events(room.as_str()).await.unwrap();
    assert!(stored.iter().any(|e| e.contains("m.room.encrypted")), "{stored:#?}");
    assert!(
        !stored.iter().any(|e| e.contains("only you can read") || e.contains("hello alice")),
        "{stored:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_reads_what_was_sent_after_it_joined_and_reports_what_it_cannot() {
    let synapse = synapse().await;
    let alice = account(&synapse, "alice").await.login("alice's laptop").await.unwrap();
    let bob_account = account(&synapse, "bob").await;
    let bob = bob_account.login("bob's phone").await.unwrap();
    let room = encrypted_dm(&alice, &bob).await;
    alice.send_text(&room, "before the tablet").await.unwrap();
    until_body(&bob, &room, "before the tablet").await;

    let tablet = bob_account.login("bob's tablet").await.unwrap();
    assert_eq!(tablet.user_id().unwrap(), bob.user_id().unwrap());
    assert_ne!(tablet.device_id().unwrap(), bob.device_id().unwrap());
    // Alice's client learns of the new device from her sync (device list changes), then shares
    // the next room key with it too.
    alice.sync_once().await.unwrap();
    alice.send_text(&room, "after the tablet").await.unwrap();

    let on_tablet = until_body(&tablet, &room, "after the tablet").await;
    let bob_id = ids::user_id(bob.user_id().unwrap().as_str()).unwrap();
    assert!(!on_tablet.iter().any(|m| m.sender.as_ref() == Some(&bob_id)));
    let [before, after] = &on_tablet[..] else { panic!("{on_tablet:#?}") };
    // The first message's room key was shared before the tablet existed: it cannot decrypt it,
    // and says so instead of hiding it.
    assert!(matches!(&before.decryption, Decryption::Undecryptable { .. }), "{before:#?}");
    assert_eq!(before.event_type, "m.room.encrypted");
    assert_eq!((after.body(), &after.decryption), (Some("after the tablet"), &Decryption::Decrypted));
    // The phone still reads both.
    let on_phone = until_body(&bob, &room, "after the tablet").await;
    assert_eq!(
        texts(&on_phone).iter().map(|(_, body, d)| (*body, d.clone())).collect::<Vec<_>>(),
        [("before the tablet", Decryption::Decrypted), ("after the tablet", Decryption::Decrypted)]
    );
}

/// The delivery service the DM3 side's envelopes are sealed for.
fn delivery_service() -> (EnsName, DeliveryServiceKeys, DeliveryServiceProfile) {
    let keys = DeliveryServiceKeys::from_seeds(&[7; 32], &[8; 32]);
    let profile = keys.profile("http://ds.example");
    ("ds.example.eth".parse().unwrap(), keys, profile)
}

/// A gateway user, `gabe`, in a DM with a plain client, `pat` (encrypted on Matrix too: the
/// two layers are independent).
async fn gateway_and_plain(synapse: &Synapse) -> (GatewayUser, MatrixUser, OwnedRoomId) {
    let matrix = account(synapse, "gabe").await.login("gabe's dm3-matrix").await.unwrap();
    let gabe = GatewayUser::new(matrix, Dm3Keys::generate());
    let pat = account(synapse, "pat").await.login("pat's element").await.unwrap();
    let room = encrypted_dm(gabe.matrix(), &pat).await;
    (gabe, pat, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_message_shows_its_fallback_to_a_plain_client_and_opens_with_the_reference_library() {
    let synapse = synapse().await;
    let (gabe, pat, room) = gateway_and_plain(&synapse).await;
    let mut js = JsProcess::spawn("oracle.js").await;
    let (ds_name, ds_keys, ds_profile) = delivery_service();
    let alice = js.call("random_user", json!({"deliveryServices": [ds_name.as_str()]})).await;
    let to = Recipient {
        name: user::ens(&alice),
        profile: user::profile(&alice),
        delivery_services: vec![(ds_name.clone(), ds_profile)],
    };
    let from: EnsName = "gabe-slocalhost.mx.bridge.example.eth".parse().unwrap();

    let sent = gabe.send_text(&room, &from, &to, "sealed on gabe's machine").await.unwrap();
    assert_eq!(sent.len(), 1, "one envelope per delivery service of the recipient");

    // Pat's client knows nothing of DM3: it shows the fallback line, never the ciphertext.
    let seen = until_body(&pat, &room, FALLBACK_TEXT).await;
    let [envelope] = &seen[..] else { panic!("{seen:#?}") };
    assert_eq!(envelope.event_id.as_ref(), Some(&sent[0]));
    assert_eq!(
        (envelope.msgtype(), &envelope.decryption),
        (Some("network.dm3.envelope"), &Decryption::Decrypted)
    );
    let document = &envelope.content["network.dm3.envelope"];
    assert_eq!(
        (document["version"].clone(), document["deliveryService"].clone()),
        (json!(1), json!("ds.example.eth"))
    );
    assert!(!envelope.content.to_string().contains("sealed on gabe's machine"));

    // The reference libraries open it as alice's client, with the DS's view of the delivery
    // information, and check the signature with the key of gabe's profile.
    let text = document["envelope"].as_str().unwrap();
    let envelope: Value = serde_json::from_str(text).unwrap();
    let ds_pair =
        json!({"publicKey": ds_keys.encryption.public_b64(), "privateKey": *ds_keys.encryption.secret_b64()});
    let opened = js
        .call(
            "open",
            json!({"envelope": envelope, "receiverEncryptionKeyPair": alice["keys"]["encryption"], "dsEncryptionKeyPair": ds_pair}),
        )
        .await;
    assert_eq!(opened["message"]["message"], "sealed on gabe's machine");
    assert_eq!(opened["message"]["metadata"]["from"], from.as_str());
    assert_eq!(opened["deliveryInformation"], json!({"to": user::name(&alice), "from": from.as_str()}));
    let gabe_signing = gabe.keys().profile_keys().signing.public_b64();
    let checked = js
        .call(
            "check_message",
            json!({"message": opened["message"], "publicSigningKey": gabe_signing, "from": from.as_str()}),
        )
        .await;
    assert_eq!(checked, json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_user_opens_what_the_reference_library_sealed_to_it_and_names_what_it_cannot() {
    let synapse = synapse().await;
    let (gabe, pat, room) = gateway_and_plain(&synapse).await;
    let mut js = JsProcess::spawn("oracle.js").await;
    let (ds_name, _, ds_profile) = delivery_service();
    let alice = js.call("random_user", json!({"deliveryServices": [ds_name.as_str()]})).await;
    let gabe_name = "gabe-slocalhost.mx.bridge.example.eth";
    let seal = |to_key: String, text: &str| {
        let message = json!({"type": "NEW", "to": gabe_name, "from": user::name(&alice), "text": text,
            "signingPrivateKey": alice["keys"]["signing"]["privateKey"]});
        (message, to_key)
    };
    // One envelope for gabe, and one sealed to someone else's key (alice's own) that lands in
    // the same room: gabe's client cannot open that one and says so.
    let mut contents = Vec::new();
    for (message, to_key) in [
        seal(gabe.keys().profile_keys().encryption.public_b64(), "from the reference libraries"),
        seal(alice["keys"]["encryption"]["publicKey"].as_str().unwrap().to_owned(), "not for gabe"),
    ] {
        let created = js.call("create_message", message).await;
        let sealed = js
            .call(
                "seal",
                json!({"message": created["message"], "senderSigningPrivateKey": alice["keys"]["signing"]["privateKey"],
                    "recipientPublicEncryptionKey": to_key, "dsPublicEncryptionKey": ds_profile.public_encryption_key(),
                    "asText": true}),
            )
            .await;
        let document = GatewayEnvelope::new(sealed.as_str().unwrap(), ds_name.clone()).unwrap();
        contents.push(MatrixGatewayContent::encode(document).unwrap().to_content());
    }
    pat.send_text(&room, "a plain line, no envelope").await.unwrap();
    for content in contents {
        pat.send_content(&room, "m.room.message", content).await.unwrap();
    }

    let read = gabe
        .matrix()
        .sync_until(WAIT, "two envelopes", || async {
            let read = gabe.read_envelopes(&room).await.map_err(|e| match e {
                GatewayClientError::Matrix(e) => e,
                other => panic!("{other}"),
            })?;
            Ok((read.len() == 2).then_some(read))
        })
        .await
        .unwrap();
    let opened = read[0].opened.as_ref().unwrap();
    assert_eq!(opened.message.text(), Some("from the reference libraries"));
    assert_eq!((opened.message.from(), opened.message.to()), (user::name(&alice), gabe_name));
    assert_eq!(opened.delivery_service, ds_name);
    assert_eq!(read[0].sender.as_ref().map(ToString::to_string), Some(pat.user_id().unwrap().to_string()));
    opened.verify(&user::profile(&alice)).unwrap();
    // Anyone can seal to gabe: only the sender's profile key proves who wrote it.
    let mallory = js.call("random_user", json!({})).await;
    assert!(opened.verify(&user::profile(&mallory)).is_err());
    let unreadable = read[1].opened.as_ref().unwrap_err();
    assert!(!unreadable.is_empty(), "{read:#?}");
}

/// The bridge's bot as far as the claim goes: it answers `!dm3 claim` with the node's own
/// challenge and `!dm3 claim <JSON>` with the node's own checks (`IdentityVault`), for the
/// sender the homeserver names, until it has answered one claim.
async fn claim_bot(bot: MatrixUser, room: OwnedRoomId, vault: IdentityVault) {
    let mut answered = 0;
    loop {
        bot.sync_once().await.unwrap();
        let messages = bot.messages(&room).await.unwrap();
        let me = bot.user_id().unwrap();
        let asks: Vec<&SeenEvent> = messages.iter().filter(|m| m.sender.as_ref() != Some(&me)).collect();
        for ask in asks.iter().skip(answered) {
            let sender =
                NetworkUserId::parse(Network::Matrix, ask.sender.as_ref().unwrap().as_str()).unwrap();
            let body = ask.body().unwrap_or_default();
            let answer = match body.strip_prefix("!dm3 claim").map(str::trim) {
                Some("") => vault.issue_claim(&sender, now_ms()).await.unwrap().text,
                Some(json) => {
                    match vault.complete_claim(&sender, Claim::parse(json).unwrap(), now_ms()).await {
                        Ok(record) => format!("claimed {}", record.name),
                        Err(e) => format!("refused: {e}"),
                    }
                }
                None => "not a command".to_owned(),
            };
            bot.send_text(&room, &answer).await.unwrap();
            answered += 1;
            if body.len() > "!dm3 claim".len() {
                return;
            }
        }
    }
}

async fn a_claim_through_the_bot_makes_the_name_serve_the_users_own_profile(db: &TestDb) {
    let synapse = synapse().await;
    let node = start_names_node(NamesNode { database: Some(db.url.clone()), ..NamesNode::default() }).await;
    let vault = node.node.names().vault.clone();
    let (gabe, bot, room) = gateway_and_plain(&synapse).await;
    let bot_task = tokio::spawn(claim_bot(bot, room.clone(), vault));

    let outcome = gabe.claim(&room, WAIT).await.unwrap();
    bot_task.await.unwrap();
    let account = gabe.matrix().user_id().unwrap().to_string();
    assert!(
        outcome.challenge.text.contains(&format!("account: matrix:{account}")),
        "{:?}",
        outcome.challenge
    );
    assert_eq!(outcome.challenge.node.as_str(), node.config.node.name.as_str());
    assert_eq!(outcome.reply, format!("claimed {}", outcome.challenge.name));
    assert_eq!(outcome.profile.profile().delivery_services(), [node.config.node.name.as_str()]);

    // The node now serves the user's own profile for the name, and its own delivery service
    // beside it: exactly what a DM3 sender resolves to write to gabe.
    let client = NodeClient::new(&node.url("/")).unwrap();
    let looked_up = client.lookup("matrix", &account).await.unwrap();
    assert_eq!((looked_up.name.as_str(), looked_up.exists), (outcome.challenge.name.as_str(), true));
    let me = dm3_matrix_client::wait::wait_for(WAIT, "the claimed profile", || async {
        let me = client.recipient(&outcome.challenge.name).await.ok();
        Ok(me.filter(|me| me.profile.canonical() == outcome.profile.canonical()))
    })
    .await
    .unwrap();
    outcome.profile.verify_against_address(&gabe.keys().wallet().address()).unwrap();
    let [(ds_name, ds_profile)] = &me.delivery_services[..] else { panic!("{me:?}") };
    assert_eq!(ds_name.as_str(), node.config.node.name.as_str());
    assert_eq!(ds_profile.public_encryption_key(), node.encryption_public_key());

    // A challenge for another account is never signed: the client refuses before its wallet does.
    let foreign = "dm3-bridge claim\nnode: n.eth\nname: x.mx.n.eth\naccount: matrix:@mallory:localhost\nnonce: 00\nexpires: never";
    let refused = dm3_matrix_client::gateway::claim::Challenge::find(foreign, &format!("matrix:{account}"));
    assert!(
        matches!(refused, Err(GatewayClientError::Claim(ref why)) if why.contains("not signed")),
        "{refused:?}"
    );
}
