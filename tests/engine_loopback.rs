//! The whole engine through the loopback network (`[loopback]`, `connectors/loopback`): a node
//! whose virtual identities stand for loopback users, a DM3 user with an account on the same
//! node, and messages both ways through the real relay, queues, portals and message map. No
//! homeserver or bot is needed, and nothing of the engine is faked: the loopback connector is
//! wired through the same registry and config as Matrix and Telegram. Every scenario runs on
//! SQLite and on PostgreSQL.
//!
//! The DM3 user, alice.eth, is known through `[[names.static]]` and names this node as her
//! delivery service, so the engine delivers to her in process (the relay's typed entry) and she
//! writes to the virtual identities over HTTP like any DM3 client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/loopback_world.rs"]
mod loopback_world;
#[macro_use]
mod support;

use dm3::envelope::Envelope;
use dm3::gateway_envelope::{FALLBACK_TEXT, TelegramGatewayDocument};
use dm3::message::MessageBuilder;
use dm3_bridge::clock::now_ms;
use dm3_bridge::identities::network::{NetworkUserId as IdentityUser, TelegramUserId};
use dm3_bridge_connector::{
    AttachmentSource, Content, EventKind, Message, NetworkUserId, RemoteIdentity, Text,
};
use dm3_bridge_loopback::{LoopbackConnector, Record};
use loopback_world::{ALICE, NODE, PARENT, World};
use support::TestDb;
use support::bridge::settled;

on_both_backends!(
    a_loopback_users_message_reaches_the_dm3_user_and_her_answer_reaches_him_once,
    with_echo_a_dm3_user_hears_her_message_back_from_the_loopback_user,
    a_network_that_stops_working_makes_the_node_not_ready,
    the_metrics_show_sends_failures_and_the_oldest_job_on_their_own_listener,
    a_message_to_a_self_custody_identity_reaches_its_user_sealed,
    a_message_the_network_took_before_it_restarted_is_posted_once,
);

fn text(body: &str) -> EventKind {
    EventKind::Message(Message::new(Content::Text(Text::plain(body))))
}

async fn a_loopback_users_message_reaches_the_dm3_user_and_her_answer_reaches_him_once(db: &TestDb) {
    let world = World::start(db, false).await;
    let loopback = world.loopback();
    let user = NetworkUserId::new("42").unwrap();
    let alice = RemoteIdentity::new(ALICE).unwrap();

    // User 42 writes first: the engine opens the portal (and his DM3 identity), then bridges.
    loopback.write(&user, &alice, "hi alice, from loopback").await.unwrap();
    let received = world.alice_receives(1).await;
    assert_eq!(received[0].text.as_deref(), Some("hi alice, from loopback"));
    let identity = received[0].sender.clone();
    assert_eq!(identity.as_str(), format!("tg-42.tg.{PARENT}"), "a Telegram user's name: loopback stands in");
    assert!(
        loopback.records().iter().any(|r| matches!(r, Record::Joined(request) if request.requester == user)),
        "{:#?}",
        loopback.records()
    );

    // Alice answers; he gets it once, in the portal, from her.
    world.alice_writes(&identity, "hi 42").await;
    world.loopback_receives(1).await;
    settled(&world.node, String::new).await;
    let sent = loopback.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].conversation, LoopbackConnector::conversation(&user, &alice).unwrap());
    assert_eq!(sent[0].sender, alice);
    assert_eq!(sent[0].payload, text("hi 42"));
    assert_eq!(world.alice_receives(1).await.len(), 1, "nothing else came back");
    world.node.node.shutdown().await.unwrap();
}

async fn with_echo_a_dm3_user_hears_her_message_back_from_the_loopback_user(db: &TestDb) {
    let world = World::start(db, true).await;
    let loopback = world.loopback();
    let user = IdentityUser::Telegram(TelegramUserId::new(7).unwrap());
    let identity = world.node.node.names().vault.create(user, now_ms()).await.unwrap().name;

    // Alice writes first: the engine opens the conversation on the loopback network, which
    // answers with her words.
    world.alice_writes(&identity, "ping").await;
    let echoed = world.alice_receives(1).await;
    assert_eq!(echoed[0].text.as_deref(), Some("ping"));
    assert_eq!(echoed[0].sender, identity);
    settled(&world.node, String::new).await;
    let records = loopback.records();
    let opened = records.iter().filter(|r| matches!(r, Record::Opened { .. })).count();
    assert_eq!((opened, loopback.sent().len()), (1, 1), "{records:#?}");
    assert_eq!(world.alice_receives(1).await.len(), 1, "echoed once");
    world.node.node.shutdown().await.unwrap();
}

