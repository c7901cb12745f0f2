//! A DM3 user writes first to a Matrix user who never used the bridge (issue #19, item 1;
//! docs/engine.md "First contact", docs/names.md "Reachable before first use"), end to end with
//! nothing faked: a real Synapse, a chain with our ENS contracts whose resolver asks the
//! bridge's CCIP-read gateway, and alice, a DM3 user whose client is the SDK.
//!
//! - carol never used the bridge: her name resolves on demand with nothing written; alice's
//!   first message invites her, at most `max_held_until_consent` messages wait for her and the
//!   next is refused with a DM3 reply; she accepts and reads them all, and then everything
//!   flows. Her identity row is written at the first message, with the wallet the gateway had
//!   published.
//! - dave rejects the invite: alice is told in a DM3 reply, and her next message is refused.
//! - nobody does not exist on the homeserver: alice's message comes back as a DM3 reply, and
//!   no identity is stored.
//! - a user of another server is not reachable: their name resolves to nothing.
//! - a flood of lookups for names nobody uses writes nothing and keeps at most
//!   `on_demand::MAX_DERIVED` derived identities in memory.
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

use bridged_matrix::{start_bridge_with, wait_for_event, wait_until};
use dm3::ens::EnsName;
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::identities::on_demand::MAX_DERIVED;
use dm3_bridge::identities::{NameScheme, NetworkUserId};
use dm3_bridge::store::{Consent, PortalState};
use dm3_bridge_connector::{ConversationId, NetworkId};
use dm3_world::{ALICE, Dm3World, PARENT};
use reqwest::Method;
use serde_json::{Value, json};
use support::TestDb;
use support::bridge::ADMIN_TOKEN;
use support::node::TestNode;
use synapse::{MatrixUser, SERVER_NAME, Synapse, encode};

/// Messages held for someone who has not accepted yet, in these tests.
const HELD: u32 = 3;

fn name_of(user_id: &str) -> String {
    let scheme = NameScheme::new(PARENT, "tg", "mx").unwrap();
    let user = NetworkUserId::parse(dm3::network::Network::Matrix, user_id).unwrap();
    scheme.name_for(&user).unwrap().1.to_string()
}

/// The identity row of `user_id`, if the bridge stored one (the admin API).
async fn stored_identity(bridge: &TestNode, user_id: &str) -> Option<Value> {
    let url = bridge.url(&format!("/admin/identities/matrix:{user_id}"));
    let response = bridge.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(response.status().is_success(), "{}", response.status());
    Some(response.json().await.unwrap())
}

