//! Ghost devices and their Olm accounts (issue 17, step 1) against a real Synapse with the
//! appservice extensions on (MSC4190, MSC3202), on both backends.
//!
//! What a Matrix user's client would rely on is asserted as that client would find it: the
//! ghost's device is listed by `/keys/query` with device keys signed by the device and by the
//! ghost's self-signing key (itself signed by the ghost's master key), its
//! one-time keys claimed by `/keys/claim` are signed too, and an Olm session opened on a
//! claimed key by another party (vodozemac, as bob's client) is read by the ghost's account as
//! the database gives it back, so the private halves of what was published are durable. When
//! keys are claimed, the next transaction's count makes the bridge publish new ones. The
//! account at rest is sealed; two processes cannot fork it; a sealed account moved to another
//! ghost does not open; counts an outsider could shape (malformed, for a device the bridge does
//! not have) neither refuse the transaction nor make anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/olm_device.rs"]
mod olm_device;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dm3_bridge::bridges::matrix::olm_store::SealedOlmStore;
use dm3_bridge::lease::Leases;
use dm3_bridge::store::{OlmAccountSave, Store};
use dm3_bridge::vault::MasterKey;
use dm3_bridge_matrix::crypto::signing::signed_bytes;
use dm3_bridge_matrix::crypto::{GhostAccount, KeysUpload, OlmStore};
use matrix_bridge::Bridge;
use olm_device::OlmDevice;
use reqwest::Method;
use serde_json::{Value, json};
use support::TestDb;
use vodozemac::megolm::GroupSession;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

on_both_backends!(
    a_ghost_device_is_published_signed_reachable_and_topped_up,
    a_room_key_shared_over_olm_is_kept_and_decrypts_the_rooms_messages,
    two_processes_never_fork_an_account_and_a_moved_account_does_not_open,
);

fn accounts(store: &Store, master: &Arc<MasterKey>) -> Arc<SealedOlmStore> {
    Arc::new(SealedOlmStore::new(store.clone(), master.clone(), Leases::new(store.clone())))
}

/// Verifies the signature `object` carries from `user`'s key `key_id`.
/// bob's client claims one signed one-time key of the ghost's device `dev`, as a client does
/// before it opens an Olm session with it; the homeserver's answer.
async fn claim_one_time_key(bob: &synapse::MatrixUser, user: &str, dev: &str) -> Value {
    bob.call(
        Method::POST,
        "/_matrix/client/v3/keys/claim",
        Some(json!({"one_time_keys": {user: {dev: "signed_curve25519"}}})),
    )
    .await
    .unwrap()
}

fn assert_signed(object: &Value, user: &str, key_id: &str, key: Ed25519PublicKey) {
    let signature =
        object["signatures"][user][key_id].as_str().unwrap_or_else(|| panic!("unsigned: {object}"));
    let signature = Ed25519Signature::from_base64(signature).unwrap();
    key.verify(signed_bytes(object.as_object().unwrap()).unwrap().as_bytes(), &signature)
        .unwrap_or_else(|e| panic!("bad signature on {object}: {e}"));
}

