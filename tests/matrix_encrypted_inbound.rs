//! Issue 17, Matrix → DM3 from encrypted rooms, against a real Synapse with bob on matrix-sdk
//! (`clients/matrix`: his own Olm/Megolm, nothing of the bridge's code) and alice a DM3 user
//! on a chain, on both backends:
//! - bob opens an encrypted DM with alice's ghost: his text, a reply and an edit reach alice,
//!   and Synapse's database holds none of his words;
//! - a late room key (the ghost's copy deleted, as a key lost on the way): the job waits, the
//!   ghost's device asks bob's devices, bob's client forwards the key, the message arrives once;
//! - a key that never comes (bob's client offline): bob is told in the room that his message
//!   could not be decrypted, and when the key comes after all nothing is bridged twice;
//! - a forgery (bob's ciphertext under eve's name) and a replay (under another event id) are
//!   refused, told in the room, never bridged;
//! - a room key Olm-authenticated as bob's but from a device his device list does not show (a
//!   vodozemac device whose keys were never published) opens nothing: refused and told, while
//!   his real device's messages cross;
//! - a DM switched to encrypted mid-conversation: its portal stays live, bob's next messages
//!   still reach alice;
//! - with `[matrix] encryption = "off"`, his encrypted message is answered as not read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/encrypted_dm.rs"]
mod encrypted_dm;
#[path = "support/olm_device.rs"]
mod olm_device;
#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use dm3::message::MessageType;
use dm3_bridge::store::{Portal, PortalState};
use dm3_bridge_matrix::Encryption;
use dm3_bridge_matrix::encryption::ENCRYPTION_OFF;
use dm3_matrix_client::ids::OwnedRoomId;
use dm3_matrix_client::{CrossSigning, RoomEncryption};
use encrypted_dm::{EncryptedDm, WAIT};
use olm_device::OlmDevice;
use serde_json::{Value, json};
use support::TestDb;
use synapse::{MatrixUser, SERVER_NAME, encode};

on_both_backends!(
    bobs_encrypted_dm_reaches_alice_a_late_key_once_a_lost_key_is_told_and_forgeries_are_refused,
    a_dm_switched_to_encrypted_keeps_bobs_messages_coming,
    with_encryption_off_an_encrypted_message_is_answered_as_not_read,
    a_room_key_from_a_device_bobs_device_list_does_not_show_is_refused_and_he_is_told,
);

/// How long the bridge waits for a late key here (`matrix.undecryptable_after_secs`).
const PATIENCE_SECS: u64 = 20;

/// The scene (bob's phone without cross-signing), and a plain CS-API login of bob's account to
/// read the room as the homeserver has it.
struct Encrypted {
    scene: EncryptedDm,
    bob_plain: MatrixUser,
}

impl std::ops::Deref for Encrypted {
    type Target = EncryptedDm;

    fn deref(&self) -> &EncryptedDm {
        &self.scene
    }
}

async fn start(db: &TestDb, encryption: Encryption) -> Encrypted {
    let scene = EncryptedDm::start(db, CrossSigning::Off, |matrix| {
        matrix.undecryptable_after_secs = PATIENCE_SECS;
        matrix.encryption = encryption;
    })
    .await;
    let bob_plain = scene.synapse.log_in("bob", &scene.credentials.password).await.unwrap();
    Encrypted { scene, bob_plain }
}

impl Encrypted {
    /// bob switches `room` to encrypted, and his client knows it.
    async fn switch_on(&self, room: &OwnedRoomId) {
        self.bob.enable_encryption(room).await.unwrap();
        self.bob
            .sync_until(WAIT, "the room is encrypted", || async {
                Ok(self.bob.is_encrypted(room).await?.then_some(()))
            })
            .await
            .unwrap();
    }