async fn lookup(bridge: &TestNode, user_id: &str) -> Value {
    let url = bridge.url(&format!("/names/lookup?network=matrix&user={}", encode(user_id)));
    let response = bridge.client.get(&url).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// The texts alice holds from `from`, oldest first, once there are `count`.
async fn alice_texts(world: &Dm3World, from: &str, count: usize) -> Vec<String> {
    let mut received = world.alice.wait_for(&world.ds_b, &world.directory(), from, count).await;
    received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
    received.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect()
}

/// The room of the portal alice's first message to `user` (named `name`) opened, once it is
/// open; `user` is invited to it and to nothing else. (Synapse caches a `/sync` answer for a
/// while, so the invites are asked once the portal exists, not polled.)
async fn invite_of(bridge: &TestNode, synapse: &Synapse, user: &MatrixUser, name: &str) -> String {
    let (local, remote) = (EnsName::parse(name).unwrap(), EnsName::parse(ALICE).unwrap());
    let store = bridge.node.store();
    wait_until("the portal opens", synapse, || async {
        store.portal_by_names(&matrix(), &local, &remote).await.unwrap().is_some()
    })
    .await;
    let portal = store.portal_by_names(&matrix(), &local, &remote).await.unwrap().unwrap();
    let room = portal.conversation.to_string();
    assert_eq!(user.invited_rooms().await.unwrap(), vec![room.clone()], "invited by the ghost");
    room
}

fn matrix() -> NetworkId {
    NetworkId::new("matrix").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm3_user_writes_first_to_matrix_users_on_sqlite() {
    first_contact(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm3_user_writes_first_to_matrix_users_on_postgres() {
    let db = TestDb::postgres().await;
    first_contact(Some(db.url.clone())).await;
}

async fn first_contact(database: Option<DatabaseUrl>) {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = start_bridge_with(&world, database, |config| {
        config.engine.max_held_until_consent = HELD;
        // The flood below comes from one client; the bound under test is the storage's.
        config.rate_limits.names_lookup_per_minute = 1_000_000;
        config.rate_limits.names_lookup_burst = 100_000;
    })
    .await;
    world.point_parent_at(&bridge).await;
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    let directory = world.directory();
    let alice = &world.alice;
    let store = bridge.node.store();
    let identities_before = store.count_identities().await.unwrap();

    // carol never used the bridge: her name resolves, on demand, and nothing is written.
    let carol = synapse.register_user("carol").await.unwrap();
    let carol_name = name_of(&carol.user_id);
    let found = lookup(&bridge, &carol.user_id).await;
    assert_eq!((found["name"].as_str(), found["exists"].as_bool()), (Some(carol_name.as_str()), Some(true)));
    let published = directory.user_profile(&EnsName::parse(&carol_name).unwrap()).await.unwrap();
    assert!(published.is_some(), "carol's profile resolves (and verifies) through the chain and the gateway");
    let published_address = directory.address(&EnsName::parse(&carol_name).unwrap()).await.unwrap().unwrap();
    assert!(stored_identity(&bridge, &carol.user_id).await.is_none(), "a lookup writes nothing");

    // alice writes first: carol is invited, and HELD messages wait for her; the next is refused.
    for n in 1..=HELD + 1 {
        alice.send(&directory, alice.builder(&carol_name).text(&format!("hello carol {n}"), None)).await;
    }
    let room = invite_of(&bridge, &synapse, &carol, &carol_name).await;
    let told = alice_texts(&world, &carol_name, 1).await;
    assert!(told[0].contains("has not accepted your invitation yet"), "{told:?}");
    assert!(told[0].contains(&format!("at most {HELD}")), "{told:?}");
    let portal = store.portal_by_conversation(&matrix(), &ConversationId::new(room.as_str()).unwrap()).await;
    let portal = portal.unwrap().expect("the first message opened the portal");
    assert!(matches!(portal.consent, Consent::AwaitingSince(_)), "{portal:?}");
    // Stored at the first message, with the very wallet the gateway published.
    let row =
        stored_identity(&bridge, &carol.user_id).await.expect("the first message stores carol's identity");
    assert_eq!(row["name"], json!(carol_name));
    assert_eq!(row["address"].as_str().unwrap().to_lowercase(), published_address.to_string().to_lowercase());
    assert_eq!(row["keyVersion"], json!(1), "{row}");

    // carol accepts: the held messages are there for her, in order, and the next one arrives.
    carol.join(&room).await.unwrap();
    wait_until("consent recorded", &synapse, || async {
        let found = store.portal(portal.id).await.unwrap().unwrap();
        found.consent == Consent::Given
    })
    .await;
    alice.send(&directory, alice.builder(&carol_name).text("after you joined", None)).await;
    wait_for_event(&synapse, &carol, &room, |e| e["content"]["body"] == "after you joined").await;
    let bodies = carol.bodies_from(&room, &ghost).await.unwrap();
    let expected: Vec<String> =
        (1..=HELD).map(|n| format!("hello carol {n}")).chain(["after you joined".to_owned()]).collect();
    assert_eq!(bodies, expected, "the held messages, once each and in order, then the new one");

    // dave rejects the invite: alice is told, and her next message is refused at submit with the
    // reason (-32012, as for any suspended portal: docs/relay.md, "Block and rate limits").
    let dave = synapse.register_user("dave").await.unwrap();
    let dave_name = name_of(&dave.user_id);
    alice.send(&directory, alice.builder(&dave_name).text("hello dave", None)).await;
    let dave_room = invite_of(&bridge, &synapse, &dave, &dave_name).await;
    let leave = format!("/_matrix/client/v3/rooms/{}/leave", encode(&dave_room));
    dave.call(Method::POST, &leave, Some(json!({}))).await.unwrap();
    let told = alice_texts(&world, &dave_name, 1).await;
    assert!(told[0].contains("declined your invitation"), "{told:?}");
    let route = alice.route(&directory, &dave_name).await;
    let again = alice.sign(alice.builder(&dave_name).text("are you sure?", None));
    let refusal =
        alice.try_submit(&route, &again).await.expect_err("a declined invitation refuses at submit");
    assert!(
        refusal.contains("400") && refusal.contains("-32012") && refusal.contains("declined"),
        "{refusal}"
    );
    // No second invite: the pair's portal is still the declined room, suspended with the reason.
    let dave_portal = store
        .portal_by_names(&matrix(), &EnsName::parse(&dave_name).unwrap(), &EnsName::parse(ALICE).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dave_portal.conversation.as_str(), dave_room);
    assert!(
        matches!(&dave_portal.state, PortalState::Suspended { reason } if reason.contains("declined")),
        "{dave_portal:?}"
    );

    // nobody does not exist: alice's message comes back to her, and nothing is stored.
    let nobody = format!("@nobody:{SERVER_NAME}");
    let nobody_name = name_of(&nobody);
    alice.send(&directory, alice.builder(&nobody_name).text("anyone there?", None)).await;
    let told = alice_texts(&world, &nobody_name, 1).await;
    assert!(told[0].contains(&format!("{nobody} does not exist on Matrix")), "{told:?}");
    assert!(stored_identity(&bridge, &nobody).await.is_none(), "an unknown user gets no identity row");

    // Users of other servers are not reachable (the default): their names resolve to nothing.
    let stranger = "@eve:elsewhere.example";
    assert_eq!(lookup(&bridge, stranger).await["exists"], json!(false));
    let stranger_name = EnsName::parse(&name_of(stranger)).unwrap();
    assert_eq!(directory.address(&stranger_name).await.unwrap(), None);

    // A flood of lookups of names nobody uses: answered, and nothing stored; the derived
    // identities held in memory stay within their bound.
    let flood = MAX_DERIVED + 100;
    let names = bridge.node.names();
    let started = std::time::Instant::now();
    for n in 0..flood {
        let user_id = format!("@unused{n}:{SERVER_NAME}");
        let name = EnsName::parse(&name_of(&user_id)).unwrap();
        assert!(names.local_names.is_enabled_identity(&name).await.unwrap());
        assert!(names.vault.derived_in_memory() <= MAX_DERIVED);
    }
    // The figure of docs/benchmarks.md, "On-demand names" (the test profile's build).
    let elapsed = started.elapsed();
    eprintln!(
        "{flood} lookups of unused names in {elapsed:?}: {:.0}/s",
        flood as f64 / elapsed.as_secs_f64()
    );
    for n in 0..50 {
        assert_eq!(lookup(&bridge, &format!("@flood{n}:{SERVER_NAME}")).await["exists"], json!(true));
    }
    // carol and dave were stored by their first messages; nobody and the flood were not.
    assert_eq!(store.count_identities().await.unwrap(), identities_before + 2);
}
