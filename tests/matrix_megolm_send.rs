//! DM3 → Matrix into encrypted rooms, on a real Synapse with bob on matrix-sdk (its own
//! crypto, `clients/matrix`), on both backends: alice's ghost sends text, a reply, an edit, a
//! reaction and a file into bob's encrypted DM, each as `m.room.encrypted` from the ghost's
//! device with its room key shared over Olm, and bob's client decrypts every one; a device bob
//! adds later decrypts what follows; a device that goes away makes the session rotate, and so
//! does the room's `rotation_period_msgs` and a member who leaves; members' device lists are
//! kept between sends (no `/keys/query` while nothing changed) and bob's new device is asked
//! for after the transaction that announced it (MSC3202 `device_lists`);
//! Synapse's database never holds the words; and with `require`, portals are opened encrypted
//! and a room in the clear carries nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dm3_bridge::bridges::matrix::olm_store::SealedOlmStore;
use dm3_bridge::lease::Leases;
use dm3_bridge::store::Store;
use dm3_bridge::vault::MasterKey;
use dm3_bridge_connector::BoxFuture;
use dm3_bridge_connector::{
    Attachment, Content, ConversationId, Edit, EventKind, IdempotencyKey, Message, MimeType,
    NetworkMessageId, Outbound, Reaction, ReactionKey, RemoteIdentity, Text, deliver,
};
use dm3_bridge_connector::{Connector as _, ConnectorError, NetworkUserId, PortalStatus, Unsupported};
use dm3_bridge_matrix::crypto::{
    DeviceList, DeviceListStore, DeviceListUpdates, DeviceListWrite, OlmStoreError,
};
use dm3_bridge_matrix::sending::CLEAR_NOT_BRIDGED;
use dm3_bridge_matrix::{MatrixConnector, RoomEncryption as HomeserverEncryption};
use dm3_matrix_client::{Credentials, Decryption, MatrixUser, RoomEncryption, SeenEvent, ids};
use matrix_bridge::Bridge;
use ruma::{OwnedRoomId, OwnedUserId, RoomId};
use support::TestDb;

on_both_backends!(
    bob_on_matrix_sdk_decrypts_text_reply_edit_reaction_and_file_and_synapse_holds_no_plaintext,
    a_device_added_later_decrypts_what_follows_and_a_device_gone_rotates_the_session,
    with_require_portals_open_encrypted_and_a_room_in_the_clear_is_refused,
    the_rooms_rotation_period_in_messages_makes_a_new_session,
    a_member_who_leaves_makes_a_new_session,
    consecutive_sends_ask_for_device_lists_once_and_a_new_device_after_its_announcement,
);

/// The node's device lists, counting the queries the connector announces (one per
/// `/keys/query`).
struct CountedLists {
    inner: Arc<SealedOlmStore>,
    queries: AtomicUsize,
}

impl DeviceListStore for CountedLists {
    fn current<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<DeviceList>, OlmStoreError>> {
        self.inner.current(users)
    }

    fn fetching<'a>(
        &'a self,
        users: &'a [OwnedUserId],
    ) -> BoxFuture<'a, Result<Vec<(OwnedUserId, u64)>, OlmStoreError>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.fetching(users)
    }

    fn save(&self, lists: Vec<DeviceListWrite>) -> BoxFuture<'_, Result<(), OlmStoreError>> {
        self.inner.save(lists)
    }

    fn mark<'a>(&'a self, updates: &'a DeviceListUpdates) -> BoxFuture<'a, Result<(), OlmStoreError>> {
        self.inner.mark(updates)
    }
}

/// alice's ghost with a device, bob on matrix-sdk in an encrypted DM with it, and the
/// connector that sends as the ghost.
struct Scene {
    store: Store,
    bridge: Bridge,
    credentials: Credentials,
    bob: MatrixUser,
    room: OwnedRoomId,
    /// The same room, as bob's client names it.
    bob_room: ids::OwnedRoomId,
    connector: MatrixConnector,
    lists: Arc<CountedLists>,
}

