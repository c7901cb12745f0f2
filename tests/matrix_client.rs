//! The matrix-sdk client of `clients/matrix` (crate `dm3-matrix-client`) on a real Synapse:
//! users with their own Olm/Megolm (matrix-sdk-crypto), as the encrypted-room tests use them
//! and as a gateway user runs them (docs/gateway.md, "The client"): envelopes sealed by the
//! client opened by the reference libraries and the other way round, a plain client's fallback,
//! the claim against the node's own checks, the `dm3-matrix` command across runs, and, with the
//! bridge itself on a chain, the claim in a portal room and a sealed round trip with a DM3 user
//! (SQLite and PostgreSQL where the node stores something).
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

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use clap::Parser as _;

use dm3::ds_profile::{DeliveryServiceKeys, DeliveryServiceProfile};
use dm3::ens::EnsName;
use dm3::gateway_envelope::{FALLBACK_TEXT, GatewayEnvelope, MatrixGatewayContent};
use dm3_bridge::clock::now_ms;
use dm3_bridge::identities::IdentityVault;
use dm3_bridge::identities::network::{Network, NetworkUserId};
use dm3_bridge::identities::vault::claim::Claim;
use dm3_matrix_client::cli::{self, Cli, Failure};
use dm3_matrix_client::gateway::envelopes::Recipient;
use dm3_matrix_client::gateway::node::NodeClient;
use dm3_matrix_client::gateway::{Dm3Keys, GatewayClientError};
use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, Decryption, GatewayUser, MatrixUser, RoomEncryption, SeenEvent};
use serde_json::{Value, json};
use support::TestDb;
use support::js::{JsProcess, user};
use support::names::{Admin, NamesNode, start_names_node};
use synapse::Synapse;

on_both_backends!(
    a_claim_through_the_bot_makes_the_name_serve_the_users_own_profile,
    the_bridge_takes_the_clients_claim_and_carries_its_sealed_messages_both_ways,
);

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
    dm(alice, bob, RoomEncryption::Encrypted).await
}

/// `alice` opens a DM in the clear with `bob`, who joins once he sees the invite.
async fn clear_dm(alice: &MatrixUser, bob: &MatrixUser) -> OwnedRoomId {
    dm(alice, bob, RoomEncryption::Clear).await
}

