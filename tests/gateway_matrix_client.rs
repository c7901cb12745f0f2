//! Gateway mode with the reference Matrix client of `clients/matrix` (matrix-sdk, its own
//! crypto) as the Matrix user, end to end through the bridge node, a real Synapse and a chain
//! with our ENS contracts (docs/gateway.md sections 3, 5 and 6):
//!
//! 1. bob logs in with `dm3-matrix`'s library, opens a DM with alice's ghost and claims his
//!    name through the bot (`!dm3 claim`, answered in the room);
//! 2. alice, a DM3 user whose client is the SDK, writes to bob's name: the node carries her
//!    envelope sealed, and bob's client opens it with his own key and checks her signature;
//! 3. bob's client seals an answer for alice's delivery service and sends it into the room:
//!    the node checks it is bob's and posts it as it is; alice reads it;
//! 4. the node's database holds no key of bob's identity and no plaintext of either message.
//!
//! `tests/gateway_matrix.rs` runs the refusals (a replayed claim, a forgery, clear text) with
//! a client-server API user; this test is the path a person takes with the real client.
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

use std::time::Duration;

use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3_matrix_client::gateway::Dm3Keys;
use dm3_matrix_client::gateway::envelopes::{OpenedMessage, Recipient};
use dm3_matrix_client::{Credentials, GatewayUser, RoomEncryption, ids};
use dm3_world::{ALICE, DS_B, Dm3World};
use support::TestDb;

on_both_backends!(a_person_with_the_matrix_client_claims_their_name_and_talks_sealed_both_ways);

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(60);

/// The envelope of the room whose message says `text`, opened by `user`, waiting for it.
async fn opened(user: &GatewayUser, room: &ids::RoomId, text: &str) -> OpenedMessage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        user.matrix().sync_once().await.unwrap();
        let read = user.read_envelopes(room).await.unwrap();
        if let Some(found) = read
            .into_iter()
            .find_map(|envelope| envelope.opened.ok().filter(|opened| opened.message.text() == Some(text)))
        {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no envelope saying {text:?} opened within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// alice as a gateway user's client finds her: her signed profile and her delivery service.
fn alice(world: &Dm3World) -> Recipient {
    let ds = DeliveryServiceProfile::new(
        world.ds_b.encryption_public_key(),
        world.ds_b.signing_public_key(),
        world.ds_b.base.clone(),
    );
    Recipient {
        name: EnsName::parse(ALICE).unwrap(),
        profile: world.alice.profile.clone(),
        delivery_services: vec![(EnsName::parse(DS_B).unwrap(), ds)],
    }
}

async fn a_person_with_the_matrix_client_claims_their_name_and_talks_sealed_both_ways(db: &TestDb) {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = bridged_matrix::start_bridge(&world, Some(db.url.clone())).await;
    world.point_parent_at(&bridge).await;

    // 1. bob's client: a login, a DM with alice's ghost, and the claim in it.
    let password = synapse.register_account("bob").await.unwrap();
    let credentials = Credentials { homeserver: synapse.url().to_owned(), user: "bob".into(), password };
    let bob = GatewayUser::new(credentials.login("bob's dm3-matrix").await.unwrap(), Dm3Keys::generate());
    let ghost = ids::user_id(&format!("@_dm3_{ALICE}:{}", synapse::SERVER_NAME)).unwrap();
    let room = bob.matrix().create_dm(&ghost, RoomEncryption::Clear).await.unwrap();
    bridged_matrix::wait_until("the ghost joins", &synapse, || async {
        bob.matrix().sync_once().await.unwrap();
        bob.matrix().joined_members(&room).await.unwrap().contains(&ghost)
    })
    .await;
    let outcome = bob.claim(&room, WAIT).await.unwrap();
    let bob_name = outcome.challenge.name.clone();
    assert!(
        outcome.reply.starts_with(&format!("Done: {bob_name} now holds its own keys")),
        "{}",
        outcome.reply
    );

    // 2. DM3 → Matrix: alice's client resolves bob's claimed profile and seals to his key.
    let fresh = world.directory();
    let to_bob = "for bob's own client only";
    let sent = world.alice.send(&fresh, world.alice.builder(bob_name.as_str()).text(to_bob, None)).await;
    let received = opened(&bob, &room, to_bob).await;
    assert_eq!(received.hash, sent);
    assert_eq!(received.message.from(), ALICE);
    received.verify(&world.alice.profile).expect("signed by alice's own key");

    // 3. Matrix → DM3: bob's client seals for alice's delivery service; the node carries it.
    let to_alice = "sealed by bob's matrix-sdk client";
    bob.send_text(&room, &bob_name, &alice(&world), to_alice).await.unwrap();
    let arrived = world.alice.wait_for(&world.ds_b, &fresh, bob_name.as_str(), 1).await;
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0].message.text(), Some(to_alice));

    // 4. Nobody in the middle could read either: no key, no plaintext on the node.
    let store = bridge.node.store();
    assert!(store.identity_keys(&bob_name.as_str().parse().unwrap()).await.unwrap().is_empty());
    let database = db.all_text().await;
    for plaintext in [to_bob, to_alice] {
        assert!(!database.contains(plaintext), "the node's database holds {plaintext:?}");
    }
    bridge.node.shutdown().await.unwrap();
}
