//! Portals follow their rooms (docs/engine.md, "Portal lifecycle"), end to end with nothing
//! faked: a real Synapse, the bridge node, and alice, a DM3 user whose client is the SDK.
//!
//! Each scenario is what a Matrix user does to a DM with a ghost, and what both people see:
//! - a DM that gains a third member, is opened to the public or is encrypted stops carrying
//!   messages at once (nothing posted meanwhile; the room is told why; alice's submit is refused
//!   with -32012 and the reason, docs/relay.md "Block and rate limits"), and carries them again
//!   when it is a DM between the two again;
//! - a room that never was a DM records nothing, and the user's real DM becomes the portal;
//! - a user who left the DM refuses alice's messages (-32012, "… left this room") until they open
//!   a new DM with her ghost;
//! - a user who left the DM and opens a new one, or who upgrades the room, takes the portal
//!   along, with its message map.
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

use bridged_matrix::{
    Bridged, bridged, identity_name, matrix, members, portal_of, put_state, start_bridge, wait_for_event,
    wait_for_portal, wait_until,
};
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::store::{Portal, PortalState};
use dm3_bridge_connector::NetworkMessageId;
use dm3_world::{ALICE, Dm3World};
use reqwest::Method;
use serde_json::{Value, json};
use support::TestDb;
use synapse::{MatrixUser, SERVER_NAME, Synapse, encode};

fn is_suspended(portal: &Portal) -> bool {
    matches!(portal.state, PortalState::Suspended { .. })
}