async fn scene(db: &TestDb) -> Scene {
    let store = db.open().await;
    let master = Arc::new(MasterKey::generate().unwrap());
    let accounts = Arc::new(SealedOlmStore::new(store.clone(), master, Leases::new(store.clone())));
    let bridge = Bridge::start_with_devices(accounts.clone()).await;
    bridge.devices.as_ref().unwrap().set_outbound(accounts.clone());
    let lists = Arc::new(CountedLists { inner: accounts, queries: AtomicUsize::new(0) });
    bridge.devices.as_ref().unwrap().set_device_lists(lists.clone());
    let ghost = bridge.ghost("alice.eth");
    bridge.client.register_ghost(ghost.localpart()).await.unwrap();
    let password = bridge.synapse.register_account("bob").await.unwrap();
    let credentials =
        Credentials { homeserver: bridge.synapse.url().to_owned(), user: "bob".to_owned(), password };
    let bob = credentials.login("bob's phone").await.unwrap_or_else(|e| panic!("{e}"));
    let bob_room =
        bob.create_dm(&ids::user_id(ghost.as_str()).unwrap(), RoomEncryption::Encrypted).await.unwrap();
    let room = RoomId::parse(bob_room.as_str()).unwrap();
    // bob's keys, uploaded at his login, are announced only if Synapse handles that change after
    // the ghost joined; wait for it first, so no announcement outdates his list between the
    // sends that count the bridge's questions.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !bridge.synapse.device_list_changes_handled().await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "{}", bridge.synapse.appservice_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.client.join(&ghost, &room).await.unwrap();
    let connector = bridge.connector().with_devices(bridge.devices.clone().unwrap());
    Scene { store, bridge, credentials, bob, room, bob_room, connector, lists }
}

impl Scene {
    /// Sends `payload` as alice.eth, idempotent by `key`; the event id.
    async fn send(&self, key: &str, payload: EventKind) -> NetworkMessageId {
        let outbound = Outbound {
            conversation: ConversationId::new(self.room.as_str()).unwrap(),
            sender: RemoteIdentity::new("alice.eth").unwrap(),
            idempotency_key: IdempotencyKey::new(key).unwrap(),
            timestamp_ms: None,
            retry: false,
            payload,
        };
        deliver(&self.connector, &outbound)
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", self.bridge.synapse.log_tail()))
            .unwrap()
    }