async fn a_ghost_device_is_published_signed_reachable_and_topped_up(db: &TestDb) {
    let store = db.open().await;
    let master = Arc::new(MasterKey::generate().unwrap());
    let accounts = accounts(&store, &master);
    let bridge = Bridge::start_with_devices(accounts.clone()).await;
    let ghost = bridge.ghost("alice.eth");
    bridge.client.register_ghost(ghost.localpart()).await.unwrap();
    let devices = bridge.devices.clone().unwrap();
    let device =
        devices.ensure(&ghost).await.unwrap_or_else(|e| panic!("{e}\n{}", bridge.synapse.log_tail()));

    // At rest: one row, sealed (no pickle field in the clear), the device published.
    let row = store.olm_account(ghost.as_str()).await.unwrap().unwrap();
    assert_eq!(row.device_id, device.device.as_str());
    assert!(row.device_published);
    let sealed = String::from_utf8_lossy(&row.sealed);
    assert!(
        !sealed.contains("signing_key") && !sealed.contains("one_time_keys"),
        "the account is stored in the clear"
    );
    // Again: the same device, nothing new made or written.
    assert_eq!(devices.ensure(&ghost).await.unwrap(), device);
    assert_eq!(store.olm_account(ghost.as_str()).await.unwrap().unwrap().version, row.version);

    // bob's client finds the device, named, with keys signed by it.
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let (user, dev) = (ghost.as_str(), device.device.as_str());
    let query = bob
        .call(Method::POST, "/_matrix/client/v3/keys/query", Some(json!({"device_keys": {user: []}})))
        .await
        .unwrap();
    let keys = &query["device_keys"][user][dev];
    assert_eq!(keys["unsigned"]["device_display_name"], "DM3 bridge", "{query}");
    let ed25519 =
        Ed25519PublicKey::from_base64(keys["keys"][format!("ed25519:{dev}")].as_str().unwrap()).unwrap();
    let curve25519 =
        Curve25519PublicKey::from_base64(keys["keys"][format!("curve25519:{dev}")].as_str().unwrap())
            .unwrap();
    assert_signed(keys, user, &format!("ed25519:{dev}"), ed25519);
    assert_eq!(keys["algorithms"], json!(["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]));

    // Cross-signed: the ghost's master key vouches for its self-signing key, which vouches for
    // the device, so bob's client does not show it as an unverified stranger.
    let only_key = |object: &Value| {
        let (id, key) = object["keys"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(id, &format!("ed25519:{}", key.as_str().unwrap()));
        key.as_str().unwrap().to_owned()
    };
    let master_keys = &query["master_keys"][user];
    let self_signing = &query["self_signing_keys"][user];
    assert_eq!(master_keys["usage"], json!(["master"]), "{query}");
    let (master_key, self_signing_key) = (only_key(master_keys), only_key(self_signing));
    assert_signed(
        self_signing,
        user,
        &format!("ed25519:{master_key}"),
        Ed25519PublicKey::from_base64(&master_key).unwrap(),
    );
    assert_signed(
        keys,
        user,
        &format!("ed25519:{self_signing_key}"),
        Ed25519PublicKey::from_base64(&self_signing_key).unwrap(),
    );

    // bob claims five one-time keys, each signed by the device.
    let mut claimed = Vec::new();
    for _ in 0..5 {
        let claim = claim_one_time_key(&bob, user, dev).await;
        let (id, key) = claim["one_time_keys"][user][dev].as_object().unwrap().iter().next().unwrap();
        assert!(id.starts_with("signed_curve25519:"), "{claim}");
        assert!(key.get("fallback").is_none(), "a one-time key, not the fallback: {claim}");
        assert_signed(key, user, &format!("ed25519:{dev}"), ed25519);
        claimed.push(Curve25519PublicKey::from_base64(key["key"].as_str().unwrap()).unwrap());
    }

    // bob's client opens an Olm session on a claimed key; the ghost's account, as the database
    // gives it back, reads it.
    let bob_account = Account::new();
    let mut session =
        bob_account.create_outbound_session(SessionConfig::version_1(), curve25519, claimed[0]).unwrap();
    let OlmMessage::PreKey(message) = session.encrypt("hello alice's ghost").unwrap() else {
        panic!("a first message is a pre-key message")
    };
    let stored = accounts.load_account(&ghost).await.unwrap().unwrap();
    let mut account = GhostAccount::from_pickle(&stored.pickle).unwrap();
    let opened = account
        .olm()
        .create_inbound_session(SessionConfig::version_1(), bob_account.curve25519_key(), &message)
        .unwrap();
    assert_eq!(opened.plaintext, b"hello alice's ghost");

    // The next transaction tells the bridge the count fell; it publishes what was claimed.
    let target = GhostAccount::new().one_time_key_target();
    // (Synapse counts the keys of the appservice users joined to the transaction's rooms.)
    let room = bob.create_room(json!({"is_direct": true, "invite": [user]})).await.unwrap();
    bridge.client.join(&ghost, &ruma::RoomId::parse(&room).unwrap()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_server = bridge
            .client
            .upload_keys(&ghost, &device.device, &KeysUpload::default(), "signed_curve25519")
            .await
            .unwrap();
        if on_server == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the count stayed at {on_server} of {target}\n{}",
            bridge.synapse.appservice_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(store.olm_account(ghost.as_str()).await.unwrap().unwrap().version > row.version);

    // Two replicas (two processes' stores and clients on one database) make carol's device at
    // the same moment: one device results, with one account, and Synapse lists only it.
    let carol = bridge.ghost("carol.eth");
    bridge.client.register_ghost(carol.localpart()).await.unwrap();
    let other =
        Arc::new(dm3_bridge_matrix::crypto::GhostDevices::new(bridge.client.clone(), accounts.clone()));
    let replica_accounts =
        Arc::new(SealedOlmStore::new(store.clone(), master.clone(), Leases::new(store.clone())));
    let replica =
        Arc::new(dm3_bridge_matrix::crypto::GhostDevices::new(bridge.client.clone(), replica_accounts));
    let (first, second) = tokio::join!(other.ensure(&carol), replica.ensure(&carol));
    let row = store.olm_account(carol.as_str()).await.unwrap().unwrap();
    for made in [first, second] {
        match made {
            Ok(device) => assert_eq!(device.device.as_str(), row.device_id),
            // The other replica holds carol's lease (PostgreSQL), or its save lost the race.
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    let query = bob
        .call(
            Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(json!({"device_keys": {carol.as_str(): []}})),
        )
        .await
        .unwrap();
    let listed: Vec<&String> = query["device_keys"][carol.as_str()].as_object().unwrap().keys().collect();
    assert_eq!(listed, vec![&row.device_id], "one device for carol: {query}");

    // Counts an outsider could shape: malformed, or for a device the bridge does not have. The
    // transaction is stored all the same (200), and nothing is made for them.
    let token = bridge.registration.hs_token().expose().to_owned();
    let dave = bridge.ghost("dave.eth");
    for (txn, counts) in [
        ("odd-1", json!({user: {dev: {"signed_curve25519": "lots"}}})),
        ("odd-2", json!({dave.as_str(): {"DM3FORGED": {"signed_curve25519": 0}}})),
        ("odd-3", json!("not a map")),
    ] {
        let body = json!({"events": [], "org.matrix.msc3202.device_one_time_key_counts": counts});
        let (status, answer) = bridge.put_transaction(txn, &body, &token).await;
        assert_eq!(status, 200, "{txn}: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.olm_account(dave.as_str()).await.unwrap().is_none(), "no account for forged counts");
    let (status, _) = bridge
        .put_transaction(
            "forged",
            &json!({"events": [], "org.matrix.msc3202.device_one_time_key_counts": {}}),
            "wrong",
        )
        .await;
    assert_eq!(status, 403);
    store.close().await;
}

/// bob's client shares a Megolm room key with the ghost's device over Olm, through the
/// homeserver (`/sendToDevice`), and sends an encrypted message into the room. The key arrives
/// in a transaction (MSC2409), is opened, checked and kept sealed before the bridge answers,
/// and decrypts bob's message; before it arrived the message was a missing key (held, not
/// lost). A replayed or forged to-device message is answered 200 and changes nothing.
async fn a_room_key_shared_over_olm_is_kept_and_decrypts_the_rooms_messages(db: &TestDb) {
    let store = db.open().await;
    let master = Arc::new(MasterKey::generate().unwrap());
    let bridge = Bridge::start_with_devices(accounts(&store, &master)).await;
    let ghost = bridge.ghost("alice.eth");
    bridge.client.register_ghost(ghost.localpart()).await.unwrap();
    let devices = bridge.devices.clone().unwrap();
    let device = devices.ensure(&ghost).await.unwrap();
    let (user, dev) = (ghost.as_str(), device.device.as_str());

    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let encryption = json!({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}});
    let room = bob
        .create_room(json!({"is_direct": true, "invite": [user], "initial_state": [encryption]}))
        .await
        .unwrap();
    bridge.client.join(&ghost, &ruma::RoomId::parse(&room).unwrap()).await.unwrap();

    // bob's client: its Olm account, the ghost's keys as /keys/query and /keys/claim give them.
    let mut bob_device = OlmDevice::open(&bob, user, Account::new()).await;
    assert_eq!(bob_device.ghost_device, dev, "the ghost's one device");

    // bob's message, encrypted before the ghost has the key: a missing key, to be held.
    let mut megolm = GroupSession::new(vodozemac::megolm::SessionConfig::version_1());
    // (The key as it stands before its first message: a key exported later cannot read it.)
    let session_key = megolm.session_key().to_base64();
    let plaintext = json!({"type": "m.room.message", "room_id": room, "content": {"msgtype": "m.text", "body": "encrypted hello"}});
    let encrypted = json!({
        "algorithm": "m.megolm.v1.aes-sha2", "sender_key": bob_device.account.curve25519_key().to_base64(),
        "session_id": megolm.session_id(), "ciphertext": megolm.encrypt(plaintext.to_string()).to_base64(),
        "device_id": "BOBDEVICE",
    });
    bob.call(
        Method::PUT,
        &format!("/_matrix/client/v3/rooms/{}/send/m.room.encrypted/e1", synapse::encode(&room)),
        Some(encrypted.clone()),
    )
    .await
    .unwrap();
    let content = encrypted.as_object().unwrap();
    let early = devices.decrypt(&ghost, &room, content).await.unwrap_err();
    assert!(early.is_missing_key(), "{early}");

    // The room key, over Olm, through the homeserver.
    let room_key = bob_device.room_key(&bob.user_id, &room, &megolm, &session_key);
    let olm_content = bob_device.encrypt(&room_key);
    bob.call(
        Method::PUT,
        "/_matrix/client/v3/sendToDevice/m.room.encrypted/k1",
        Some(json!({"messages": {user: {dev: olm_content.clone()}}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (event, sender_key) = loop {
        match devices.decrypt(&ghost, &room, content).await {
            Ok(decrypted) => break decrypted,
            Err(e) if e.is_missing_key() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}\n{}", bridge.synapse.appservice_log()),
        }
    };
    assert_eq!(Value::Object(event), plaintext);
    assert_eq!(sender_key, bob_device.account.curve25519_key().to_base64());
    let kept = store.megolm_inbound(user, &room, &megolm.session_id()).await.unwrap().unwrap();
    let sealed = String::from_utf8_lossy(&kept.sealed);
    assert!(
        !sealed.contains("signing_key") && !sealed.contains("ratchet"),
        "the room key is stored in the clear"
    );

    // The same message again (a replayed transaction), and one whose payload names another
    // recipient: both answered 200, neither changes what was kept.
    let token = bridge.registration.hs_token().expose().to_owned();
    let mut forged_key = room_key.clone();
    forged_key["recipient"] = json!("@_dm3_carol.eth:localhost");
    forged_key["keys"] = json!({"ed25519": "x"});
    let forged = bob_device.encrypt(&forged_key);
    for (txn, content) in [("replay", olm_content), ("forged", forged)] {
        let message = json!({"type": "m.room.encrypted", "sender": bob.user_id, "to_user_id": user, "to_device_id": dev, "content": content});
        let body = json!({"events": [], "de.sorunome.msc2409.to_device": [message]});
        let (status, answer) = bridge.put_transaction(txn, &body, &token).await;
        assert_eq!(status, 200, "{txn}: {answer}");
    }
    assert_eq!(store.megolm_inbound(user, &room, &megolm.session_id()).await.unwrap().unwrap(), kept);
    store.close().await;
}

async fn two_processes_never_fork_an_account_and_a_moved_account_does_not_open(db: &TestDb) {
    let store = db.open().await;
    let save = |user: &str, sealed: &[u8], expected: Option<i64>| OlmAccountSave {
        user_id: user.to_owned(),
        device_id: "DM3AAAAAAAA".to_owned(),
        sealed: sealed.to_vec(),
        device_published: false,
        expected,
        now_ms: 1_700_000_000_000,
    };
    let ghost = "@_dm3_alice.eth:localhost";
    assert_eq!(store.save_olm_account(save(ghost, b"first", None)).await.unwrap(), Some(1));
    assert_eq!(store.save_olm_account(save(ghost, b"racer", None)).await.unwrap(), None, "created twice");
    assert_eq!(store.save_olm_account(save(ghost, b"second", Some(1))).await.unwrap(), Some(2));
    // The other process read version 1 too: its save lands nowhere.
    assert_eq!(
        store.save_olm_account(save(ghost, b"fork", Some(1))).await.unwrap(),
        None,
        "a fork was written"
    );
    assert_eq!(store.olm_account(ghost).await.unwrap().unwrap().sealed, b"second");

    // One holder per ghost among processes sharing PostgreSQL; SQLite has one process.
    let master = Arc::new(MasterKey::generate().unwrap());
    let (one, two) = (accounts(&store, &master), accounts(&store, &master));
    let alice = ruma::UserId::parse(ghost).unwrap();
    assert!(one.hold(&alice).await.unwrap());
    let shared = store.backend() == dm3_bridge::config::Backend::Postgres;
    assert_eq!(two.hold(&alice).await.unwrap(), !shared, "a second process holds the same ghost");
    let bob = ruma::UserId::parse("@_dm3_bob.eth:localhost").unwrap();
    assert!(two.hold(&bob).await.unwrap(), "each ghost has its own lease");

    // A sealed account copied into another ghost's row does not open there.
    let carol = ruma::UserId::parse("@_dm3_carol.eth:localhost").unwrap();
    let account = GhostAccount::new();
    let device = ruma::OwnedDeviceId::from("DM3AAAAAAAA");
    let pickle = account.pickle().unwrap();
    let write = dm3_bridge_matrix::crypto::AccountWrite {
        ghost: &carol,
        device: &device,
        pickle: &pickle,
        device_published: true,
        expected: None,
    };
    assert!(matches!(one.save_account(write).await.unwrap(), dm3_bridge_matrix::crypto::Saved::Written(1)));
    let opened = one.load_account(&carol).await.unwrap().unwrap();
    assert_eq!(opened.pickle, pickle);
    let sealed = store.olm_account(carol.as_str()).await.unwrap().unwrap().sealed;
    let dave = "@_dm3_dave.eth:localhost";
    store.save_olm_account(save(dave, &sealed, None)).await.unwrap();
    assert!(one.load_account(&ruma::UserId::parse(dave).unwrap()).await.is_err(), "a moved account opened");
    store.close().await;
}
