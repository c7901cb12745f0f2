//! The matrix-sdk client of `clients/matrix` (crate `dm3-matrix-client`) on a real Synapse:
//! users with their own Olm/Megolm (matrix-sdk-crypto), as the encrypted-room tests use them
//! and as a gateway user runs them (docs/gateway.md, "The client").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/synapse.rs"]
mod synapse;

use std::time::Duration;

use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, Decryption, MatrixUser, RoomEncryption, SeenEvent};
use synapse::Synapse;

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
