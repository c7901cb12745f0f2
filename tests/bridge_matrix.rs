//! DM3 ⇄ Matrix end to end, with nothing faked: a real Synapse, a chain (anvil) with our ENS
//! contracts, the bridge node (its engine, its CCIP-read gateway, its appservice) and a second
//! relay node that is the DM3 user's delivery service (`tests/support/dm3_world.rs`).
//!
//! bob is a real Matrix user (a CS-API client here); alice is a DM3 user whose client is the SDK.
//! Every name is resolved through the chain: the bridge verifies alice's messages against her
//! on-chain profile, and node B verifies the bridge's messages against bob's virtual identity,
//! published by the bridge's gateway through the OffchainResolver.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bridged_matrix::{
    Bridged, bridged, identity_name, members, settled, start_bridge, start_bridge_with, wait_for_event,
    wait_until,
};
use dm3::message::MessageType;
use dm3_bridge::config::DatabaseUrl;
use dm3_bridge::names::directory::Directory;
use dm3_bridge::store::{JobState, QueueName};
use dm3_world::{ALICE, Dm3World};
use serde_json::{Value, json};
use support::TestDb;
use support::bridge::{self, ADMIN_TOKEN, LONG_WAIT, stop};
use support::node::TestNode;
use support::pause::Pause;
use synapse::{MatrixUser, SERVER_NAME, Synapse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm3_and_matrix_users_talk_through_the_bridge_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm3_and_matrix_users_talk_through_the_bridge_on_postgres() {
    let db = TestDb::postgres().await;
    scenario(Some(db.url.clone())).await;
}

async fn scenario(database: Option<DatabaseUrl>) {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(database).await;
    let directory = world.directory();
    let alice = &world.alice;

    // Matrix → DM3: alice's client opens and verifies bob's message.
    let bob_event = bob.send_text(&room, "t1", "hello alice, from **matrix**").await.unwrap();
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 1).await;
    assert_eq!(received[0].message.text(), Some("hello alice, from **matrix**"));
    assert_eq!(received[0].message.kind(), MessageType::New);
    let bob_hash = received[0].message.hash();

    // DM3 → Matrix: alice replies; bob sees it from the ghost, as a reply to his message,
    // rendered from Markdown.
    let reply = alice.builder(&bob_name).reply("hi bob, *welcome*", &bob_hash, None);
    let reply_hash = alice.send(&directory, reply.clone()).await;
    let from_ghost = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost.as_str() && e["type"] == "m.room.message"
    })
    .await;
    assert_eq!(from_ghost["content"]["body"], "hi bob, *welcome*");
    assert_eq!(
        from_ghost["content"]["formatted_body"].as_str().map(|h| h.contains("<em>welcome</em>")),
        Some(true)
    );
    assert_eq!(from_ghost["content"]["m.relates_to"]["m.in_reply_to"]["event_id"], bob_event.as_str());
    let alice_event = from_ghost["event_id"].as_str().unwrap().to_owned();

    // A replayed envelope is not delivered twice.
    alice.send(&directory, reply).await;

    // alice reacts to bob's message and edits her reply.
    alice.send(&directory, alice.builder(&bob_name).reaction("👍", &bob_hash)).await;
    alice
        .send(&directory, alice.builder(&bob_name).edit("hi bob, *welcome* (edited)", &reply_hash, None))
        .await;
    let reaction = wait_for_event(&synapse, &bob, &room, |e| e["type"] == "m.reaction").await;
    assert_eq!(reaction["sender"], ghost.as_str());
    assert_eq!(reaction["content"]["m.relates_to"]["event_id"], bob_event.as_str());
    assert_eq!(reaction["content"]["m.relates_to"]["key"], "👍");
    let edit =
        wait_for_event(&synapse, &bob, &room, |e| e["content"]["m.relates_to"]["rel_type"] == "m.replace")
            .await;
    assert_eq!(edit["content"]["m.relates_to"]["event_id"], alice_event.as_str());
    assert_eq!(edit["content"]["m.new_content"]["body"], "hi bob, *welcome* (edited)");

    // bob answers alice's message, reacts to it and redacts his first message: each arrives
    // with the DM3 hash of its target.
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t2", synapse::encode(&room));
    let body = json!({"msgtype": "m.text", "body": "thanks!", "m.relates_to": {"m.in_reply_to": {"event_id": alice_event}}});
    bob.call(reqwest::Method::PUT, &path, Some(body)).await.unwrap();
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.reaction/t3", synapse::encode(&room));
    let body = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": alice_event, "key": "🎉"}});
    bob.call(reqwest::Method::PUT, &path, Some(body)).await.unwrap();
    let path = format!(
        "/_matrix/client/v3/rooms/{}/redact/{}/t4",
        synapse::encode(&room),
        synapse::encode(&bob_event)
    );
    bob.call(reqwest::Method::PUT, &path, Some(json!({}))).await.unwrap();
    let mut received = alice.wait_for(&world.ds_b, &directory, &bob_name, 4).await;
    // As a messenger shows them: by the sender's time (Matrix's origin_server_ts).
    received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
    let kinds: Vec<MessageType> = received.iter().map(|r| r.message.kind()).collect();
    assert_eq!(
        kinds,
        [MessageType::New, MessageType::Reply, MessageType::Reaction, MessageType::DeleteRequest]
    );
    let reference = |i: usize| received[i].message.reference_message_hash().map(str::to_owned);
    assert_eq!(received[1].message.text(), Some("thanks!"));
    assert_eq!(reference(1), Some(reply_hash.to_string()));
    assert_eq!((received[2].message.text(), reference(2)), (Some("🎉"), Some(reply_hash.to_string())));
    assert_eq!(reference(3), Some(bob_hash.to_string()));

    // Everything arrived once: alice's reply, reaction and edit are three ghost events.
    let timeline = bob.messages(&room).await.unwrap();
    let from_ghost: Vec<&Value> =
        timeline.iter().filter(|e| e["sender"] == ghost.as_str() && e["type"] != "m.room.member").collect();
    assert_eq!(from_ghost.len(), 3, "{from_ghost:#?}");

    bridge.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_each_way_arrive_in_order() {
    const COUNT: usize = 200;
    let started = Instant::now();
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(None).await;
    let directory = world.directory();
    let alice = &world.alice;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    // Both at once, each one message after the other without waiting for delivery: alice's
    // client (DM3 → Matrix) and bob's (Matrix → DM3, as fast as Synapse takes them).
    let from_alice: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let from_bob: Vec<String> = (0..COUNT).map(|i| format!("b{i:03}")).collect();
    let phase = Instant::now();
    let bob_sends = tokio::spawn({
        let (bob, room, texts) = (bob.clone(), room.clone(), from_bob.clone());
        async move {
            for (i, text) in texts.iter().enumerate() {
                bob.send_text(&room, &format!("b{i}"), text).await.unwrap();
            }
            eprintln!("bob sent {COUNT} in {:.1} s", phase.elapsed().as_secs_f64());
        }
    });
    let messages = from_alice.iter().map(|text| alice.builder(&bob_name).text(text, None)).collect();
    alice.send_all(&directory, messages).await;
    eprintln!("alice sent {COUNT} in {:.1} s", phase.elapsed().as_secs_f64());
    bob_sends.await.unwrap();

    wait_for_dm3_count(&world, &bridge, &synapse, COUNT).await;
    eprintln!("alice's DS held bob's {:.1} s after the first send", phase.elapsed().as_secs_f64());
    settled(&bridge, &synapse).await;
    eprintln!("the bridge's queues were empty {:.1} s after the first send", phase.elapsed().as_secs_f64());
    assert_eq!(ghost_texts(&bob, &room, &ghost).await, from_alice);
    assert_eq!(dm3_texts(&world, &directory, &bob_name).await, from_bob);
    eprintln!("checked {:.1} s after the first send", phase.elapsed().as_secs_f64());

    stop(bridge).await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_the_bridge_loses_and_duplicates_nothing() {
    const COUNT: usize = 50;
    let started = Instant::now();
    let Bridged { world, bridge, mut synapse, bob, room, ghost, bob_name } = bridged(None).await;
    let directory = world.directory();
    let alice = &world.alice;

    // DM3 → Matrix: the bridge accepted all 50 and stops while it is still delivering them.
    // The homeserver is down while they arrive, so none can have gone out yet whatever the
    // machine's speed (a bridge as fast as alice's posts would otherwise drain them first);
    // the jobs are retrying when the bridge stops.
    synapse.stop().await.unwrap();
    let sent: Vec<String> = (0..COUNT).map(|i| format!("m{i:03}")).collect();
    let messages = sent.iter().map(|text| alice.builder(&bob_name).text(text, None)).collect();
    alice.send_all(&directory, messages).await;
    let stopped = stop(bridge).await;
    synapse.start_again().await.unwrap();
    let during = ghost_texts(&bob, &room, &ghost).await.len();
    eprintln!("bob had {during} of {COUNT} once the bridge stopped");
    assert!(during < COUNT, "all {COUNT} were delivered before the bridge stopped: nothing was in flight");
    let bridge = stopped.start().await;
    settled(&bridge, &synapse).await;
    assert_eq!(ghost_texts(&bob, &room, &ghost).await, sent);

    // Matrix → DM3: bob keeps sending while the bridge stops and starts again; Synapse
    // retries the transactions it could not push.
    let sent: Vec<String> = (0..COUNT).map(|i| format!("b{i:03}")).collect();
    let progress = Arc::new(AtomicUsize::new(0));
    let pause = Arc::new(Pause::default());
    let sender = tokio::spawn({
        let (bob, room, sent, progress) = (bob.clone(), room.clone(), sent.clone(), progress.clone());
        let pause = pause.clone();
        async move {
            for (i, text) in sent.iter().enumerate() {
                pause.checkpoint().await;
                bob.send_text(&room, &format!("b{i}"), text).await.unwrap();
                progress.store(i + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let sent_by = |n: usize| {
        let progress = progress.clone();
        async move {
            while progress.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    sent_by(COUNT / 5).await;
    let recoveries = synapse.appservice_recoveries();
    let stopped = stop(bridge).await;
    let at_stop = progress.load(Ordering::SeqCst);
    sent_by(at_stop + COUNT / 5).await;
    // Synapse holds what bob sent meanwhile and pushes it once the bridge is back. bob waits
    // for that recovery before sending on: Synapse's recoverer can end just before it stores
    // a transaction made meanwhile, which it then never sends until the next failure (seen
    // in CI: transaction 79 of 101 never pushed, its message missing); that is Synapse's
    // race, not the bridge's.
    pause.hold();
    wait_until("bob pauses", &synapse, || async { pause.is_paused() }).await;
    let bridge = stopped.start().await;
    eprintln!(
        "bob had sent {at_stop} of {COUNT} when the bridge stopped, {} when it started again",
        progress.load(Ordering::SeqCst)
    );
    wait_until("Synapse pushes what it held", &synapse, || async {
        synapse.appservice_recoveries() > recoveries
    })
    .await;
    pause.release();
    sender.await.unwrap();
    wait_for_dm3_count(&world, &bridge, &synapse, COUNT).await;
    settled(&bridge, &synapse).await;
    assert_eq!(dm3_texts(&world, &directory, &bob_name).await, sent);

    bridge.node.shutdown().await.unwrap();
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synapse_restart_loses_nothing() {
    const HALF: usize = 20;
    let started = Instant::now();
    let Bridged { world, bridge, mut synapse, bob, room, ghost, bob_name } = bridged(None).await;
    let directory = world.directory();
    let alice = &world.alice;
    let from_alice: Vec<String> = (0..2 * HALF).map(|i| format!("m{i:03}")).collect();
    let from_bob: Vec<String> = (0..2 * HALF).map(|i| format!("b{i:03}")).collect();
    let alice_sends = |texts: &[String]| {
        let messages = texts.iter().map(|text| alice.builder(&bob_name).text(text, None)).collect();
        alice.send_all(&directory, messages)
    };

    // bob's first half; Synapse stops as soon as the bridge has accepted it (not sooner:
    // Synapse keeps the events that arrive while a push is in flight in memory only, and
    // loses them if it stops then — element-hq/synapse#11637). The bridge delivers what it
    // accepted whatever the homeserver does.
    let queued_before = outbox_jobs(&bridge).await;
    for (i, text) in from_bob[..HALF].iter().enumerate() {
        bob.send_text(&room, &format!("b{i}"), text).await.unwrap();
    }
    let deadline = Instant::now() + LONG_WAIT;
    while outbox_jobs(&bridge).await < queued_before + HALF as u64 {
        assert!(
            Instant::now() < deadline,
            "the bridge did not accept bob's messages\n{}",
            synapse.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down_for = Instant::now();
    synapse.stop().await.unwrap();
    let at_stop = world.alice.stored_count(&world.ds_b).await;
    // alice's first half reaches the bridge while Synapse is down: it keeps them and retries.
    let while_down = alice_sends(&from_alice[..HALF]).await;
    synapse.start_again().await.unwrap();
    eprintln!(
        "alice held {at_stop} of bob's {HALF} when Synapse stopped; it was down {:.1} s",
        down_for.elapsed().as_secs_f64()
    );

    // The second halves, through the restarted homeserver.
    for (i, text) in from_bob[HALF..].iter().enumerate() {
        bob.send_text(&room, &format!("b{}", HALF + i), text).await.unwrap();
    }
    alice_sends(&from_alice[HALF..]).await;

    wait_for_dm3_count(&world, &bridge, &synapse, 2 * HALF).await;
    settled(&bridge, &synapse).await;
    assert_eq!(dm3_texts(&world, &directory, &bob_name).await, from_bob);
    assert_eq!(ghost_texts(&bob, &room, &ghost).await, from_alice);
    // The bridge did meet the stopped homeserver: the first message sent meanwhile took
    // more than one attempt.
    let key = format!("{bob_name}:{}", while_down[0]);
    let job = bridge.node.store().get_job(QueueName::Inbox, &key).await.unwrap().unwrap();
    assert!(job.attempts >= 2, "{job:?}");

    stop(bridge).await;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// How many jobs the bridge ever queued in its outbox (network → DM3), in any state.
async fn outbox_jobs(bridge: &TestNode) -> u64 {
    bridge::jobs_in(bridge, QueueName::Outbox).await
}

/// The bodies of the ghost's messages in the room, oldest first (the whole timeline).
async fn ghost_texts(bob: &MatrixUser, room: &str, ghost: &str) -> Vec<String> {
    let timeline = bob.timeline(room).await.unwrap();
    timeline
        .iter()
        .filter(|e| e["sender"] == ghost && e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The texts alice's delivery service holds from `from`, as a messenger orders them: by the
/// sender's timestamp, messages of the same millisecond in the order they were stored.
async fn dm3_texts(world: &Dm3World, directory: &Directory, from: &str) -> Vec<String> {
    let mut received = world.alice.incoming(&world.ds_b, directory, from).await;
    received.reverse(); // the delivery service answers newest first
    received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
    received.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect()
}

/// Waits until alice's delivery service holds at least `count` messages.
async fn wait_for_dm3_count(world: &Dm3World, bridge: &TestNode, synapse: &Synapse, count: usize) {
    let deadline = Instant::now() + LONG_WAIT;
    loop {
        let held = world.alice.stored_count(&world.ds_b).await;
        if held >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{held} of {count} messages reached alice within {LONG_WAIT:?}; the bridge's jobs: {:?}\n{}",
            bridge.node.store().count_jobs().await,
            synapse.appservice_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_cross_the_bridge_both_ways() {
    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(None).await;
    let directory = world.directory();
    let alice = &world.alice;

    // Matrix → DM3: bob reads alice's bridged message; alice gets READ_OPENED for its hash.
    let alice_hash = alice.send(&directory, alice.builder(&bob_name).text("did you read this?", None)).await;
    let from_ghost = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost.as_str() && e["type"] == "m.room.message"
    })
    .await;
    let alice_event = from_ghost["event_id"].as_str().unwrap().to_owned();
    let path = format!(
        "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
        synapse::encode(&room),
        synapse::encode(&alice_event)
    );
    bob.call(reqwest::Method::POST, &path, Some(json!({}))).await.unwrap();
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 1).await;
    let read: Vec<&dm3_world::Received> =
        received.iter().filter(|r| r.message.kind() == MessageType::ReadOpened).collect();
    assert_eq!(read.len(), 1, "{received:#?}");
    assert_eq!(read[0].message.reference_message_hash(), Some(alice_hash.to_string().as_str()));

    // DM3 → Matrix: bob writes, alice reads it; bob sees the ghost's m.read on his event.
    let bob_event = bob.send_text(&room, "r1", "and this one?").await.unwrap();
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 2).await;
    let bob_message = received
        .iter()
        .find(|r| r.message.text() == Some("and this one?"))
        .unwrap_or_else(|| panic!("{received:#?}"));
    let read_hash =
        alice.send(&directory, alice.builder(&bob_name).read_opened(&bob_message.message.hash())).await;
    inbox_job_done(&bridge, &format!("{bob_name}:{read_hash}")).await;
    wait_until("the ghost's read receipt on bob's message", &synapse, || async {
        read_receipt_of(&bob, &room, &ghost).await.as_deref() == Some(bob_event.as_str())
    })
    .await;

    settled(&bridge, &synapse).await;
    bridge.node.shutdown().await.unwrap();
}

/// The event `reader`'s public read receipt in `room` points at, as `user` sees it in `/sync`.
async fn read_receipt_of(user: &MatrixUser, room: &str, reader: &str) -> Option<String> {
    let sync = user.call(reqwest::Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await.unwrap();
    let ephemeral = sync["rooms"]["join"][room]["ephemeral"]["events"].as_array()?.clone();
    ephemeral.iter().filter(|e| e["type"] == "m.receipt").find_map(|receipt| {
        let content = receipt["content"].as_object()?;
        content
            .iter()
            .find(|(_, kinds)| kinds["m.read"].get(reader).is_some())
            .map(|(event, _)| event.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm3_user_writing_first_opens_a_dm_with_the_matrix_user() {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = start_bridge(&world, None).await;
    world.point_parent_at(&bridge).await;
    let directory = world.directory();
    let alice = &world.alice;
    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    // bob has a DM3 name (the operator made it), but no room with alice exists.
    let created = bridge
        .client
        .post(bridge.url("/admin/identities"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"network": "matrix", "userId": bob.user_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let bob_name = identity_name(&bridge, &bob.user_id).await;

    let hash =
        alice.send(&directory, alice.builder(&bob_name).text("hi bob, it's alice from DM3", None)).await;
    inbox_job_done(&bridge, &format!("{bob_name}:{hash}")).await;
    wait_until("bob is invited", &synapse, || async { !bob.invited_rooms().await.unwrap().is_empty() }).await;
    let mut invited = bob.invited_rooms().await.unwrap();
    assert_eq!(invited.len(), 1, "{invited:?}");
    let room = invited.remove(0);
    bob.join(&room).await.unwrap();
    assert!(members(&bob, &room).await.contains(&ghost), "the ghost is in the room it opened");
    // A direct chat, opened by alice's ghost.
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        synapse::encode(&room),
        synapse::encode(&bob.user_id)
    );
    let bob_member = bob.call(reqwest::Method::GET, &path, None).await.unwrap();
    assert_eq!(bob_member["membership"], "join");
    let timeline = bob.messages(&room).await.unwrap();
    let invite = timeline
        .iter()
        .find(|e| {
            e["type"] == "m.room.member"
                && e["state_key"] == bob.user_id.as_str()
                && e["content"]["membership"] == "invite"
        })
        .unwrap_or_else(|| panic!("no invite of bob in {timeline:#?}"));
    assert_eq!(invite["sender"], ghost.as_str());
    assert_eq!(invite["content"]["is_direct"], true);
    let message = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost.as_str() && e["type"] == "m.room.message"
    })
    .await;
    assert_eq!(message["content"]["body"], "hi bob, it's alice from DM3");

    // The room is the portal: bob's answer reaches alice from his DM3 name.
    bob.send_text(&room, "f1", "hello alice!").await.unwrap();
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 1).await;
    assert_eq!(received[0].message.text(), Some("hello alice!"));

    settled(&bridge, &synapse).await;
    bridge.node.shutdown().await.unwrap();
}

/// Waits until the bridge's inbox job `key` ran; it must have succeeded.
async fn inbox_job_done(bridge: &TestNode, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = bridge.node.store().get_job(QueueName::Inbox, key).await.unwrap();
        match job {
            Some(job) if job.state == JobState::Done => return,
            Some(job) if job.state == JobState::Failed || job.attempts > 1 => {
                panic!("the inbox job {key} did not go through: {job:?}")
            }
            job => assert!(Instant::now() < deadline, "the inbox job {key} did not run within 60 s: {job:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_payloads_are_forwarded_verbatim_and_original_content_rides_along() {
    use dm3::bridge_payload::{self, BridgePayload, MatrixEvent, Network};

    let Bridged { world, bridge, synapse, bob, room, ghost, bob_name } = bridged(None).await;
    let directory = world.directory();
    let alice = &world.alice;
    let object = |value: &Value| value.as_object().unwrap().clone();

    // Matrix → DM3: bob's formatted message arrives with its content as a bridge payload.
    let bobs = json!({
        "msgtype": "m.text", "body": "see **the docs**", "format": "org.matrix.custom.html",
        "formatted_body": "see <strong>the docs</strong>",
    });
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/p1", synapse::encode(&room));
    bob.call(reqwest::Method::PUT, &path, Some(bobs.clone())).await.unwrap();
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 1).await;
    assert_eq!(received[0].message.text(), Some("see **the docs**"));
    assert_eq!(
        bridge_payload::find(&received[0].message, Network::Matrix).unwrap(),
        Some(BridgePayload::Matrix(MatrixEvent {
            event_type: "m.room.message".into(),
            content: object(&bobs),
            encrypted: false
        })),
        "the original content, decoded with the SDK"
    );

    // DM3 → Matrix: alice's prepared event is what bob's client shows, exactly, beside the
    // send's transaction id (docs/bridge-payload.md section 5).
    let content = json!({
        "msgtype": "m.notice", "body": "prepared by an SDK-aware client",
        "format": "org.matrix.custom.html", "formatted_body": "prepared by an <b>SDK-aware</b> client",
        "m.mentions": {"user_ids": [bob.user_id.clone()]},
    });
    let payload = bridge_payload::attachment(&BridgePayload::Matrix(MatrixEvent {
        event_type: "m.room.message".into(),
        content: object(&content),
        encrypted: false,
    }))
    .unwrap();
    alice.send(&directory, alice.builder(&bob_name).text("plain-text fallback", Some(vec![payload]))).await;
    let forwarded = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost.as_str() && e["content"]["msgtype"] == "m.notice"
    })
    .await;
    let mut shown = forwarded["content"].as_object().unwrap().clone();
    let txn_id = shown.remove("network.dm3.txn_id").unwrap();
    assert!(txn_id.as_str().unwrap().starts_with("dm3-0x"), "{txn_id}");
    assert_eq!(Value::Object(shown), content);

    // A payload the allow-list refuses: bob gets the text, alice is told why.
    let mut refused = object(&content);
    refused.insert("m.relates_to".into(), json!({"m.in_reply_to": {"event_id": "$x"}}));
    let refused = bridge_payload::attachment(&BridgePayload::Matrix(MatrixEvent {
        event_type: "m.room.message".into(),
        content: refused,
        encrypted: false,
    }))
    .unwrap();
    let refused_hash =
        alice.send(&directory, alice.builder(&bob_name).text("the *fallback*", Some(vec![refused]))).await;
    let rendered = wait_for_event(&synapse, &bob, &room, |e| {
        e["sender"] == ghost.as_str() && e["content"]["body"] == "the *fallback*"
    })
    .await;
    assert_eq!(rendered["content"]["msgtype"], "m.text");
    let received = alice.wait_for(&world.ds_b, &directory, &bob_name, 2).await;
    let warning = received.iter().find(|r| r.message.kind() == MessageType::Reply).expect("a warning");
    assert_eq!(warning.message.reference_message_hash(), Some(refused_hash.to_string().as_str()));
    let text = warning.message.text().unwrap();
    assert!(text.contains("instead of its bridge payload") && text.contains("m.relates_to"), "{text}");

    bridge.node.shutdown().await.unwrap();
}

/// Issue #16, item 5, toward Matrix: while the homeserver is down, alice's flood to bob is held
/// to the cap of one conversation; the submit beyond is refused with 429 / -32005 (her client
/// retries later), a replay of an accepted message is a duplicate, and when the homeserver is
/// back every accepted message reaches bob once, in order, and the refused one goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_toward_a_matrix_user_is_capped_per_conversation_on_sqlite() {
    flood_capped(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_toward_a_matrix_user_is_capped_per_conversation_on_postgres() {
    let db = TestDb::postgres().await;
    flood_capped(Some(db.url.clone())).await;
}

async fn flood_capped(database: Option<DatabaseUrl>) {
    const CAP: u32 = 4;
    let world = Dm3World::start(None).await;
    let (bridge, mut synapse) =
        start_bridge_with(&world, database, |config| config.engine.max_pending_per_conversation = CAP).await;
    world.point_parent_at(&bridge).await;
    let directory = world.directory();
    let alice = &world.alice;
    let bob = synapse.register_user("bob").await.unwrap();
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    let room = bob
        .create_room(json!({"is_direct": true, "invite": [ghost], "preset": "trusted_private_chat"}))
        .await
        .unwrap();
    wait_until("the ghost joins", &synapse, || async { members(&bob, &room).await.contains(&ghost) }).await;
    let bob_name = identity_name(&bridge, &bob.user_id).await;
    let route = alice.route(&directory, &bob_name).await;
    let texts: Vec<String> = (0..=CAP).map(|i| format!("flood {i}")).collect();
    let signed: Vec<_> =
        texts.iter().map(|text| alice.sign(alice.builder(&bob_name).text(text, None))).collect();

    synapse.stop().await.unwrap();
    for message in &signed[..CAP as usize] {
        alice.try_submit(&route, message).await.unwrap();
    }
    let refused = alice.try_submit(&route, &signed[CAP as usize]).await.unwrap_err();
    assert!(refused.contains("429") && refused.contains("-32005"), "{refused}");
    alice.try_submit(&route, &signed[0]).await.expect("a replay of an accepted message is a duplicate");

    synapse.start_again().await.unwrap();
    let deadline = Instant::now() + LONG_WAIT;
    while ghost_texts(&bob, &room, &ghost).await.len() < CAP as usize {
        assert!(Instant::now() < deadline, "{:?}", ghost_texts(&bob, &room, &ghost).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice
        .send_each_until_accepted(
            &route,
            &bob_name,
            &texts[CAP as usize..],
            Duration::ZERO,
            LONG_WAIT,
            &AtomicUsize::new(0),
        )
        .await;
    wait_until("the refused message arrives after all", &synapse, || async {
        ghost_texts(&bob, &room, &ghost).await.len() > CAP as usize
    })
    .await;
    assert_eq!(ghost_texts(&bob, &room, &ghost).await, texts, "once each, in order");
    bridge.node.shutdown().await.unwrap();
}