async fn dm(alice: &MatrixUser, bob: &MatrixUser, encryption: RoomEncryption) -> OwnedRoomId {
    let room = alice.create_dm(&bob.user_id().unwrap(), encryption).await.unwrap();
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
    // A client that syncs in the background sees the next message without being asked to.
    bob.start_sync();
    alice.send_text(&room, "while bob syncs on his own").await.unwrap();
    let latest = dm3_matrix_client::wait::wait_for(WAIT, "the background sync", || async {
        let messages = bob.messages(&room).await?;
        Ok(messages.last().filter(|m| m.body() == Some("while bob syncs on his own")).cloned())
    })
    .await
    .unwrap();
    assert_eq!(latest.decryption, Decryption::Decrypted);
    bob.stop_sync();

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_switched_on_mid_conversation_covers_what_follows_and_a_device_that_left_is_gone() {
    let synapse = synapse().await;
    let alice = account(&synapse, "alice").await.login("alice's laptop").await.unwrap();
    let bob_account = account(&synapse, "bob").await;
    let bob = bob_account.login("bob's phone").await.unwrap();
    let room = clear_dm(&alice, &bob).await;
    assert!(!bob.is_encrypted(&room).await.unwrap());
    alice.send_text(&room, "said in the clear").await.unwrap();
    until_body(&bob, &room, "said in the clear").await;

    alice.enable_encryption(&room).await.unwrap();
    bob.sync_until(WAIT, "bob sees the room encrypted", || async {
        Ok(bob.is_encrypted(&room).await?.then_some(()))
    })
    .await
    .unwrap();
    alice.send_text(&room, "from now on encrypted").await.unwrap();
    let seen = until_body(&bob, &room, "from now on encrypted").await;
    assert_eq!(
        texts(&seen).iter().map(|(_, body, d)| (*body, d.clone())).collect::<Vec<_>>(),
        [("said in the clear", Decryption::Clear), ("from now on encrypted", Decryption::Decrypted)]
    );
    let stored = synapse.stored_events(room.as_str()).await.unwrap();
    assert!(stored.iter().any(|e| e.contains("said in the clear")), "the check below can see plaintext");
    assert!(!stored.iter().any(|e| e.contains("from now on encrypted")), "{stored:#?}");

    // A device that logs out is gone: its token no longer syncs, and bob's remaining device
    // still reads what alice sends after her client has seen the device list change.
    let tablet = bob_account.login("bob's tablet").await.unwrap();
    tablet.log_out().await.unwrap();
    assert!(tablet.sync_once().await.is_err());
    alice.sync_once().await.unwrap();
    alice.send_text(&room, "after the tablet left").await.unwrap();
    let seen = until_body(&bob, &room, "after the tablet left").await;
    assert_eq!(seen.last().unwrap().decryption, Decryption::Decrypted);
}

/// A "node" that answers every question wrongly, as a hostile or broken one could: its
/// lookup with `lookup_bytes` bytes and `status`, its gateway with something that is not hex.
async fn hostile_node(status: u16, lookup_bytes: usize) -> NodeClient {
    use axum::http::StatusCode;
    use axum::routing::get;
    let lookup = move || async move { (StatusCode::from_u16(status).unwrap(), "x".repeat(lookup_bytes)) };
    let router = axum::Router::new()
        .route("/names/lookup", get(lookup))
        .route("/ccip/{sender}/{data}", get(|| async { r#"{"data":"0xnot-hex"}"# }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    NodeClient::new(&url).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_nodes_answers_are_refused_with_what_is_wrong() {
    let flood = hostile_node(200, 100 * 1024).await;
    let lookup = flood.lookup("matrix", "@gabe:localhost").await.unwrap_err().to_string();
    assert!(lookup.contains("over 65536 bytes"), "{lookup}");
    let name: EnsName = "gabe.mx.bridge.example.eth".parse().unwrap();
    let profile = flood.profile(&name).await.unwrap_err().to_string();
    assert!(profile.contains("the gateway body is not JSON"), "{profile}");
    let garbage =
        hostile_node(200, 10).await.lookup("matrix", "@gabe:localhost").await.unwrap_err().to_string();
    assert!(garbage.contains("the lookup's answer"), "{garbage}");
    // An error page is quoted, not copied whole into the error.
    let refused =
        hostile_node(404, 10_000).await.lookup("matrix", "@gabe:localhost").await.unwrap_err().to_string();
    assert!(refused.contains("404") && refused.len() < 1_000, "{refused}");
    assert!(NodeClient::new("not a url").is_err());
}

/// The delivery service the DM3 side's envelopes are sealed for.
fn delivery_service() -> (EnsName, DeliveryServiceKeys, DeliveryServiceProfile) {
    let keys = DeliveryServiceKeys::from_seeds(&[7; 32], &[8; 32]);
    let profile = keys.profile("http://ds.example");
    ("ds.example.eth".parse().unwrap(), keys, profile)
}

/// A gateway user, `gabe` (and his account, for more devices), in a DM with a plain client,
/// `pat` (encrypted on Matrix too: the two layers are independent).
async fn gateway_and_plain(synapse: &Synapse) -> (GatewayUser, Credentials, MatrixUser, OwnedRoomId) {
    let gabe_account = account(synapse, "gabe").await;
    let matrix = gabe_account.login("gabe's dm3-matrix").await.unwrap();
    let gabe = GatewayUser::new(matrix, Dm3Keys::generate());
    let pat = account(synapse, "pat").await.login("pat's element").await.unwrap();
    let room = encrypted_dm(gabe.matrix(), &pat).await;
    (gabe, gabe_account, pat, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_message_shows_its_fallback_to_a_plain_client_and_opens_with_the_reference_library() {
    let synapse = synapse().await;
    let (gabe, _, pat, room) = gateway_and_plain(&synapse).await;
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
    let (gabe, gabe_account, pat, room) = gateway_and_plain(&synapse).await;
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
    assert!(unreadable.contains("decryption failed"), "{read:#?}");

    // A device of gabe's that came later holds his DM3 keys but not the Matrix room keys of
    // what came before it: it lists both events as undecryptable, not as nothing.
    let wallet = dm3::crypto::eth::Wallet::from_bytes(&gabe.keys().wallet().secret_bytes()).unwrap();
    let later = GatewayUser::new(
        gabe_account.login("gabe's new laptop").await.unwrap(),
        Dm3Keys::from_wallet(wallet, dm3::keys::DEFAULT_NONCE),
    );
    let on_later = later.read_envelopes(&room).await.unwrap();
    assert_eq!(on_later.len(), 3, "the plain line too: undecryptable, it might have been an envelope");
    for envelope in &on_later {
        let why = envelope.opened.as_ref().unwrap_err();
        assert!(why.contains("could not decrypt the Matrix event"), "{why}");
    }
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
    let (gabe, _, bot, room) = gateway_and_plain(&synapse).await;
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
}

/// Runs `dm3-matrix ARGS` in process, as its `main` does, with `stdin`; answers its stdout
/// lines as JSON, or the failure.
async fn dm3_matrix(dir: &Path, args: &[&str], stdin: &str) -> Result<Vec<Value>, Failure> {
    let session = dir.join("session.json");
    let keys = dir.join("keys.json");
    let mut argv =
        vec!["dm3-matrix", "--session", session.to_str().unwrap(), "--keys", keys.to_str().unwrap()];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    cli::run(parsed, &mut stdin.as_bytes(), &mut out).await?;
    Ok(String::from_utf8(out).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_claims_sends_and_reads_with_its_own_key_and_session_files() {
    let dir = tempfile::tempdir().unwrap();
    let synapse = synapse().await;
    let db = TestDb::sqlite();
    let node = start_names_node(NamesNode { database: Some(db.url.clone()), ..NamesNode::default() }).await;
    let node_url = node.url("/");

    // keys: made once (0600), then loaded; a file others can read is refused, as is an import
    // over an existing wallet.
    let made = dm3_matrix(dir.path(), &["keys"], "").await.unwrap();
    assert_eq!(made[0]["created"], true);
    assert_eq!(mode(&dir.path().join("keys.json")), 0o600);
    let loaded = dm3_matrix(dir.path(), &["keys"], "").await.unwrap();
    assert_eq!(
        (loaded[0]["created"].clone(), loaded[0]["address"].clone()),
        (json!(false), made[0]["address"].clone())
    );
    std::fs::set_permissions(dir.path().join("keys.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = dm3_matrix(dir.path(), &["keys"], "").await.unwrap_err();
    assert!(open.exit_code() == 2 && open.to_string().contains("0600"), "{open}");
    std::fs::set_permissions(dir.path().join("keys.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let over = dm3_matrix(dir.path(), &["keys", "--import"], &"11".repeat(32)).await.unwrap_err();
    assert_eq!(over.exit_code(), 2, "{over}");

    let early = dm3_matrix(dir.path(), &["read", "!room:localhost"], "").await.unwrap_err();
    assert!(early.exit_code() == 2 && early.to_string().contains("dm3-matrix login"), "{early}");

    // login: a session file (0600) every later command resumes.
    let gabe = account(&synapse, "gabe").await;
    let logged_in = dm3_matrix(
        dir.path(),
        &["login", "--homeserver", synapse.url(), "--user", "gabe", "--password", &gabe.password],
        "",
    )
    .await
    .unwrap();
    assert_eq!(logged_in[0]["userId"], "@gabe:localhost");
    assert_eq!(mode(&dir.path().join("session.json")), 0o600);
    let wrong = Credentials { password: "not it".into(), ..gabe.clone() }.login("x").await;
    assert!(wrong.is_err());

    // The rooms, Matrix-encrypted, as the bridge and a contact open them: the bot and pat each
    // invite gabe to a direct room, and his command lists and joins them. Each command is a new
    // run resuming the device from the session file, its crypto state included: the bot and
    // pat encrypt to it, it reads what they and its own earlier runs sent.
    let bot = account(&synapse, "bot").await.login("bot").await.unwrap();
    let pat = account(&synapse, "pat").await.login("pat's element").await.unwrap();
    let gabe_id = ids::user_id("@gabe:localhost").unwrap();
    let bot_room = bot.create_dm(&gabe_id, RoomEncryption::Encrypted).await.unwrap();
    let pat_room = pat.create_dm(&gabe_id, RoomEncryption::Encrypted).await.unwrap();
    let mut invited: Vec<(String, String)> = dm3_matrix(dir.path(), &["rooms"], "")
        .await
        .unwrap()
        .iter()
        .map(|room| {
            (room["roomId"].as_str().unwrap().to_owned(), room["membership"].as_str().unwrap().to_owned())
        })
        .collect();
    invited.sort();
    let mut expected =
        vec![(bot_room.to_string(), "invited".to_owned()), (pat_room.to_string(), "invited".to_owned())];
    expected.sort();
    assert_eq!(invited, expected);
    for room in [&bot_room, &pat_room] {
        let joined = dm3_matrix(dir.path(), &["join", room.as_str()], "").await.unwrap();
        assert_eq!(joined[0]["membership"], "joined");
    }
    let rooms = dm3_matrix(dir.path(), &["rooms"], "").await.unwrap();
    assert!(
        rooms.iter().all(|room| room["membership"] == "joined" && room["encrypted"] == true),
        "{rooms:?}"
    );
    bot.sync_once().await.unwrap();
    pat.sync_once().await.unwrap();

    // claim: done once the node serves gabe's own profile for his name.
    let vault = node.node.names().vault.clone();
    let bot_task = tokio::spawn(claim_bot(bot, bot_room.clone(), vault));
    let claimed = dm3_matrix(dir.path(), &["claim", "--room", bot_room.as_str(), "--node", &node_url], "")
        .await
        .unwrap();
    bot_task.await.unwrap();
    let gabe_name = claimed[0]["name"].as_str().unwrap().to_owned();
    assert_eq!(claimed[0]["address"], made[0]["address"]);
    assert_eq!(claimed[0]["reply"], format!("claimed {gabe_name}"));

    // send: to a custodial identity of the node, and to gabe's own name (his keys, his DS).
    let carol = Admin { node: &node }.create("matrix", "@carol:example.org").await;
    let carol_name = carol["name"].as_str().unwrap();
    let pat_room_id = pat_room.as_str();
    let to_carol = dm3_matrix(
        dir.path(),
        &["send", "--to", carol_name, "--room", pat_room_id, "--node", &node_url, "hi carol"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (to_carol[0]["from"].as_str(), to_carol[0]["to"].as_str()),
        (Some(gabe_name.as_str()), Some(carol_name))
    );
    let to_self = dm3_matrix(
        dir.path(),
        &["send", "--to", &gabe_name, "--room", pat_room_id, "--node", &node_url, "a note to self"],
        "",
    )
    .await
    .unwrap();
    let unknown = dm3_matrix(
        dir.path(),
        &["send", "--to", "nobody.example.eth", "--room", pat_room_id, "--node", &node_url, "x"],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.exit_code(), 1, "{unknown}");

    // Pat's plain client shows two fallback lines, each from the node's delivery service.
    let seen = pat
        .sync_until(WAIT, "two envelopes", || async {
            let seen = pat.messages(&pat_room).await?;
            Ok((seen.iter().filter(|m| m.body() == Some(FALLBACK_TEXT)).count() == 2).then_some(seen))
        })
        .await
        .unwrap();
    for envelope in &seen {
        assert_eq!(
            envelope.content["network.dm3.envelope"]["deliveryService"],
            node.config.node.name.as_str()
        );
    }

    // Pat writes while no run of gabe's client is up: the room key waits for the device on the
    // homeserver, and the next run decrypts with the account it resumed (an undecryptable
    // event would be listed by `read`, below, as an error line).
    pat.send_text(&pat_room, "written while gabe's client was off").await.unwrap();

    // read: the one sealed to gabe opens, and its signature checks against the profile the node
    // serves for gabe's name; the one sealed to carol is named unreadable, not skipped.
    let read = dm3_matrix(dir.path(), &["read", pat_room_id, "--node", &node_url], "").await.unwrap();
    let [for_carol, for_gabe] = &read[..] else { panic!("{read:#?}") };
    assert_eq!(for_carol["eventId"], to_carol[0]["eventIds"][0]);
    assert!(for_carol["error"].is_string(), "{for_carol}");
    assert_eq!(for_gabe["eventId"], to_self[0]["eventIds"][0]);
    assert_eq!(for_gabe["message"]["message"], "a note to self");
    assert_eq!(for_gabe["messageHash"], to_self[0]["messageHash"]);
    assert_eq!(for_gabe["verified"], true);
    assert_eq!(for_gabe["sender"], "@gabe:localhost");
    let bad_room = dm3_matrix(dir.path(), &["read", "not-a-room"], "").await.unwrap_err();
    assert_eq!(bad_room.exit_code(), 2, "{bad_room}");
}

/// End to end with the bridge itself on a chain: the client's claim in its room with a DM3
/// user's ghost, answered by the bridge's own command handling; then alice, a DM3 user at
/// another delivery service, and gabe write to each other, each envelope sealed and opened
/// only at the ends.
async fn the_bridge_takes_the_clients_claim_and_carries_its_sealed_messages_both_ways(db: &TestDb) {
    let world = dm3_world::Dm3World::start(None).await;
    let (bridge, synapse) = bridged_matrix::start_bridge(&world, Some(db.url.clone())).await;
    world.point_parent_at(&bridge).await;
    let matrix = account(&synapse, "gabe").await.login("gabe's dm3-matrix").await.unwrap();
    let gabe = GatewayUser::new(matrix, Dm3Keys::generate());
    let ghost = ids::user_id(&format!("@_dm3_{}:{}", dm3_world::ALICE, synapse::SERVER_NAME)).unwrap();
    let room = gabe.matrix().create_dm(&ghost, RoomEncryption::Clear).await.unwrap();
    gabe.matrix()
        .sync_until(WAIT, "alice's ghost joins", || async {
            Ok(gabe.matrix().joined_members(&room).await?.contains(&ghost).then_some(()))
        })
        .await
        .unwrap();

    let outcome = gabe.claim(&room, WAIT).await.unwrap();
    assert!(outcome.reply.starts_with("Done:"), "{}", outcome.reply);
    let name = bridged_matrix::identity_name(&bridge, "@gabe:localhost").await;
    assert_eq!(outcome.challenge.name.as_str(), name);
    let client = NodeClient::new(&bridge.url("/")).unwrap();
    let wanted = outcome.profile.canonical();
    dm3_matrix_client::wait::wait_for(WAIT, "the bridge serves gabe's own profile", || async {
        Ok(client.profile(&outcome.challenge.name).await.ok().filter(|p| p.canonical() == wanted))
    })
    .await
    .unwrap();

    // alice → gabe: sealed by alice's client to the keys gabe's wallet made, carried by the
    // bridge as it is, opened by gabe's client.
    let directory = world.directory();
    let to_gabe = world.alice.builder(&name).text("hello gabe, sealed to your own keys", None);
    world.alice.send(&directory, to_gabe).await;
    let opened = gabe
        .matrix()
        .sync_until(WAIT, "alice's envelope", || async {
            let read = gabe.read_envelopes(&room).await.map_err(|e| match e {
                GatewayClientError::Matrix(e) => e,
                other => panic!("{other}"),
            })?;
            Ok(read.into_iter().find_map(|envelope| envelope.opened.ok()))
        })
        .await
        .unwrap();
    assert_eq!(opened.message.text(), Some("hello gabe, sealed to your own keys"));
    assert_eq!((opened.message.from(), opened.message.to()), (dm3_world::ALICE, name.as_str()));
    opened.verify(&world.alice.profile).unwrap();

    // gabe → alice: sealed by gabe's client for alice's delivery service, checked and posted by
    // the bridge, opened by alice's.
    let ds_b = &world.ds_b;
    let ds_b_profile = DeliveryServiceProfile::new(
        ds_b.encryption_public_key(),
        ds_b.signing_public_key(),
        ds_b.base.clone(),
    );
    let alice = Recipient {
        name: dm3_world::ALICE.parse().unwrap(),
        profile: world.alice.profile.clone(),
        delivery_services: vec![(dm3_world::DS_B.parse().unwrap(), ds_b_profile)],
    };
    gabe.send_text(&room, &outcome.challenge.name, &alice, "hello alice, from my own keys").await.unwrap();
    let received = world.alice.wait_for(ds_b, &directory, &name, 1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message.text(), Some("hello alice, from my own keys"));

    // Nobody in the middle could read either: no key of gabe's identity, no plaintext on the node.
    assert!(bridge.node.store().identity_keys(&name.parse().unwrap()).await.unwrap().is_empty());
    let database = db.all_text().await;
    for plaintext in ["hello gabe, sealed to your own keys", "hello alice, from my own keys"] {
        assert!(!database.contains(plaintext), "the node's database holds {plaintext:?}");
    }
    bridge.node.shutdown().await.unwrap();
}
