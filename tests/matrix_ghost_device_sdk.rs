//! A Matrix client with its own crypto (matrix-sdk, `clients/matrix`) as bob, against the
//! bridge's ghost devices on a real Synapse, on both backends: bob opens an encrypted DM with
//! alice's ghost and writes; his client finds the ghost's device by itself (`/keys/query`,
//! device keys, cross-signing), claims one of its one-time keys, shares the room key with it
//! over Olm, and the bridge, having kept that key before answering the transaction, reads
//! bob's words. Nothing here is the bridge's own code on bob's side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dm3_bridge::bridges::matrix::olm_store::SealedOlmStore;
use dm3_bridge::lease::Leases;
use dm3_bridge::vault::MasterKey;
use dm3_matrix_client::{Credentials, RoomEncryption, ids};
use matrix_bridge::Bridge;
use ruma::RoomId;
use serde_json::Value;
use support::TestDb;

on_both_backends!(bob_on_matrix_sdk_shares_his_room_key_with_the_ghost_device_which_reads_him);

async fn bob_on_matrix_sdk_shares_his_room_key_with_the_ghost_device_which_reads_him(db: &TestDb) {
    let store = db.open().await;
    let master = Arc::new(MasterKey::generate().unwrap());
    let accounts = Arc::new(SealedOlmStore::new(store.clone(), master, Leases::new(store.clone())));
    let bridge = Bridge::start_with_devices(accounts).await;
    let ghost = bridge.ghost("alice.eth");
    bridge.client.register_ghost(ghost.localpart()).await.unwrap();
    let devices = bridge.devices.clone().unwrap();
    devices.ensure(&ghost).await.unwrap();

    let password = bridge.synapse.register_account("bob").await.unwrap();
    let credentials =
        Credentials { homeserver: bridge.synapse.url().to_owned(), user: "bob".to_owned(), password };
    let bob = credentials.login("bob's phone").await.unwrap_or_else(|e| panic!("{e}"));
    let room =
        bob.create_dm(&ids::user_id(ghost.as_str()).unwrap(), RoomEncryption::Encrypted).await.unwrap();
    let room_id = RoomId::parse(room.as_str()).unwrap();
    bridge.client.join(&ghost, &room_id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let words = "hello alice, from bob's own crypto";
    let event_id = loop {
        // bob's client shares the room key with the members it knows of when it sends; it must
        // have seen the ghost join first.
        bob.sync_once().await.unwrap();
        let joined = bridge.sink.events().iter().any(|(_, e)| {
            e["type"] == "m.room.member"
                && e["state_key"] == ghost.as_str()
                && e["content"]["membership"] == "join"
        });
        if joined {
            break bob.send_text(&room, words).await.unwrap();
        }
        assert!(Instant::now() < deadline, "the ghost's join did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The event as the homeserver pushed it to the bridge: ciphertext.
    let event = loop {
        let found = bridge.sink.events().into_iter().find(|(_, e)| e["event_id"] == event_id.as_str());
        if let Some((_, event)) = found {
            break event;
        }
        assert!(Instant::now() < deadline, "bob's message did not reach the bridge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(event["type"], "m.room.encrypted");
    assert!(!event.to_string().contains(words), "bob's words in the clear: {event}");
    let content = event["content"].as_object().unwrap().clone();
    let (plaintext, sender_key) = loop {
        match devices.decrypt(&ghost, room.as_str(), &content).await {
            Ok(decrypted) => break decrypted,
            Err(e) if e.is_missing_key() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}\n{}", bridge.synapse.appservice_log()),
        }
    };
    assert_eq!(plaintext["type"], "m.room.message");
    assert_eq!(plaintext["content"]["body"], Value::from(words));
    assert_eq!(content["sender_key"].as_str().unwrap_or(&sender_key), sender_key);
    store.close().await;
}
