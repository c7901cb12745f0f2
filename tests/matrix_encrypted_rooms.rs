//! Never cleartext into an encrypted room (issue 17), end to end with nothing faked: a real
//! Synapse, the bridge node, and alice, a DM3 user whose client is the SDK, on both backends.
//!
//! With `[matrix] encryption = "on"` (the default) bob switches on encryption in his DM with
//! alice's ghost, and alice goes on writing: the portal stays live, her words arrive as
//! `m.room.encrypted` from the ghost's own cross-signed device, and Synapse's database never
//! holds them (bob's client decrypting them: tests/matrix_megolm_send.rs). A message her client
//! encrypted for the room itself (a bridge payload) is forwarded as given, not encrypted twice.
//!
//! With `"off"`, bob switches on encryption, and alice goes on writing:
//! - at once, before the bridge may have handled the change: what the relay accepted is refused
//!   at the send, what came after the portal was paused is refused at submit;
//! - after a change the bridge missed (its record says live again, as a lost or late
//!   transaction would leave it): the send itself finds the room encrypted and refuses;
//! - a message her client encrypted for the room itself (a bridge payload, docs/bridge-payload.md
//!   §6) still arrives.
//!
//! What is asserted is what each side would notice: alice gets one report per accepted message
//! saying the room is encrypted; bob's room, as Synapse serves it and as Synapse stored it in its
//! database, holds none of alice's texts after the switch, only one notice from the ghost (with
//! none of her words in it) and her ciphertext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use bridged_matrix::{Bridged, bridged, bridged_with, portal_of, put_state, wait_for_event, wait_for_portal};
use dm3::bridge_payload::{self, BridgePayload, MatrixEvent};
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{Portal, PortalState};
use dm3_bridge_matrix::Encryption;
use dm3_world::Dm3World;
use serde_json::{Value, json};
use support::TestDb;

/// alice's texts that must never be readable in bob's room once it is encrypted.
const SECRETS: [&str; 3] = ["secret-one: written as bob switched", "secret-two: right after", "secret-three"];

/// What alice's client encrypted for the room itself (opaque to the bridge).
fn ciphertext() -> Value {
    json!({
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "bMQVmInkSIHBKt6yJ5m6sKNOLYlSfbrRNBXc8OvL2mU",
        "ciphertext": "AwgAEpABnvJ0cLmnTRN8dzYJb5bUVvcWzv4cqvQ6U2hpj8Ki2Q",
        "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
        "device_id": "DM3CLIENT",
    })
}

/// alice sends bob a message her client encrypted for the room itself (a bridge payload), with
/// a fallback text that must never reach the room.
async fn send_own_ciphertext(world: &Dm3World, to: &str) {
    let prepared = bridge_payload::attachment(&BridgePayload::Matrix(MatrixEvent {
        event_type: "m.room.encrypted".into(),
        content: ciphertext().as_object().unwrap().clone(),
        encrypted: true,
    }))
    .unwrap();
    let alice = &world.alice;
    alice
        .send(
            &world.directory(),
            alice.builder(to).text("fallback: never in the clear", Some(vec![prepared])),
        )
        .await;
}

fn ciphertext_only(portal: &Portal) -> bool {
    matches!(&portal.state, PortalState::CiphertextOnly { reason } if reason.contains("encrypted"))
}

