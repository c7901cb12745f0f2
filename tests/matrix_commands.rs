//! Issue #19, item 4 on Matrix: `!dm3 block`, `!dm3 unblock` and `!dm3 help` in a portal room
//! (docs/engine.md, "Commands"), end to end with nothing faked: a real Synapse, a chain with our
//! ENS contracts, and carol, a DM3 user whose client is the reference npm libraries
//! (`interop/ds-client.js`), on SQLite and PostgreSQL (the block is a row).
//!
//! bob has a DM with carol's ghost. While Synapse is down a message of carol's waits in the
//! inbox; bob blocks her with `!dm3 block` once it is back, and the ghost says so in a notice.
//! The waiting message is dropped (neither posted nor reported), carol's next submit is refused
//! with 400 / -32012. eve, whom bob invited in, sends `!dm3 unblock`: refused with a notice,
//! and carol stays blocked. bob's `!dm3 unblock` lets her next message through, and the old
//! `!dm3 block` pushed again by the homeserver does not block her again. bob's commands
//! never reach carol: her libraries fetch exactly the one message bob wrote.
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

use std::time::{Duration, Instant};

use bridged_matrix::{identity_name, open_dm, start_bridge, wait_for_event, wait_until};
use dm3::ens::EnsName;
use dm3_bridge::store::{JobState, PortalState, QueueName, Store};
use dm3_bridge_connector::NetworkId;
use dm3_world::Dm3World;
use reqwest::Method;
use serde_json::{Value, json};
use support::TestDb;
use support::js::JsProcess;
use synapse::{MatrixUser, SERVER_NAME, Synapse, encode};

const CAROL: &str = "carol.test.eth";

on_both_backends!(block_in_a_matrix_portal_refuses_the_sender_at_submit_and_unblock_lets_them_through);