    /// Pushes `events` to the bridge as the homeserver would, under `txn_id`.
    async fn push(&self, txn_id: &str, events: Vec<Value>) {
        let hs_token = self.bridge.config.matrix.as_ref().unwrap().hs_token.clone().unwrap();
        let url = self.bridge.url(&format!("/_matrix/app/v1/transactions/{txn_id}"));
        let answer = self
            .bridge
            .client
            .put(url)
            .bearer_auth(hs_token.expose())
            .json(&json!({"events": events}))
            .send();
        let answer = answer.await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}

/// Forgets every room key the ghosts' devices kept: as if the key had not come (yet).
async fn lose_room_keys(db: &TestDb) {
    assert!(db.execute("DELETE FROM matrix_megolm_inbound").await > 0, "no room key was kept");
}

async fn bobs_encrypted_dm_reaches_alice_a_late_key_once_a_lost_key_is_told_and_forgeries_are_refused(
    db: &TestDb,
) {
    let world = start(db, Encryption::On).await;
    let room = world.dm(RoomEncryption::Encrypted).await;
    let bob = &world.bob;

    // His text, a reply to it and an edit of it, encrypted by his client.
    let first = bob.send_text(&room, "hello alice, encrypted").await.unwrap();
    let bob_name = world.bob_name().await;
    let received = world.alice_has(&bob_name, 1).await;
    assert_eq!((received[0].text(), received[0].kind()), (Some("hello alice, encrypted"), MessageType::New));
    let first_hash = received[0].hash().to_string();
    let reply = json!({"msgtype": "m.text", "body": "and a reply",
                       "m.relates_to": {"m.in_reply_to": {"event_id": first}}});
    bob.send_content(&room, "m.room.message", reply).await.unwrap();
    let edit = json!({"msgtype": "m.text", "body": "* hello alice, edited",
                      "m.new_content": {"msgtype": "m.text", "body": "hello alice, edited"},
                      "m.relates_to": {"rel_type": "m.replace", "event_id": first}});
    bob.send_content(&room, "m.room.message", edit).await.unwrap();
    let received = world.alice_has(&bob_name, 3).await;
    let kinds: Vec<MessageType> = received.iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, [MessageType::New, MessageType::Reply, MessageType::Edit]);
    assert_eq!(received[1].text(), Some("and a reply"));
    assert_eq!(received[2].text(), Some("hello alice, edited"));
    for message in &received[1..] {
        assert_eq!(message.reference_message_hash(), Some(first_hash.as_str()));
    }
    let stored = world.synapse.stored_events(room.as_str()).await.unwrap().join("\n");
    for words in ["hello alice", "and a reply"] {
        assert!(!stored.contains(words), "Synapse's database holds {words:?}");
    }

    // A late key: the ghost's copy is gone, bob's client (online) forwards it when asked.
    lose_room_keys(db).await;
    bob.start_sync();
    bob.send_text(&room, "sent while the key was lost").await.unwrap();
    let received = world.alice_has(&bob_name, 4).await;
    assert_eq!(received[3].text(), Some("sent while the key was lost"));
    let missing = r#"dm3_network_decryptions_total{network="matrix",outcome="missing_key"} "#;
    assert!(world.metric(missing).await >= 1.0, "the key was not missed first");

    // A key that never comes: bob's client is offline, so nobody answers the request.
    bob.stop_sync();
    lose_room_keys(db).await;
    bob.send_text(&room, "this key never comes").await.unwrap();
    let told = world.ghost_notices(&room, "could not decrypt your message", 1).await;
    assert!(told[0].contains(&format!("within {PATIENCE_SECS} seconds")), "{told:?}");
    // The key comes after all: kept, and the message that failed is not bridged late.
    bob.start_sync();
    bob.send_text(&room, "back online").await.unwrap();
    let received = world.alice_has(&bob_name, 5).await;
    let texts: Vec<Option<&str>> = received.iter().map(|m| m.text()).collect();
    assert_eq!(texts[3..], [Some("sent while the key was lost"), Some("back online")]);

    // A forgery and a replay of bob's first ciphertext, pushed as the homeserver would.
    let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode(room.as_str()), encode(first.as_str()));
    let original = world.bob_plain.call(reqwest::Method::GET, &path, None).await.unwrap();
    assert_eq!(original["type"], "m.room.encrypted");
    let mut as_eve = original.clone();
    as_eve["sender"] = json!(format!("@eve:{SERVER_NAME}"));
    as_eve["event_id"] = json!("$forged-under-eves-name");
    let mut replayed = original.clone();
    replayed["event_id"] = json!("$replayed-ciphertext");
    world.push("forgeries", vec![as_eve, replayed]).await;
    let refused = world.ghost_notices(&room, "refused your encrypted message", 2).await;
    assert!(
        refused.iter().any(|r| r.contains(&format!("not by its sender @eve:{SERVER_NAME}"))),
        "{refused:?}"
    );
    assert!(refused.iter().any(|r| r.contains("repeats the ciphertext")), "{refused:?}");
    // Three messages failed, each told: the lost key's, the forgery and the replay.
    let log = || world.synapse.log_tail();
    support::bridge::settled_failing(world.bridge.node.store(), WAIT, 3, log).await;
    assert_eq!(world.alice_has(&bob_name, 5).await.len(), 5, "something was bridged twice or forged");
    world.scene.bridge.node.shutdown().await.unwrap();
    // The node kept ciphertext and sealed keys only: none of bob's words are in its database.
    let database = db.all_text().await;
    for words in ["hello alice", "and a reply", "sent while the key was lost", "this key never comes"] {
        assert!(!database.contains(words), "the node's database holds {words:?}");
    }
}