/// A network that took a message and restarted before it answered (Synapse killed mid-send
/// forgets an appservice's txn ids) does not know the key when the engine tries again: the
/// retry says it is one, and the connector finds the message it posted instead of posting it
/// twice.
async fn a_message_the_network_took_before_it_restarted_is_posted_once(db: &TestDb) {
    let world = World::start(db, false).await;
    let loopback = world.loopback();
    let user = IdentityUser::Telegram(TelegramUserId::new(9).unwrap());
    let identity = world.node.node.names().vault.create(user, now_ms()).await.unwrap().name;

    loopback.lose_answers(1);
    world.alice_writes(&identity, "said once").await;
    world.loopback_receives(1).await;
    settled(&world.node, || format!("{:#?}", loopback.records())).await;
    world.alice_writes(&identity, "and then this").await;
    world.loopback_receives(2).await;
    settled(&world.node, String::new).await;

    let sent = loopback.sent();
    let bodies: Vec<&EventKind> = sent.iter().map(|outbound| &outbound.payload).collect();
    assert_eq!(bodies, [&text("said once"), &text("and then this")], "{sent:#?}");
    assert!(sent.iter().all(|outbound| !outbound.retry), "each was posted by its first attempt");
    world.node.node.shutdown().await.unwrap();
}

/// `/ready` asks every running network: a network whose receiving side failed (a Telegram poll
/// loop restarting, say) takes the node out of a load balancer's rotation until it recovers.
async fn a_network_that_stops_working_makes_the_node_not_ready(db: &TestDb) {
    let world = World::start(db, false).await;
    let ready = || async { world.node.client.get(world.node.url("/ready")).send().await.unwrap() };
    assert_eq!(ready().await.status(), reqwest::StatusCode::OK);
    world.loopback().set_health(dm3_bridge_connector::Health::Unhealthy("the test broke it".to_owned()));
    let answer = ready().await;
    assert_eq!(answer.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body = answer.text().await.unwrap();
    assert!(body.contains("loopback") && body.contains("the test broke it"), "{body}");
    world.loopback().set_health(dm3_bridge_connector::Health::Healthy);
    assert_eq!(ready().await.status(), reqwest::StatusCode::OK);
    world.node.node.shutdown().await.unwrap();
}

/// `admin.metrics_listen`: `/metrics` alone on a listener of its own, to anyone who reaches it,
/// while the main listener keeps it behind the admin token. What an operator alerts on is
/// there: how long each send to the other side took, by network and direction; failures by
/// queue and cause; the age of the oldest pending job.
async fn the_metrics_show_sends_failures_and_the_oldest_job_on_their_own_listener(db: &TestDb) {
    let world = World::start(db, false).await;
    let loopback = world.loopback();
    let user = NetworkUserId::new("43").unwrap();
    let alice = RemoteIdentity::new(ALICE).unwrap();
    loopback.write(&user, &alice, "hello").await.unwrap();
    let identity = world.alice_receives(1).await[0].sender.clone();
    world.alice_writes(&identity, "hi 43").await;
    world.loopback_receives(1).await;
    // The network refuses the next one for good: it fails, counted by its cause.
    loopback.refuse_sends(Some("the bot was blocked by the user"));
    world.alice_writes(&identity, "this one is refused").await;
    let report = world.alice_receives(2).await;
    assert!(
        report.iter().any(|m| m.text.as_deref().is_some_and(|t| t.contains("the bot was blocked"))),
        "the sender is told"
    );

    let metrics_addr = world.node.node.metrics_addr().expect("admin.metrics_listen is set");
    let scrape = || async {
        let url = format!("http://{metrics_addr}/metrics");
        let answer = world.node.client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK, "no token needed on its own listener");
        answer.text().await.unwrap()
    };
    let text = scrape().await;
    let series = |name: &str, labels: &[&str]| {
        text.lines().any(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
    };
    assert!(
        series("dm3_bridge_send_seconds_count", &["network=\"loopback\"", "direction=\"dm3_to_network\""]),
        "{text}"
    );
    assert!(series("dm3_bridge_send_seconds_count", &["direction=\"network_to_dm3\""]), "{text}");
    assert!(series("dm3_engine_failures_total", &["queue=\"inbox\"", "cause=\"network\""]), "{text}");
    assert!(series("dm3_engine_oldest_pending_seconds", &["queue=\"inbox\""]), "{text}");
    // Only /metrics is served there; the main listener still keeps it to the admin token.
    let other = world.node.client.get(format!("http://{metrics_addr}/ready")).send().await.unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
    let main = world.node.client.get(world.node.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), reqwest::StatusCode::FORBIDDEN, "no admin token set: not served at all");
    world.node.node.shutdown().await.unwrap();
}