/// The notice the ghost posts after `after` (an event id of the room), waiting for it.
async fn notice_after(synapse: &Synapse, user: &MatrixUser, room: &str, ghost: &str, after: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let timeline = user.timeline(room).await.unwrap();
        let start = timeline.iter().position(|e| e["event_id"] == after).map_or(0, |i| i + 1);
        let notice = timeline[start..]
            .iter()
            .find(|e| e["sender"] == ghost && e["content"]["msgtype"] == "m.notice")
            .and_then(|e| e["content"]["body"].as_str());
        if let Some(body) = notice {
            return body.to_owned();
        }
        assert!(Instant::now() < deadline, "no notice after {after} within 60 s\n{}", synapse.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The texts of the ghost's messages (not its notices) in `room`, oldest first.
async fn ghost_texts(user: &MatrixUser, room: &str, ghost: &str) -> Vec<String> {
    let timeline = user.timeline(room).await.unwrap();
    timeline
        .iter()
        .filter(|e| e["sender"] == ghost && e["content"]["msgtype"] == "m.text")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn is_blocked(store: &Store, identity: &str, sender: &str) -> bool {
    store.is_blocked(&EnsName::parse(identity).unwrap(), &EnsName::parse(sender).unwrap()).await.unwrap()
}

async fn block_in_a_matrix_portal_refuses_the_sender_at_submit_and_unblock_lets_them_through(db: &TestDb) {
    let world = Dm3World::start(None).await;
    let (bridge, mut synapse) = start_bridge(&world, Some(db.url.clone())).await;
    world.point_parent_at(&bridge).await;
    let store = bridge.node.store().clone();

    // carol's client is the reference libraries: her profile on chain, her session at node B.
    let mut js = JsProcess::spawn("ds-client.js").await;
    let (carol, carol_token) = world.npm_user(&mut js, CAROL).await;

    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_{CAROL}:{SERVER_NAME}");
    let room = open_dm(&synapse, &bob, &ghost).await;
    let bob_name = identity_name(&bridge, &bob.user_id).await;
    let bob_profile = world.directory().user_profile(&bob_name.parse().unwrap()).await.unwrap().unwrap();
    let bob_keys = bob_profile.profile.profile();
    let submit = |text: &str| {
        json!({
            "url": bridge.base,
            "from": {"ensName": CAROL, "signingPrivateKey": carol["keys"]["signing"]["privateKey"]},
            "to": {"ensName": bob_name, "publicEncryptionKey": bob_keys.public_encryption_key()},
            "dsPublicEncryptionKey": bridge.encryption_public_key(),
            "text": text,
        })
    };
    let answer = js.call("submit", submit("before the block")).await;
    assert_eq!(answer["status"], 200, "{answer}");
    wait_for_event(&synapse, &bob, &room, |e| e["content"]["body"] == "before the block").await;

    // In a portal a command is about its DM3 user: another name is refused, nothing changes.
    let other = bob.send_text(&room, "c0", "!dm3 block alice.test.eth").await.unwrap();
    let told = notice_after(&synapse, &bob, &room, &ghost, &other).await;
    assert!(told.contains("takes no other name: nothing changed"), "{told}");
    assert!(!is_blocked(&store, &bob_name, CAROL).await);
    assert!(!is_blocked(&store, &bob_name, "alice.test.eth").await);

    // Synapse is down: carol's next message waits in the inbox until its retry is far enough
    // off for bob's block to come first.
    synapse.stop().await.unwrap();
    let answer = js.call("submit", submit("waiting before the block")).await;
    assert_eq!(answer["status"], 200, "accepted before the block: {answer}");
    let key = format!("{bob_name}:{}", answer["messageHash"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    let waiting = loop {
        let job = store.get_job(QueueName::Inbox, &key).await.unwrap().expect("the waiting job");
        let far_off = job.next_attempt_at_ms > dm3_bridge::clock::now_ms() + 25_000;
        if job.state == JobState::Pending && job.lease_until_ms.is_none() && far_off {
            break job;
        }
        assert!(Instant::now() < deadline, "the waiting job's retry never got 25 s away: {job:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    synapse.start_again().await.unwrap();

    let block = bob.send_text(&room, "c1", "!dm3 block").await.unwrap();
    let told = notice_after(&synapse, &bob, &room, &ghost, &block).await;
    assert!(told.starts_with(&format!("{CAROL} is blocked")), "{told}");
    assert!(told.contains("!dm3 unblock"), "{told}");
    assert!(is_blocked(&store, &bob_name, CAROL).await);
    let job = store.get_job(QueueName::Inbox, &key).await.unwrap().unwrap();
    assert_eq!(job.attempts, waiting.attempts, "the waiting message did not run before the block");

    let answer = js.call("submit", submit("after the block")).await;
    let refusal = answer.to_string();
    assert_eq!(answer["status"], 400, "{answer}");
    assert!(refusal.contains("-32012") && refusal.contains("has blocked"), "{refusal}");

    // eve, another member of the room, cannot lift the block (the room stops being a DM while
    // she is in it, and is one again when she leaves).
    let eve = synapse.register_user("eve").await.unwrap();
    let invite = format!("/_matrix/client/v3/rooms/{}/invite", encode(&room));
    bob.call(Method::POST, &invite, Some(json!({"user_id": eve.user_id}))).await.unwrap();
    eve.join(&room).await.unwrap();
    let forged = eve.send_text(&room, "e1", "!dm3 unblock").await.unwrap();
    let told = notice_after(&synapse, &bob, &room, &ghost, &forged).await;
    assert!(told.starts_with(&format!("Only {} can give the bridge commands", bob.user_id)), "{told}");
    assert!(is_blocked(&store, &bob_name, CAROL).await, "eve's command changed nothing");
    let leave = format!("/_matrix/client/v3/rooms/{}/leave", encode(&room));
    eve.call(Method::POST, &leave, Some(json!({}))).await.unwrap();
    let answer = js.call("submit", submit("after eve's unblock")).await;
    assert!(answer.to_string().contains("has blocked"), "still blocked: {answer}");

    // The waiting message's turn has come (its retry was at most about a minute off): dropped.
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.get_job(QueueName::Inbox, &key).await.unwrap().unwrap().state != JobState::Done {
        assert!(Instant::now() < deadline, "the waiting message was never handled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let help = bob.send_text(&room, "c2", "!dm3 help").await.unwrap();
    let told = notice_after(&synapse, &bob, &room, &ghost, &help).await;
    for command in ["!dm3 block", "!dm3 unblock", "!dm3 help"] {
        assert!(told.contains(command), "{told}");
    }
    let unblock = bob.send_text(&room, "c3", "!DM3 unblock").await.unwrap();
    let told = notice_after(&synapse, &bob, &room, &ghost, &unblock).await;
    assert!(told.starts_with(&format!("{CAROL} is not blocked")), "{told}");
    assert!(!is_blocked(&store, &bob_name, CAROL).await);

    // A replay: the homeserver pushes the old `!dm3 block` again in a new transaction. It is the
    // same command (its event id), so it is not carried out twice: carol stays unblocked.
    let path = format!("/_matrix/client/v3/rooms/{}/event/{}", encode(&room), encode(&block));
    let event = bob.call(Method::GET, &path, None).await.unwrap();
    let hs_token = bridge.config.matrix.as_ref().unwrap().hs_token.clone().unwrap();
    let replayed = bridge
        .client
        .put(bridge.url("/_matrix/app/v1/transactions/replayed-block"))
        .bearer_auth(hs_token.expose())
        .json(&json!({"events": [event]}))
        .send()
        .await
        .unwrap();
    assert!(replayed.status().is_success(), "{}", replayed.status());
    bridged_matrix::settled(&bridge, &synapse).await;
    assert!(!is_blocked(&store, &bob_name, CAROL).await, "the replayed block changed nothing");
    wait_until("the room is a DM again", &synapse, || portal_is_live(&store, &bob_name)).await;
    let answer = js.call("submit", submit("after the unblock")).await;
    assert_eq!(answer["status"], 200, "{answer}");
    wait_for_event(&synapse, &bob, &room, |e| e["content"]["body"] == "after the unblock").await;
    assert_eq!(
        ghost_texts(&bob, &room, &ghost).await,
        ["before the block", "after the unblock"],
        "bob saw nothing carol sent while blocked"
    );

    // bob writes to carol: her libraries fetch that message and nothing of the commands.
    bob.send_text(&room, "m1", "hello carol").await.unwrap();
    let incoming = json!({
        "url": world.ds_b.base,
        "ensName": CAROL,
        "token": carol_token,
        "encryptionKeyPair": carol["keys"]["encryption"],
        "dsPublicSigningKey": world.ds_b.signing_public_key(),
        "senderSigningKeys": {bob_name.clone(): bob_keys.public_signing_key()},
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let fetched = loop {
        let answer = js.call("incoming", incoming.clone()).await;
        let envelopes = answer["envelopes"].as_array().cloned().unwrap_or_default();
        if !envelopes.is_empty() {
            break envelopes;
        }
        assert!(Instant::now() < deadline, "carol got nothing from bob within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bridged_matrix::settled(&bridge, &synapse).await;
    let answer = js.call("incoming", incoming).await;
    let texts: Vec<&Value> = answer["envelopes"].as_array().unwrap().iter().map(|e| &e["text"]).collect();
    assert_eq!(texts, [&json!("hello carol")], "only bob's message; first fetch: {fetched:?}");
    bridge.node.shutdown().await.unwrap();
}

/// Whether the portal of `local` with carol carries messages (eve left it).
async fn portal_is_live(store: &Store, local: &str) -> bool {
    let (local, remote) = (EnsName::parse(local).unwrap(), EnsName::parse(CAROL).unwrap());
    let portal = store.portal_by_names(&NetworkId::new("matrix").unwrap(), &local, &remote).await.unwrap();
    portal.is_some_and(|p| p.state == PortalState::Live)
}