    /// Waits until a transaction marked bob's kept device list outdated (his devices changed).
    async fn bobs_list_outdated(&self) {
        let bob = vec!["@bob:localhost".to_owned()];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.store.current_device_lists(&bob, dm3_bridge::clock::now_ms()).await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "{}", self.bridge.synapse.appservice_log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn queries(&self) -> usize {
        self.lists.queries.load(Ordering::SeqCst)
    }

    async fn text(&self, key: &str, words: &str) -> NetworkMessageId {
        self.send(key, EventKind::Message(Message::new(Content::Text(Text::plain(words))))).await
    }

    /// The events with `ids` as `user`'s client sees them, once it decrypted them all.
    async fn decrypted(&self, user: &MatrixUser, ids: &[&NetworkMessageId]) -> Vec<SeenEvent> {
        user.sync_until(Duration::from_secs(30), "the ghost's events, decrypted", || async {
            let events = user.read(&self.bob_room).await?;
            let found: Vec<SeenEvent> = ids
                .iter()
                .filter_map(|id| {
                    events
                        .iter()
                        .find(|e| e.event_id.as_ref().is_some_and(|e| e.as_str() == id.as_str()))
                        .cloned()
                })
                .collect();
            let all = found.len() == ids.len() && found.iter().all(|e| e.decryption == Decryption::Decrypted);
            Ok(all.then_some(found))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.bridge.synapse.appservice_log()))
    }

    /// The Megolm session id of each of the ghost's events, as the homeserver pushed them.
    async fn session_ids(&self, ids: &[&NetworkMessageId]) -> Vec<String> {
        let pushed = |id: &str| self.bridge.sink.events().into_iter().find(|(_, e)| e["event_id"] == id);
        self.bridge
            .wait_for("the ghost's events", |_| ids.iter().all(|id| pushed(id.as_str()).is_some()))
            .await;
        ids.iter()
            .map(|id| {
                let (_, event) = pushed(id.as_str()).unwrap();
                assert_eq!(event["type"], "m.room.encrypted", "{event}");
                assert_eq!(event["content"]["algorithm"], "m.megolm.v1.aes-sha2");
                event["content"]["session_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

async fn bob_on_matrix_sdk_decrypts_text_reply_edit_reaction_and_file_and_synapse_holds_no_plaintext(
    db: &TestDb,
) {
    let scene = scene(db).await;
    let words = "hello bob, this is sealed";
    let first = scene.text("m-1", words).await;
    let reply = scene
        .send(
            "m-2",
            EventKind::Message(
                Message::new(Content::Text(Text::plain("a sealed reply"))).replying_to(first.clone()),
            ),
        )
        .await;
    let edit = scene
        .send("m-3", EventKind::Edit(Edit { target: first.clone(), text: Text::plain("a sealed edit") }))
        .await;
    let reaction = scene
        .send(
            "m-4",
            EventKind::Reaction(Reaction { target: first.clone(), key: ReactionKey::new("🔒").unwrap() }),
        )
        .await;
    let bytes: Vec<u8> = (0..40_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let file = Attachment::inline("sealed-notes.bin", MimeType::octet_stream(), bytes.clone()).unwrap();
    let attachment = scene
        .send(
            "m-5",
            EventKind::Message(Message::new(Content::Attachment { attachment: file, caption: None })),
        )
        .await;
    // A retry of a job already sent (the same idempotency key) is the same event.
    assert_eq!(scene.text("m-1", words).await, first, "the homeserver kept the txn id of the ghost's device");

    let seen = scene.decrypted(&scene.bob, &[&first, &reply, &edit, &reaction, &attachment]).await;
    assert_eq!(seen[0].event_type, "m.room.message");
    assert_eq!(seen[0].body(), Some(words));
    assert_eq!(seen[1].body(), Some("a sealed reply"));
    assert_eq!(seen[1].content["m.relates_to"]["m.in_reply_to"]["event_id"], first.as_str());
    assert_eq!(seen[2].content["m.new_content"]["body"], "a sealed edit");
    assert_eq!(seen[2].content["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(seen[3].event_type, "m.reaction");
    assert_eq!(seen[3].content["m.relates_to"]["key"], "🔒");
    assert_eq!(seen[4].msgtype(), Some("m.file"));
    assert!(seen[4].content.get("url").is_none(), "an encrypted room gets `file`, not `url`");
    let opened = scene.bob.open_sealed_file(&seen[4].content["file"]).await.unwrap();
    assert_eq!(opened, bytes, "bob's client opens the file the ghost sealed");

    // The homeserver's database: ciphertext only; relations in the clear where the spec puts
    // them; one session for all five.
    let stored = scene.bridge.synapse.stored_events(scene.room.as_str()).await.unwrap();
    for secret in [words, "a sealed reply", "a sealed edit", "sealed-notes.bin", "🔒"] {
        assert!(!stored.iter().any(|json| json.contains(secret)), "`{secret}` in Synapse's database");
    }
    let sessions = scene.session_ids(&[&first, &reply, &edit, &reaction, &attachment]).await;
    assert!(sessions.iter().all(|s| *s == sessions[0]), "{sessions:?}");
    let (_, reaction_event) =
        scene.bridge.sink.events().into_iter().find(|(_, e)| e["event_id"] == reaction.as_str()).unwrap();
    assert_eq!(reaction_event["content"]["m.relates_to"]["rel_type"], "m.annotation", "in the clear");

    // Durable: the session and who holds it are in the node's database; nothing left to send.
    let ghost = scene.bridge.ghost("alice.eth");
    let row = scene.store.megolm_outbound(ghost.as_str(), scene.room.as_str()).await.unwrap().unwrap();
    assert_eq!(row.session_id, sessions[0]);
    let bob_device = scene.bob.device_id().unwrap();
    assert!(
        row.shared.iter().any(|(user, device, _)| user == "@bob:localhost" && device == bob_device.as_str()),
        "{:?}",
        row.shared
    );
    assert!(scene.store.megolm_pending(ghost.as_str(), scene.room.as_str()).await.unwrap().is_empty());
    scene.store.close().await;
}

async fn a_device_added_later_decrypts_what_follows_and_a_device_gone_rotates_the_session(db: &TestDb) {
    let scene = scene(db).await;
    let before = scene.text("d-1", "before the laptop").await;
    scene.decrypted(&scene.bob, &[&before]).await;

    let laptop = scene.credentials.login("bob's laptop").await.unwrap();
    // The kept list learns of the laptop from the transaction that announces it.
    scene.bobs_list_outdated().await;
    let after = scene.text("d-2", "after the laptop").await;
    let seen = scene.decrypted(&laptop, &[&after]).await;
    assert_eq!(seen[0].body(), Some("after the laptop"));
    assert_eq!(scene.decrypted(&scene.bob, &[&after]).await[0].body(), Some("after the laptop"));
    let [first_session, same] = scene.session_ids(&[&before, &after]).await.try_into().unwrap();
    assert_eq!(first_session, same, "a device added is given the key; nothing rotates");

    laptop.log_out().await.unwrap();
    scene.bobs_list_outdated().await;
    let gone = scene.text("d-3", "after the laptop left").await;
    assert_eq!(scene.decrypted(&scene.bob, &[&gone]).await[0].body(), Some("after the laptop left"));
    let [rotated] = scene.session_ids(&[&gone]).await.try_into().unwrap();
    assert_ne!(rotated, first_session, "a device gone makes a new session");
    scene.store.close().await;
}

async fn with_require_portals_open_encrypted_and_a_room_in_the_clear_is_refused(db: &TestDb) {
    let scene = scene(db).await;
    let connector = scene
        .bridge
        .connector()
        .with_devices(scene.bridge.devices.clone().unwrap())
        .requiring_encryption(true);
    let portals = connector.portals().unwrap();
    let alice = RemoteIdentity::new("alice.eth").unwrap();
    let bob = NetworkUserId::new("@bob:localhost").unwrap();
    let ghost = scene.bridge.ghost("alice.eth");

    let opened = portals.open_portal(&bob, &alice).await.unwrap();
    let opened = RoomId::parse(opened.as_str()).unwrap();
    assert_eq!(
        scene.bridge.client.room_encryption(&ghost, &opened).await.unwrap(),
        HomeserverEncryption::Encrypted { algorithm: "m.megolm.v1.aes-sha2".to_owned() },
        "a portal the bridge opens is encrypted from its first event"
    );
    let encrypted = ConversationId::new(scene.room.as_str()).unwrap();
    assert_eq!(portals.check_portal(&encrypted, &bob, &alice).await.unwrap(), PortalStatus::Live);

    let clear =
        scene.bob.create_dm(&ids::user_id(ghost.as_str()).unwrap(), RoomEncryption::Clear).await.unwrap();
    scene.bridge.client.join(&ghost, &RoomId::parse(clear.as_str()).unwrap()).await.unwrap();
    let clear = ConversationId::new(clear.as_str()).unwrap();
    assert_eq!(
        portals.check_portal(&clear, &bob, &alice).await.unwrap(),
        PortalStatus::Suspended { reason: CLEAR_NOT_BRIDGED.to_owned() }
    );
    let outbound = Outbound {
        conversation: clear,
        sender: alice,
        idempotency_key: IdempotencyKey::new("r-1").unwrap(),
        timestamp_ms: None,
        retry: false,
        payload: Message::new(Content::Text(Text::plain("not into a room in the clear"))),
    };
    assert_eq!(
        connector.send_message(&outbound).await,
        Err(ConnectorError::Unsupported(Unsupported::Blocked(CLEAR_NOT_BRIDGED.to_owned())))
    );
    scene.store.close().await;
}

async fn the_rooms_rotation_period_in_messages_makes_a_new_session(db: &TestDb) {
    let scene = scene(db).await;
    // bob (over plain HTTP this time) asks for a new session every two messages.
    let bob = scene.bridge.synapse.log_in("bob", &scene.credentials.password).await.unwrap();
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.encryption/", synapse::encode(scene.room.as_str()));
    let rotation = serde_json::json!({"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 2});
    bob.call(reqwest::Method::PUT, &path, Some(rotation)).await.unwrap();
    let sent =
        [scene.text("r-1", "one").await, scene.text("r-2", "two").await, scene.text("r-3", "three").await];
    let seen = scene.decrypted(&scene.bob, &sent.iter().collect::<Vec<_>>()).await;
    let bodies: Vec<_> = seen.iter().map(|e| e.body().unwrap_or_default()).collect();
    assert_eq!(bodies, ["one", "two", "three"]);
    let sessions = scene.session_ids(&sent.iter().collect::<Vec<_>>()).await;
    assert_eq!(sessions[0], sessions[1], "two messages per session");
    assert_ne!(sessions[1], sessions[2], "the third opens a new one");
    scene.store.close().await;
}

async fn a_member_who_leaves_makes_a_new_session(db: &TestDb) {
    let scene = scene(db).await;
    let password = scene.bridge.synapse.register_account("carol").await.unwrap();
    let carol =
        Credentials { homeserver: scene.bridge.synapse.url().to_owned(), user: "carol".to_owned(), password }
            .login("carol's phone")
            .await
            .unwrap();
    scene.bob.invite(&scene.bob_room, &carol.user_id().unwrap()).await.unwrap();
    carol.sync_once().await.unwrap();
    carol.join(&scene.bob_room).await.unwrap();

    let with_carol = scene.text("l-1", "carol is here").await;
    assert_eq!(scene.decrypted(&carol, &[&with_carol]).await[0].body(), Some("carol is here"));
    carol.leave(&scene.bob_room).await.unwrap();
    let after = scene.text("l-2", "carol has left").await;
    assert_eq!(scene.decrypted(&scene.bob, &[&with_carol, &after]).await[1].body(), Some("carol has left"));
    let sessions = scene.session_ids(&[&with_carol, &after]).await;
    assert_ne!(sessions[0], sessions[1], "what is said after carol left is not under a key she holds");
    scene.store.close().await;
}

async fn consecutive_sends_ask_for_device_lists_once_and_a_new_device_after_its_announcement(db: &TestDb) {
    let scene = scene(db).await;
    let sent =
        [scene.text("q-1", "one").await, scene.text("q-2", "two").await, scene.text("q-3", "three").await];
    let seen = scene.decrypted(&scene.bob, &sent.iter().collect::<Vec<_>>()).await;
    assert_eq!(
        seen.iter().map(|e| e.body().unwrap_or_default()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert_eq!(scene.queries(), 1, "the members' devices were asked for once, then read from the database");

    let laptop = scene.credentials.login("bob's laptop").await.unwrap();
    scene.bobs_list_outdated().await;
    assert_eq!(scene.queries(), 1, "a mark asks nothing by itself");
    let after = scene.text("q-4", "for the laptop too").await;
    assert_eq!(scene.queries(), 2, "bob's list asked for again after its change was announced");
    assert_eq!(scene.decrypted(&laptop, &[&after]).await[0].body(), Some("for the laptop too"));
    let more = scene.text("q-5", "and nothing asked").await;
    assert_eq!(scene.decrypted(&laptop, &[&more]).await[0].body(), Some("and nothing asked"));
    assert_eq!(scene.queries(), 2);
    scene.store.close().await;
}
