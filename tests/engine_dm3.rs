//! The engine's DM3 steps against a real node: `deliver` seals a message built by `to_dm3`
//! for the recipient's delivery service and posts it, the node stores it, and the stored
//! envelope opens, with the reference npm libraries as a stock client (`interop/ds-client.js`)
//! and with the inbox step `open_inbound`. Every scenario runs on SQLite and on PostgreSQL.
//!
//! The node is `relay.example.eth`; names are known through a static resolver, as they would
//! be through ENS. The sender is a virtual identity made with the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::profile::SignedUserProfile;
use dm3_bridge::engine::dm3::attachments::AttachmentLimits;
use dm3_bridge::engine::dm3::convert::{ToDm3, ToNetwork, to_dm3, to_network};
use dm3_bridge::engine::dm3::deliver::{
    HttpDeliveryTarget, HttpTargetOptions, LocalDeliveryTarget, RoutedTarget, deliver,
};
use dm3_bridge::engine::dm3::open::open_inbound;
use dm3_bridge::engine::dm3::references::{MappedMessage, MessageReferences, ReferenceError};
use dm3_bridge::identities::keys::IdentityKeys;
use dm3_bridge::identities::network::Network;
use dm3_bridge::names::directory::{Directory, NoLinks};
use dm3_bridge::names::static_resolver::StaticResolver;
use dm3_bridge::protocol::{DeliveryProtocol, ProtocolFactory};
use dm3_bridge_connector::{
    BoxFuture, Content, ConversationId, EventKind, InboundEvent, Message, NetworkMessageId, NetworkUserId,
    Text,
};
use serde_json::{Value, json};
use support::TestDb;
use support::js::JsProcess;
use support::node::{TestNode, relay, start_relay};

on_both_backends!(
    the_reference_client_reads_what_deliver_posted,
    a_delivered_message_opens_in_the_inbox_step_after_an_in_process_submit,
);

const NODE: &str = "relay.example.eth";
const SENDER: &str = "mx-bob.bridge.example.eth";
const ROOM: &str = "!room:example.org";

/// A DM3 identity made with the SDK: its name, keys and profile naming this node.
struct Identity {
    name: EnsName,
    keys: IdentityKeys,
    profile: SignedUserProfile,
}

impl Identity {
    fn new(name: &str) -> Self {
        let keys = IdentityKeys::generate(1);
        let profile = keys.signed_profile(&NODE.parse().unwrap());
        Self { name: name.parse().unwrap(), keys, profile }
    }
}

/// No message has been bridged yet.
struct EmptyMap;

impl MessageReferences for EmptyMap {
    fn by_dm3_hash<'a>(
        &'a self,
        _: &'a dm3::message::MessageHash,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
        Box::pin(async { Ok(None) })
    }

    fn by_network_id<'a>(
        &'a self,
        _: &'a NetworkMessageId,
    ) -> BoxFuture<'a, Result<Option<MappedMessage>, ReferenceError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The network event Bob sent in the Matrix room.
fn bob_says(text: &str) -> InboundEvent {
    InboundEvent {
        conversation: ConversationId::new(ROOM).unwrap(),
        sender: NetworkUserId::new("@bob:example.org").unwrap(),
        network_event_id: NetworkMessageId::new("$event1").unwrap(),
        timestamp_ms: 1_700_000_000_000,
        kind: EventKind::Message(Message::new(Content::Text(Text::plain(text)))),
        original: None,
    }
}

/// The outbox steps: Bob's event as his identity's message to `to`.
async fn build(sender: &Identity, to: &EnsName, text: &str) -> dm3::message::Message {
    let converted = to_dm3(
        &bob_says(text),
        Network::Matrix,
        &sender.name,
        to,
        &sender.keys.profile_keys().signing,
        &EmptyMap,
        &AttachmentLimits::default(),
    )
    .await
    .unwrap();
    let ToDm3::Send(built) = converted else { panic!("not sent: {converted:?}") };
    built.message
}