/// A self-custody identity's keys are the user's (docs/gateway.md section 5): the node carries
/// what is sealed to them as it is, a gateway document the user's client opens, and opens
/// nothing itself. A replay reaches the user once.
async fn a_message_to_a_self_custody_identity_reaches_its_user_sealed(db: &TestDb) {
    let world = World::start(db, false).await;
    let wallet = dm3::crypto::eth::Wallet::generate();
    let keys = dm3::keys::ProfileKeys::from_wallet(&wallet, "0x123");
    let profile = dm3::profile::UserProfile::from_keys(&keys, [NODE]).sign(&wallet);
    let user = IdentityUser::Telegram(TelegramUserId::new(77).unwrap());
    let vault = &world.node.node.names().vault;
    let identity = vault.create_self_custody(user, wallet.address(), profile, now_ms()).await.unwrap().name;

    world.alice_writes(&identity, "for your own keys").await;
    world.loopback_receives(1).await;
    let sent = world.loopback().sent();
    let EventKind::Message(Message { content: Content::Attachment { attachment, caption }, .. }) =
        &sent[0].payload
    else {
        panic!("not the gateway document: {:?}", sent[0].payload);
    };
    assert_eq!(
        (attachment.name(), caption.as_ref().unwrap().body.as_str()),
        ("dm3-envelope.json", FALLBACK_TEXT)
    );
    let AttachmentSource::Inline(file) = attachment.source() else { panic!("not inline") };
    let document = TelegramGatewayDocument::decode(file).unwrap();
    assert_eq!(document.envelope().delivery_service().as_str(), NODE);
    let opened = document.envelope().envelope().open(&keys.encryption).unwrap();
    assert_eq!(opened.message.text(), Some("for your own keys"), "the user's keys open it");
    assert_eq!(sent[0].idempotency_key.as_str(), format!("dm3-{}", opened.message_hash));

    // The same envelope again (a sender's retry): a duplicate, not a second message.
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "dm3_submitMessage",
        "params": [document.envelope().envelope_text()],
    });
    let replay = world.node.client.post(world.node.url("/rpc")).json(&body).send().await.unwrap();
    assert_eq!(replay.status(), reqwest::StatusCode::OK, "{}", replay.text().await.unwrap());
    let store = world.node.node.store();
    settled(&world.node, String::new).await;
    assert_eq!(store.count_envelopes().await.unwrap(), 0, "nothing stored for retrieval");
    assert_eq!(world.loopback().sent().len(), 1);

    // Carried byte for byte: an envelope written otherwise than the node would write it (keys
    // sorted, indented) reaches the user as that very text.
    let message = MessageBuilder::new(identity.as_str(), ALICE, 1_700_000_000_000)
        .text("written my way", None)
        .sign(&world.alice.profile_keys().signing);
    let node_key = world.node.node.node_keys().encryption_public_key();
    let sealed = Envelope::seal(
        &message,
        &world.alice.profile_keys().signing,
        keys.encryption.public(),
        node_key.as_bytes(),
    )
    .unwrap();
    let text =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&sealed.to_json()).unwrap())
            .unwrap();
    assert_ne!(text, sealed.to_json());
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "dm3_submitMessage", "params": [text]});
    let answer = world.node.client.post(world.node.url("/rpc")).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK, "{}", answer.text().await.unwrap());
    world.loopback_receives(2).await;
    let EventKind::Message(Message { content: Content::Attachment { attachment, .. }, .. }) =
        &world.loopback().sent()[1].payload
    else {
        panic!("not the gateway document");
    };
    let AttachmentSource::Inline(file) = attachment.source() else { panic!("not inline") };
    assert_eq!(TelegramGatewayDocument::decode(file).unwrap().envelope().envelope_text(), text);

    // Counted apart from bridged messages, which the node opens (the recorder is the test
    // binary's: the other backend's scenario may have counted too).
    let metrics_addr = world.node.node.metrics_addr().expect("admin.metrics_listen is set");
    let scrape = world.node.client.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
    let scrape = scrape.text().await.unwrap();
    let carried = scrape.lines().find(|line| {
        line.starts_with("dm3_gateway_envelopes_total") && line.contains("direction=\"dm3_to_network\"")
    });
    let count = carried.and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(count.is_some_and(|count| count >= 2.0), "{scrape}");
    world.node.node.shutdown().await.unwrap();
}