/// The bodies of the ghost's messages and notices in `room`, oldest first.
async fn from_ghost(user: &MatrixUser, room: &str, ghost: &str) -> Vec<String> {
    let timeline = user.timeline(room).await.unwrap();
    timeline
        .iter()
        .filter(|e| e["sender"] == ghost && e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits for a text from the ghost in `room` that contains `part`.
async fn ghost_says(synapse: &Synapse, user: &MatrixUser, room: &str, ghost: &str, part: &str) -> Value {
    wait_for_event(synapse, user, room, |e| {
        e["sender"] == ghost && e["content"]["body"].as_str().is_some_and(|body| body.contains(part))
    })
    .await
}

async fn room_call(user: &MatrixUser, room: &str, action: &str, body: Value) -> Value {
    let path = format!("/_matrix/client/v3/rooms/{}/{action}", encode(room));
    user.call(Method::POST, &path, Some(body)).await.unwrap()
}

/// The texts alice holds from `from`, oldest first.
/// alice writes `text` to `to`; the relay's refusal (it must refuse: the portal is suspended).
async fn refused(world: &Dm3World, to: &str, text: &str) -> String {
    let alice = &world.alice;
    let route = alice.route(&world.directory(), to).await;
    let message = alice.sign(alice.builder(to).text(text, None));
    let refusal = alice.try_submit(&route, &message).await.expect_err("a suspended portal refuses at submit");
    assert!(refusal.contains("400") && refusal.contains("-32012"), "{refusal}");
    refusal
}

async fn alice_texts(world: &Dm3World, from: &str, count: usize) -> Vec<String> {
    let mut received = world.alice.wait_for(&world.ds_b, &world.directory(), from, count).await;
    received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
    received.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_that_stops_being_one_is_paused_until_it_is_one_again_on_sqlite() {
    paused_and_resumed(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_that_stops_being_one_is_paused_until_it_is_one_again_on_postgres() {
    let db = TestDb::postgres().await;
    paused_and_resumed(Some(db.url.clone())).await;
}

async fn paused_and_resumed(database: Option<DatabaseUrl>) {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(database).await;
    let directory = world.directory();
    let alice = &world.alice;
    alice.send(&directory, alice.builder(&bob_name).text("one", None)).await;
    ghost_says(&synapse, &bob, &room, &ghost, "one").await;

    // bob invites eve, who joins: the ghost says why it stops, at once.
    let eve = synapse.register_user("eve").await.unwrap();
    room_call(&bob, &room, "invite", json!({"user_id": eve.user_id})).await;
    wait_for_portal(&bridge, &synapse, &room, "the portal is suspended", is_suspended).await;
    eve.join(&room).await.unwrap();
    let paused = ghost_says(&synapse, &bob, &room, &ghost, "paused").await;
    assert!(paused["content"]["body"].as_str().unwrap().contains(&eve.user_id), "{paused}");
    assert_eq!(paused["content"]["msgtype"], "m.notice");

    // alice's next message is refused at submit, saying why; nothing is queued for the room.
    let told = refused(&world, &bob_name, "two: for bob only").await;
    assert!(told.contains("cannot be reached") && told.contains(&eve.user_id), "{told}");
    // bob's message meanwhile goes nowhere, and he is told so.
    bob.send_text(&room, "while-eve", "said while eve is here").await.unwrap();
    ghost_says(&synapse, &bob, &room, &ghost, "messages here are paused").await;

    // eve leaves: the room is a DM of the two again.
    room_call(&eve, &room, "leave", json!({})).await;
    wait_for_portal(&bridge, &synapse, &room, "the portal is live again", |p| p.state.is_live()).await;
    ghost_says(&synapse, &bob, &room, &ghost, "carried again").await;
    alice.send(&directory, alice.builder(&bob_name).text("three", None)).await;
    ghost_says(&synapse, &bob, &room, &ghost, "three").await;

    // A room anyone may join is not a DM either; invite-only again, it is.
    put_state(&bob, &room, "m.room.join_rules", json!({"join_rule": "public"})).await;
    wait_for_portal(
        &bridge,
        &synapse,
        &room,
        "suspended when public",
        |p| matches!(&p.state, PortalState::Suspended { reason } if reason.contains("`public`")),
    )
    .await;
    put_state(&bob, &room, "m.room.join_rules", json!({"join_rule": "invite"})).await;
    wait_for_portal(&bridge, &synapse, &room, "live when invite-only", |p| p.state.is_live()).await;

    // Encryption switched on: the portal stays live and the ghost goes on encrypted, never in
    // the clear (tests/matrix_encrypted_rooms.rs and tests/matrix_megolm_send.rs have the rest).
    put_state(&bob, &room, "m.room.encryption", json!({"algorithm": "m.megolm.v1.aes-sha2"})).await;
    alice
        .send(&directory, alice.builder(&bob_name).text("four: must not be posted in the clear", None))
        .await;
    wait_for_event(&synapse, &bob, &room, |e| e["sender"] == ghost && e["type"] == "m.room.encrypted").await;
    assert!(portal_of(&bridge, &room).await.unwrap().state.is_live(), "an encrypted DM is carried");

    let texts = from_ghost(&bob, &room, &ghost).await;
    assert!(texts.iter().all(|t| !t.starts_with("two") && !t.starts_with("four")), "{texts:#?}");
    assert_eq!(texts.iter().filter(|t| ["one", "three"].contains(&t.as_str())).count(), 2, "{texts:#?}");
    // Of bob's messages, alice got none said while eve was there.
    let from_bob = alice.incoming(&world.ds_b, &directory, &bob_name).await;
    assert!(from_bob.iter().all(|r| r.message.text() != Some("said while eve is here")));
    bridge.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_room_records_nothing_and_a_new_dm_takes_the_portal_with_its_map_on_sqlite() {
    group_then_new_dm(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_room_records_nothing_and_a_new_dm_takes_the_portal_with_its_map_on_postgres() {
    let db = TestDb::postgres().await;
    group_then_new_dm(Some(db.url.clone())).await;
}

async fn group_then_new_dm(database: Option<DatabaseUrl>) {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = start_bridge(&world, database).await;
    world.point_parent_at(&bridge).await;
    let directory = world.directory();
    let alice = &world.alice;
    let bob = synapse.register_user("bob").await.unwrap();
    let carol = synapse.register_user("carol").await.unwrap();
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");

    // bob's first contact is from a room with carol in it: declined, and nothing recorded.
    let group = bob.create_room(json!({"invite": [carol.user_id, ghost]})).await.unwrap();
    ghost_says(&synapse, &bob, &group, &ghost, "only bridges direct chats").await;
    wait_until("the ghost leaves the group", &synapse, || async {
        !members(&bob, &group).await.contains(&ghost)
    })
    .await;
    assert!(bridge.node.store().list_portals(None, 0, 10).await.unwrap().is_empty());

    // bob's real DM is the portal.
    let dm = bob
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    wait_for_portal(&bridge, &synapse, &dm, "the DM is the portal", |p| p.state.is_live()).await;
    let bob_name = identity_name(&bridge, &bob.user_id).await;
    let hello = bob.send_text(&dm, "h1", "hello alice").await.unwrap();
    assert_eq!(alice_texts(&world, &bob_name, 1).await, ["hello alice"]);
    let first = portal_of(&bridge, &dm).await.unwrap();

    // bob leaves it: suspended, and alice's next message is refused at submit with the block's
    // code, saying he left; nothing is queued for the room he left.
    room_call(&bob, &dm, "leave", json!({})).await;
    wait_for_portal(&bridge, &synapse, &dm, "suspended when bob left", is_suspended).await;
    let told = refused(&world, &bob_name, "are you there?").await;
    assert!(told.contains("left this room"), "{told}");

    // bob opens a new DM with the ghost: the same portal moves there, with its message map.
    let dm2 = bob
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    wait_for_portal(&bridge, &synapse, &dm2, "the portal moved to the new DM", |p| p.state.is_live()).await;
    let moved = portal_of(&bridge, &dm2).await.unwrap();
    assert_eq!(
        (moved.id, &moved.local_name, &moved.remote_name),
        (first.id, &first.local_name, &first.remote_name)
    );
    assert!(portal_of(&bridge, &dm).await.is_none());
    let mapped = bridge
        .node
        .store()
        .message_by_network_id(&matrix(), &NetworkMessageId::new(hello.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapped.conversation.as_str(), dm2, "the message map moved with the portal");
    alice.send(&directory, alice.builder(&bob_name).text("welcome back", None)).await;
    ghost_says(&synapse, &bob, &dm2, &ghost, "welcome back").await;
    bob.send_text(&dm2, "h2", "thanks").await.unwrap();
    assert_eq!(alice_texts(&world, &bob_name, 2).await[1], "thanks");

    // An admin unlinks it: the ghost says so and leaves; nothing of the pair is bridged there.
    let unlinked = bridge
        .client
        .delete(bridge.url(&format!("/admin/portals/{}", moved.id)))
        .bearer_auth(support::bridge::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unlinked.status().as_u16(), 200);
    ghost_says(&synapse, &bob, &dm2, &ghost, "unlinked").await;
    wait_until("the ghost leaves the unlinked room", &synapse, || async {
        !members(&bob, &dm2).await.contains(&ghost)
    })
    .await;
    assert!(portal_of(&bridge, &dm2).await.is_none());
    bridge.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_room_takes_the_portal_along_on_sqlite() {
    upgraded(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_room_takes_the_portal_along_on_postgres() {
    let db = TestDb::postgres().await;
    upgraded(Some(db.url.clone())).await;
}

async fn upgraded(database: Option<DatabaseUrl>) {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(database).await;
    let directory = world.directory();
    let alice = &world.alice;
    alice.send(&directory, alice.builder(&bob_name).text("before the upgrade", None)).await;
    ghost_says(&synapse, &bob, &room, &ghost, "before the upgrade").await;
    let portal = portal_of(&bridge, &room).await.unwrap();

    let upgraded = room_call(&bob, &room, "upgrade", json!({"new_version": "10"})).await;
    let successor = upgraded["replacement_room"].as_str().unwrap().to_owned();
    // As Element does when it upgrades a private room: the members are invited along.
    room_call(&bob, &successor, "invite", json!({"user_id": ghost})).await;
    wait_for_portal(&bridge, &synapse, &successor, "the portal follows the upgrade", |p| p.state.is_live())
        .await;
    assert_eq!(portal_of(&bridge, &successor).await.unwrap().id, portal.id);
    wait_until("the ghost leaves the old room", &synapse, || async {
        !members(&bob, &room).await.contains(&ghost)
    })
    .await;

    alice.send(&directory, alice.builder(&bob_name).text("after the upgrade", None)).await;
    ghost_says(&synapse, &bob, &successor, &ghost, "after the upgrade").await;
    bob.send_text(&successor, "u1", "from the new room").await.unwrap();
    assert_eq!(alice_texts(&world, &bob_name, 1).await, ["from the new room"]);
    bridge.node.shutdown().await.unwrap();
}