/// The node's delivery-service profile at the URL it listens on.
fn node_profile(node: &TestNode) -> DeliveryServiceProfile {
    DeliveryServiceProfile::new(node.encryption_public_key(), node.signing_public_key(), node.base.clone())
}

fn http_target() -> HttpDeliveryTarget {
    // The node listens on 127.0.0.1: the guard must let the test through.
    HttpDeliveryTarget::new(HttpTargetOptions {
        allow_private_addresses: true,
        timeout: Duration::from_secs(30),
        ..HttpTargetOptions::default()
    })
    .unwrap()
}

async fn the_reference_client_reads_what_deliver_posted(db: &TestDb) {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let alice = js.call("new_user", json!({"deliveryServices": [NODE]})).await;
    let alice_name: EnsName = alice["ensName"].as_str().unwrap().parse().unwrap();
    let alice_profile = SignedUserProfile::from_value(alice["signedUserProfile"].clone()).unwrap();
    let bob = Identity::new(SENDER);
    let resolver = StaticResolver::new()
        .with_user(alice_name.clone(), alice["address"].as_str().unwrap().parse().unwrap(), &alice_profile)
        .with_user(bob.name.clone(), bob.keys.address(), &bob.profile);
    let node = start_relay(db.url.clone(), resolver.clone(), |_| {}).await;
    let registered = js
        .call(
            "register",
            json!({"url": node.base, "ensName": alice_name.as_str(), "signedUserProfile": alice["signedUserProfile"]}),
        )
        .await;
    assert_eq!(registered["status"], 200, "{registered}");
    let token = registered["token"].as_str().unwrap();

    // The outbox: build, then deliver to every delivery service of Alice (this node, by HTTP).
    let directory = directory(resolver.with_delivery_service(NODE.parse().unwrap(), &node_profile(&node)));
    let message = build(&bob, &alice_name, "hello from matrix").await;
    let signing = &bob.keys.profile_keys().signing;
    let report = deliver(&message, signing, &directory, &http_target(), &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()), "{report:?}");
    assert_eq!(report.accepted(), [NODE]);

    // A retried job builds the same message and posts it again: stored once.
    let again = build(&bob, &alice_name, "hello from matrix").await;
    assert_eq!(again.hash(), message.hash());
    let report = deliver(&again, signing, &directory, &http_target(), &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()));
    assert_eq!(node.node.store().count_envelopes().await.unwrap(), 1);

    // The stock client fetches, decrypts, and checks the postmark and Bob's signature.
    let listed = js
        .call(
            "incoming",
            json!({
                "url": node.base,
                "ensName": alice_name.as_str(),
                "token": token,
                "encryptionKeyPair": alice["keys"]["encryption"],
                "dsPublicSigningKey": node.signing_public_key(),
                "senderSigningKeys": {SENDER: bob.keys.profile_keys().signing.public_b64()},
            }),
        )
        .await;
    assert_eq!(listed["status"], 200, "{listed}");
    let envelopes = listed["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 1, "{listed}");
    let opened = &envelopes[0];
    assert_eq!(opened["format"], "current");
    assert_eq!(opened["text"], "hello from matrix");
    assert_eq!(opened["from"], SENDER);
    assert_eq!(opened["messageHash"], message.hash().to_string());
    assert_eq!(opened["ackHash"], message.hash().to_string());
    assert_eq!(opened["postmarkValid"], true, "{opened}");
    assert_eq!(opened["messageSignatureValid"], true, "{opened}");
    node.node.shutdown().await.unwrap();
}