/// alice submits `text` to `to`: whether the relay accepted it (a refusal must be the
/// suspended portal's -32012, naming the encryption).
async fn submit(world: &Dm3World, to: &str, text: &str) -> bool {
    let alice = &world.alice;
    let route = alice.route(&world.directory(), to).await;
    match alice.try_submit(&route, &alice.sign(alice.builder(to).text(text, None))).await {
        Ok(()) => true,
        Err(refusal) => {
            assert!(refusal.contains("-32012") && refusal.contains("encrypted"), "{refusal}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_encryption_off_an_encrypted_room_gets_no_cleartext_but_a_clients_ciphertext_on_sqlite() {
    switched_to_encrypted(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_encryption_off_an_encrypted_room_gets_no_cleartext_but_a_clients_ciphertext_on_postgres() {
    let db = TestDb::postgres().await;
    switched_to_encrypted(Some(db.url.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_encryption_on_a_dm_switched_to_encrypted_goes_on_encrypted_on_sqlite() {
    switched_and_carried(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_encryption_on_a_dm_switched_to_encrypted_goes_on_encrypted_on_postgres() {
    let db = TestDb::postgres().await;
    switched_and_carried(Some(db.url.clone())).await;
}

async fn switched_and_carried(database: Option<DatabaseUrl>) {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(database).await;
    let directory = world.directory();
    let alice = &world.alice;
    alice.send(&directory, alice.builder(&bob_name).text("before: in the clear, as agreed", None)).await;
    wait_for_event(&synapse, &bob, &room, |e| e["content"]["body"] == "before: in the clear, as agreed")
        .await;

    put_state(&bob, &room, "m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"})).await;
    for text in SECRETS {
        alice.send(&directory, alice.builder(&bob_name).text(text, None)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let timeline = loop {
        let timeline = bob.timeline(&room).await.unwrap();
        assert!(std::time::Instant::now() < deadline, "alice's texts did not arrive: {timeline:#?}");
        let encrypted = timeline.iter().filter(|e| e["sender"] == ghost && e["type"] == "m.room.encrypted");
        if encrypted.count() == SECRETS.len() {
            break timeline;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(portal_of(&bridge, &room).await.unwrap().state.is_live(), "the portal was never paused");

    // The ghost, found in an encrypted room, sends from a device of its own: made by the node,
    // its account sealed in the node's database, listed for bob's client with keys it can use
    // (docs/engine.md, "Encrypted rooms: plan").
    let account = bridge.node.store().olm_account(&ghost).await.unwrap().expect("the ghost has a device");
    assert!(account.device_published);
    let switched = timeline.iter().position(|e| e["type"] == "m.room.encryption").unwrap();
    for event in timeline[switched..].iter().filter(|e| e["sender"] == ghost) {
        assert_eq!(event["type"], "m.room.encrypted", "only ciphertext after the switch: {event}");
        assert_eq!(event["content"]["device_id"], account.device_id.as_str());
    }
    let query = bob
        .call(
            reqwest::Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(json!({"device_keys": {ghost.as_str(): []}})),
        )
        .await
        .unwrap();
    assert!(query["device_keys"][ghost.as_str()][account.device_id.as_str()]["keys"].is_object(), "{query}");
    assert!(query["self_signing_keys"][ghost.as_str()].is_object(), "cross-signed: {query}");
    let stored = synapse.stored_events(&room).await.unwrap();
    assert!(stored.iter().any(|json| json.contains("before: in the clear")), "the database is the room's");
    for secret in SECRETS {
        assert!(stored.iter().all(|json| !json.contains(secret)), "{secret} in Synapse's event_json");
    }

    // In a room the bridge itself encrypts, alice's own ciphertext (a bridge payload,
    // docs/bridge-payload.md §6) is forwarded as given, not encrypted a second time.
    send_own_ciphertext(&world, &bob_name).await;
    let forwarded = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost && e["type"] == "m.room.encrypted" && e["content"]["device_id"] == "DM3CLIENT"
    })
    .await;
    assert_eq!(forwarded["content"], ciphertext());
    let stored = synapse.stored_events(&room).await.unwrap();
    assert!(stored.iter().all(|json| !json.contains("fallback: never in the clear")), "the fallback stored");
    bridge.node.shutdown().await.unwrap();
}

async fn switched_to_encrypted(database: Option<DatabaseUrl>) {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } =
        bridged_with(database, |config| config.matrix.as_mut().unwrap().encryption = Encryption::Off).await;
    let directory = world.directory();
    let alice = &world.alice;
    alice.send(&directory, alice.builder(&bob_name).text("before: in the clear, as agreed", None)).await;
    wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost && e["content"]["body"] == "before: in the clear, as agreed"
    })
    .await;

    // bob switches encryption on; alice writes at once, racing the bridge's handling of it.
    put_state(&bob, &room, "m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"})).await;
    let mut accepted = 0;
    for text in &SECRETS[..2] {
        accepted += usize::from(submit(&world, &bob_name, text).await);
    }
    wait_for_portal(&bridge, &synapse, &room, "the portal carries ciphertext only", ciphertext_only).await;

    // A change the bridge missed: its record says live, the room is encrypted all the same.
    // The real change's own handling must be over first: a late one, which read the portal
    // live before the refused send paused it, would pause it again after the write below
    // without a second notice (its notice was posted already).
    let settle = std::time::Duration::from_secs(60);
    support::bridge::settled_failing(bridge.node.store(), settle, accepted as u64, || synapse.log_tail())
        .await;
    let portal = portal_of(&bridge, &room).await.unwrap();
    bridge.node.store().set_portal_state(portal.id, &PortalState::Live, 1).await.unwrap();
    assert!(submit(&world, &bob_name, SECRETS[2]).await, "a live portal accepts at submit");
    accepted += 1;
    wait_for_portal(&bridge, &synapse, &room, "paused again at the send", ciphertext_only).await;

    // alice is told of each accepted message, in words that say why.
    let reports = alice.wait_for(&world.ds_b, &directory, &bob_name, accepted).await;
    for report in &reports {
        let text = report.message.text().unwrap_or_default();
        assert!(
            text.contains("could not deliver")
                && text.contains("end-to-end encrypted")
                && text.contains("does not write"),
            "{text}"
        );
    }

    // Her own ciphertext goes in: the bridge cannot read it and forwards it as given.
    send_own_ciphertext(&world, &bob_name).await;
    let forwarded =
        wait_for_event(&synapse, &bob, &room, |e| e["sender"] == ghost && e["type"] == "m.room.encrypted")
            .await;
    assert_eq!(forwarded["content"], ciphertext());

    // What bob's room holds after the switch: no text of alice's, one notice per pause.
    let timeline = bob.timeline(&room).await.unwrap();
    let switched = timeline.iter().position(|e| e["type"] == "m.room.encryption").unwrap();
    let from_ghost: Vec<&Value> = timeline[switched..].iter().filter(|e| e["sender"] == ghost).collect();
    let notices: Vec<&str> = from_ghost
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            assert_eq!(e["content"]["msgtype"], "m.notice", "only the bridge's own words: {e}");
            e["content"]["body"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        notices.len(),
        2,
        "once when the room was switched, once after the missed change: {notices:#?}"
    );
    assert!(notices.iter().all(|n| n.contains("paused") && n.contains("encrypted")), "{notices:#?}");
    assert_eq!(from_ghost.iter().filter(|e| e["type"] == "m.room.encrypted").count(), 1);
    let stored = synapse.stored_events(&room).await.unwrap();
    assert!(stored.iter().any(|json| json.contains("before: in the clear")), "the database is the room's");
    for secret in SECRETS.iter().chain(["fallback: never in the clear"].iter()) {
        assert!(timeline.iter().all(|e| !e.to_string().contains(secret)), "{secret} served by Synapse");
        assert!(stored.iter().all(|json| !json.contains(secret)), "{secret} in Synapse's event_json");
    }

    bridge.node.shutdown().await.unwrap();
}