async fn a_dm_switched_to_encrypted_keeps_bobs_messages_coming(db: &TestDb) {
    let world = start(db, Encryption::On).await;
    let room = world.dm(RoomEncryption::Clear).await;
    world.bob.send_text(&room, "in the clear").await.unwrap();
    let bob_name = world.bob_name().await;
    world.alice_has(&bob_name, 1).await;

    world.switch_on(&room).await;
    // The portal goes on (the ghost writes there in Megolm now), and what bob sends crosses.
    let encrypted = world.bob.send_text(&room, "now encrypted").await.unwrap();
    world.bob.send_text(&room, "and still arriving").await.unwrap();
    let received = world.alice_has(&bob_name, 3).await;
    let texts: Vec<Option<&str>> = received.iter().map(|m| m.text()).collect();
    assert_eq!(texts, [Some("in the clear"), Some("now encrypted"), Some("and still arriving")]);
    // A redaction is never encrypted (the homeserver must read it): his still crosses.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/redact/{}/r1",
        encode(room.as_str()),
        encode(encrypted.as_str())
    );
    world.bob_plain.call(reqwest::Method::PUT, &path, Some(json!({}))).await.unwrap();
    let received = world.alice_has(&bob_name, 4).await;
    assert_eq!(received[3].kind(), MessageType::DeleteRequest);
    assert_eq!(received[3].reference_message_hash(), Some(received[1].hash().to_string().as_str()));
    let stored = world.synapse.stored_events(room.as_str()).await.unwrap().join("\n");
    assert!(stored.contains("in the clear"));
    assert!(!stored.contains("now encrypted"), "Synapse's database holds an encrypted message's words");
    let live = |p: &Portal| p.state == PortalState::Live;
    bridged_matrix::wait_for_portal(&world.bridge, &world.synapse, room.as_str(), "the portal is live", live)
        .await;
    world.scene.bridge.node.shutdown().await.unwrap();
}

async fn with_encryption_off_an_encrypted_message_is_answered_as_not_read(db: &TestDb) {
    let world = start(db, Encryption::Off).await;
    let room = world.dm(RoomEncryption::Clear).await;
    world.bob.send_text(&room, "in the clear").await.unwrap();
    let bob_name = world.bob_name().await;
    world.alice_has(&bob_name, 1).await;

    world.switch_on(&room).await;
    world.bob.send_text(&room, "encrypted, with encryption off").await.unwrap();
    let told = world.ghost_notices(&room, ENCRYPTION_OFF, 1).await;
    assert_eq!(told.len(), 1, "{told:?}");
    bridged_matrix::settled(&world.bridge, &world.synapse).await;
    assert_eq!(
        world.alice_has(&bob_name, 1).await.len(),
        1,
        "an encrypted message crossed with encryption off"
    );
    world.scene.bridge.node.shutdown().await.unwrap();
}

async fn a_room_key_from_a_device_bobs_device_list_does_not_show_is_refused_and_he_is_told(db: &TestDb) {
    use vodozemac::megolm::GroupSession;

    let world = start(db, Encryption::On).await;
    let room = world.dm(RoomEncryption::Encrypted).await;
    // His real device (matrix-sdk, its keys published): believed.
    world.bob.send_text(&room, "from my real phone").await.unwrap();
    let bob_name = world.bob_name().await;
    assert_eq!(world.alice_has(&bob_name, 1).await[0].text(), Some("from my real phone"));

    // A device of bob's whose keys the homeserver never had: Olm to the ghost's device, as bob.
    let bob = &world.bob_plain;
    let ghost = world.ghost.as_str();
    let mut unlisted = OlmDevice::open(bob, ghost, vodozemac::olm::Account::new()).await;
    let mut megolm = GroupSession::new(vodozemac::megolm::SessionConfig::version_1());
    let room_key = unlisted.room_key(&bob.user_id, room.as_str(), &megolm, &megolm.session_key().to_base64());
    let sender_key = unlisted.account.curve25519_key().to_base64();
    let to_device =
        json!({"messages": {ghost: {unlisted.ghost_device.as_str(): unlisted.encrypt(&room_key)}}});
    let path = "/_matrix/client/v3/sendToDevice/m.room.encrypted/unlisted-key";
    bob.call(reqwest::Method::PUT, path, Some(to_device)).await.unwrap();
    let plaintext = json!({"type": "m.room.message", "room_id": room.as_str(),
                           "content": {"msgtype": "m.text", "body": "from a device nobody listed"}});
    let encrypted = json!({
        "algorithm": "m.megolm.v1.aes-sha2", "sender_key": sender_key, "device_id": "UNLISTED",
        "session_id": megolm.session_id(), "ciphertext": megolm.encrypt(plaintext.to_string()).to_base64(),
    });
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.encrypted/unlisted-1", encode(room.as_str()));
    bob.call(reqwest::Method::PUT, &path, Some(encrypted)).await.unwrap();

    let refused = world.ghost_notices(&room, "refused your encrypted message", 1).await;
    assert!(refused[0].contains("device list does not show"), "{refused:?}");
    let log = || world.synapse.log_tail();
    support::bridge::settled_failing(world.bridge.node.store(), WAIT, 1, log).await;
    // His real device still speaks for him.
    world.bob.send_text(&room, "still me").await.unwrap();
    let received = world.alice_has(&bob_name, 2).await;
    let texts: Vec<Option<&str>> = received.iter().map(|m| m.text()).collect();
    assert_eq!(texts, [Some("from my real phone"), Some("still me")]);
    let queries = world.metric("dm3_matrix_device_list_queries_total ").await;
    assert!(queries >= 2.0, "the unlisted device made bob's list be asked for again: {queries}");
    world.scene.bridge.node.shutdown().await.unwrap();
}