async fn a_delivered_message_opens_in_the_inbox_step_after_an_in_process_submit(db: &TestDb) {
    let (bob, carol) = (Identity::new(SENDER), Identity::new("tg-7.bridge.example.eth"));
    let resolver = StaticResolver::new()
        .with_user(bob.name.clone(), bob.keys.address(), &bob.profile)
        .with_user(carol.name.clone(), carol.keys.address(), &carol.profile);
    // Keep the node's delivery protocol to call it in process.
    let protocol: Arc<Mutex<Option<Arc<dyn DeliveryProtocol>>>> = Arc::default();
    let node = start_relay_keeping(db, resolver.clone(), protocol.clone()).await;
    let local = protocol.lock().unwrap().clone().unwrap();
    let token = register(&node, &carol).await;

    // This node's own service is called in process; the HTTP side must not be used for it.
    let unreachable = HttpDeliveryTarget::new(HttpTargetOptions::default()).unwrap();
    let target = RoutedTarget::new(NODE.parse().unwrap(), LocalDeliveryTarget::new(local), unreachable);
    let mut profile = node_profile(&node);
    // Were it posted over HTTP, the guard would refuse this address.
    profile = DeliveryServiceProfile::new(
        profile.public_encryption_key(),
        profile.public_signing_key(),
        "http://127.0.0.1:9",
    );
    let directory = directory(resolver.with_delivery_service(NODE.parse().unwrap(), &profile));
    let message = build(&bob, &carol.name, "# hi carol\nfrom *matrix*").await;
    let report = deliver(&message, &bob.keys.profile_keys().signing, &directory, &target, &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()), "{report:?}");

    // The inbox step opens the stored envelope with Carol's keys and Bob's verified profile.
    let stored = incoming(&node, &carol, &token).await;
    assert_eq!(stored.len(), 1);
    let keys = [carol.keys];
    let opened = open_inbound(&stored[0].to_string(), &carol.name, &keys, &directory).await.unwrap();
    assert_eq!(opened.sender, bob.name);
    assert_eq!(opened.message_hash, message.hash());
    assert_eq!(opened.text.as_deref(), Some("# hi carol\nfrom *matrix*"));
    let converted = to_network(
        &opened,
        Network::Telegram,
        &ConversationId::new("-100123").unwrap(),
        &EmptyMap,
        &AttachmentLimits::default(),
    )
    .await
    .unwrap();
    let ToNetwork::Send(events) = converted else { panic!("{converted:?}") };
    let EventKind::Message(Message { content: Content::Text(text), reply_to: None }) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(text.html.as_deref(), Some("<h1>hi carol</h1>\n<p>from <em>matrix</em></p>"));
    node.node.shutdown().await.unwrap();
}

fn directory(resolver: StaticResolver) -> Directory {
    Directory::new(Arc::new(resolver), Arc::new(NoLinks))
}

/// [`start_relay`], keeping the delivery protocol the node runs.
async fn start_relay_keeping(
    db: &TestDb,
    resolver: StaticResolver,
    keep: Arc<Mutex<Option<Arc<dyn DeliveryProtocol>>>>,
) -> TestNode {
    let real = relay(resolver);
    let keeping: ProtocolFactory = Box::new(move |context| {
        let protocol = real(context);
        *keep.lock().unwrap() = Some(protocol.clone());
        protocol
    });
    support::node::start_node(
        |config| {
            config.database.url = Some(db.url.clone());
        },
        keeping,
    )
    .await
}

/// `POST /profile/:name`: the account, and its session token.
async fn register(node: &TestNode, identity: &Identity) -> String {
    let response = node
        .client
        .post(node.url(&format!("/profile/{}", identity.name)))
        .json(&identity.profile.to_value())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<String>().await.unwrap()
}

/// `GET /delivery/messages/incoming/:name`: the stored envelopes.
async fn incoming(node: &TestNode, identity: &Identity, token: &str) -> Vec<Value> {
    let response = node
        .client
        .get(node.url(&format!("/delivery/messages/incoming/{}", identity.name)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelopes: Vec<Value> = response.json().await.unwrap();
    for envelope in &envelopes {
        // The stored form: delivery information in clear, a postmark (P9).
        let parsed = Envelope::from_value(envelope.clone()).unwrap();
        assert!(parsed.postmark().is_some());
    }
    envelopes
}
