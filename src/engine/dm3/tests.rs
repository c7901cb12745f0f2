//! The steps together: a network event through `to_dm3`, sealing, the relay's stored form,
//! `open_inbound` and `to_network` comes back as the same event, for every kind; and a DM3
//! message through `to_network` for every DM3 type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ::dm3::crypto::signing::VerifyKey;
use ::dm3::message::{Attachment as Dm3Attachment, MessageHash, MessageType};
use dm3_bridge_connector::{
    Attachment, Content, ConversationId, Delete, Edit, EventKind, InboundEvent, Message, MimeType,
    NetworkMessageId, NetworkUserId, Reaction, ReactionKey, ReadReceipt, Text,
};

use super::FailureKind;
use super::attachments::AttachmentLimits;
use super::convert::{ConvertError, ToDm3, ToNetwork, delivery_receipt, to_dm3, to_network};
use super::open::{OpenedMessage, open_inbound};
use super::references::memory::MemoryReferences;
use super::testkit::{self, User};
use crate::identities::network::Network;
use crate::names::directory::Directory;

mod payload;

const ROOM: &str = "!room:example.org";

/// Bob is on the network (his virtual identity speaks for him), Alice is on DM3. Both know
/// the message `$orig` ↔ [`World::original`] in the room.
struct World {
    alice: User,
    bob: User,
    directory: Directory,
    references: MemoryReferences,
    original: MessageHash,
}

fn world() -> World {
    let alice = User::new("alice.eth");
    let bob = User::new("mx-bob.bridge.example.eth");
    let directory = testkit::directory(testkit::resolver(&[&alice, &bob], &[]));
    let original = alice.sign(alice.builder_to(&bob, 1).text("the original", None)).hash();
    let references = MemoryReferences::default();
    references.record(original, "$orig", ROOM);
    World { alice, bob, directory, references, original }
}

fn id(text: &str) -> NetworkMessageId {
    NetworkMessageId::new(text).unwrap()
}

fn event(kind: EventKind) -> InboundEvent {
    InboundEvent {
        conversation: ConversationId::new(ROOM).unwrap(),
        sender: NetworkUserId::new("@bob:example.org").unwrap(),
        network_event_id: id("$new"),
        timestamp_ms: 1_700_000_000_000,
        kind,
        original: None,
    }
}

fn room() -> ConversationId {
    ConversationId::new(ROOM).unwrap()
}

impl World {
    /// Network → DM3: Bob's event as his identity's message to Alice.
    async fn to_dm3(&self, kind: EventKind) -> Result<ToDm3, ConvertError> {
        let signing = &self.bob.keys.profile_keys().signing;
        to_dm3(
            &event(kind),
            Network::Matrix,
            &self.bob.name,
            &self.alice.name,
            signing,
            &self.references,
            &AttachmentLimits::default(),
        )
        .await
    }

    /// Sealed to `to`, stored by a relay, opened by `to`.
    async fn deliver_and_open(
        &self,
        message: &::dm3::message::Message,
        from: &User,
        to: &User,
    ) -> OpenedMessage {
        let stored = testkit::stored_for(message, from, to);
        open_inbound(&stored, &to.name, std::slice::from_ref(&to.keys), &self.directory).await.unwrap()
    }

    async fn to_network(&self, opened: &OpenedMessage) -> Result<ToNetwork, ConvertError> {
        to_network(opened, Network::Matrix, &room(), &self.references, &AttachmentLimits::default()).await
    }

    /// Network event → DM3 → network event, as two bridges back to back would.
    async fn round_trip(&self, kind: EventKind) -> Vec<EventKind> {
        let ToDm3::Send(built) = self.to_dm3(kind).await.unwrap() else { panic!("skipped") };
        assert_eq!(built.message.verify(&bob_key(self), self.bob.name.as_str()), Ok(()));
        let opened = self.deliver_and_open(&built.message, &self.bob, &self.alice).await;
        assert_eq!(opened.message_hash, built.hash);
        match self.to_network(&opened).await.unwrap() {
            ToNetwork::Send(events) => events,
            other => panic!("not sent as is: {other:?}"),
        }
    }
}

fn bob_key(world: &World) -> VerifyKey {
    VerifyKey::from_bytes(&world.bob.keys.profile_keys().signing.public()).unwrap()
}

fn text_message(body: &str) -> EventKind {
    EventKind::Message(Message::new(Content::Text(Text::plain(body))))
}

#[tokio::test]
async fn every_neutral_kind_survives_the_trip_through_dm3() {
    let w = world();
    let gif = Attachment::inline("a.gif", MimeType::new("image/gif").unwrap(), b"GIF89a".to_vec()).unwrap();
    let kinds = [
        text_message("hello alice"),
        EventKind::Message(Message::new(Content::Text(Text::plain("re"))).replying_to(id("$orig"))),
        EventKind::Message(Message::new(Content::Attachment {
            attachment: gif,
            caption: Some(Text::plain("look")),
        })),
        EventKind::Edit(Edit { target: id("$orig"), text: Text::plain("fixed") }),
        EventKind::Reaction(Reaction { target: id("$orig"), key: ReactionKey::new("👍").unwrap() }),
        EventKind::Delete(Delete { target: id("$orig"), reason: None }),
        EventKind::ReadReceipt(ReadReceipt { up_to: id("$orig") }),
    ];
    for kind in kinds {
        assert_eq!(w.round_trip(kind.clone()).await, vec![kind]);
    }
}

#[tokio::test]
async fn each_neutral_kind_becomes_the_dm3_type_the_messenger_understands() {
    let w = world();
    let cases = [
        (text_message("x"), MessageType::New, None),
        (
            EventKind::Message(Message::new(Content::Text(Text::plain("x"))).replying_to(id("$orig"))),
            MessageType::Reply,
            Some(w.original),
        ),
        (
            EventKind::Edit(Edit { target: id("$orig"), text: Text::plain("y") }),
            MessageType::Edit,
            Some(w.original),
        ),
        (
            EventKind::Reaction(Reaction { target: id("$orig"), key: ReactionKey::new("🎉").unwrap() }),
            MessageType::Reaction,
            Some(w.original),
        ),
        (
            EventKind::Delete(Delete { target: id("$orig"), reason: None }),
            MessageType::DeleteRequest,
            Some(w.original),
        ),
        (
            EventKind::ReadReceipt(ReadReceipt { up_to: id("$orig") }),
            MessageType::ReadOpened,
            Some(w.original),
        ),
    ];
    for (kind, expected, reference) in cases {
        let ToDm3::Send(built) = w.to_dm3(kind).await.unwrap() else { panic!("skipped") };
        assert_eq!(built.message.kind(), expected);
        assert_eq!(built.message.reference_message_hash(), reference.map(|h| h.to_string()).as_deref());
        assert_eq!(built.message.from(), w.bob.name.as_str());
        assert_eq!(built.message.to(), w.alice.name.as_str());
        assert_eq!(built.message.timestamp(), 1_700_000_000_000.0);
    }
}

#[tokio::test]
async fn converting_the_same_event_again_gives_the_same_message() {
    let w = world();
    let first = w.to_dm3(text_message("once")).await.unwrap();
    let again = w.to_dm3(text_message("once")).await.unwrap();
    assert_eq!(first, again, "a retried outbox job must not make a second message");
}

#[tokio::test]
async fn every_dm3_type_from_a_stock_client_becomes_its_neutral_event() {
    let w = world();
    let builder = w.alice.builder_to(&w.bob, 7);
    let target = &w.original;
    let cases: Vec<(::dm3::message::Message, ToNetwork)> = vec![
        (builder.text("plain", None), ToNetwork::Send(vec![text_message("plain")])),
        (
            builder.reply("*sure*", target, None),
            ToNetwork::Send(vec![EventKind::Message(
                Message::new(Content::Text(Text::formatted("*sure*", "<p><em>sure</em></p>")))
                    .replying_to(id("$orig")),
            )]),
        ),
        (
            builder.edit("better", target, None),
            ToNetwork::Send(vec![EventKind::Edit(Edit { target: id("$orig"), text: Text::plain("better") })]),
        ),
        (
            builder.reaction("❤️", target),
            ToNetwork::Send(vec![EventKind::Reaction(Reaction {
                target: id("$orig"),
                key: ReactionKey::new("❤️").unwrap(),
            })]),
        ),
        (
            builder.delete_request(target),
            ToNetwork::Send(vec![EventKind::Delete(Delete { target: id("$orig"), reason: None })]),
        ),
        (
            builder.read_opened(target),
            ToNetwork::Send(vec![EventKind::ReadReceipt(ReadReceipt { up_to: id("$orig") })]),
        ),
        (builder.read_received(target), ToNetwork::Skip("delivery receipts have no network counterpart")),
    ];
    for (message, expected) in cases {
        let kind = message.kind();
        let opened = w.deliver_and_open(&w.alice.sign(message), &w.alice, &w.bob).await;
        assert_eq!(w.to_network(&opened).await.unwrap(), expected, "{kind}");
    }
}

#[tokio::test]
async fn text_and_several_files_become_a_captioned_file_then_one_message_per_file() {
    let w = world();
    let files = vec![
        Dm3Attachment::inline("one.png", "image/png", b"1"),
        Dm3Attachment::named("site", "https://example.org/page"),
        Dm3Attachment::inline("two.pdf", "application/pdf", b"22"),
    ];
    let message =
        w.alice.sign(w.alice.builder_to(&w.bob, 7).reply("see **these**", &w.original, Some(files)));
    let opened = w.deliver_and_open(&message, &w.alice, &w.bob).await;
    let ToNetwork::Send(events) = w.to_network(&opened).await.unwrap() else { panic!("skipped") };
    assert_eq!(events.len(), 2);
    let EventKind::Message(first) = &events[0] else { panic!("{:?}", events[0]) };
    assert_eq!(first.reply_to, Some(id("$orig")), "the reply goes on the first part");
    let Content::Attachment { attachment, caption: Some(caption) } = &first.content else {
        panic!("{first:?}")
    };
    assert_eq!(attachment.name(), "one.png");
    assert_eq!(caption.body, "see **these**\n\nsite: https://example.org/page");
    assert_eq!(
        caption.html.as_deref(),
        Some("<p>see <strong>these</strong></p>\n<p>site: https://example.org/page</p>")
    );
    let EventKind::Message(second) = &events[1] else { panic!("{:?}", events[1]) };
    assert_eq!(second.reply_to, None);
    assert!(
        matches!(&second.content, Content::Attachment { attachment, caption: None } if attachment.name() == "two.pdf")
    );
    assert_eq!(ToNetwork::idempotency_suffix(0), "");
    assert_eq!(ToNetwork::idempotency_suffix(1), ".2");
}

#[tokio::test]
async fn unknown_targets_degrade_skip_or_fail_as_documented() {
    let w = world();
    let unknown = alice_message_hash(&w, "never bridged");
    let builder = w.alice.builder_to(&w.bob, 7);
    let open = async |message: ::dm3::message::Message| {
        let opened = w.deliver_and_open(&w.alice.sign(message), &w.alice, &w.bob).await;
        w.to_network(&opened).await
    };
    assert_eq!(
        open(builder.reply("still here", &unknown, None)).await.unwrap(),
        ToNetwork::Send(vec![text_message("still here")])
    );
    assert_eq!(
        open(builder.delete_request(&unknown)).await.unwrap(),
        ToNetwork::Skip("the deleted message was never bridged")
    );
    assert_eq!(
        open(builder.read_opened(&unknown)).await.unwrap(),
        ToNetwork::Skip("the read message was never bridged")
    );
    for message in [builder.edit("x", &unknown, None), builder.reaction("👍", &unknown)] {
        let error = open(message).await.unwrap_err();
        assert!(matches!(error, ConvertError::UnknownDm3Target { .. }), "{error}");
        assert_eq!(error.kind(), FailureKind::Permanent);
    }

    // The same both ways: the network side names targets DM3 never had.
    let reply =
        EventKind::Message(Message::new(Content::Text(Text::plain("hm"))).replying_to(id("$unknown")));
    let ToDm3::Send(built) = w.to_dm3(reply).await.unwrap() else { panic!("skipped") };
    assert_eq!(built.message.kind(), MessageType::New);
    let delete = EventKind::Delete(Delete { target: id("$unknown"), reason: None });
    assert_eq!(w.to_dm3(delete).await.unwrap(), ToDm3::Skip("the deleted message was never bridged"));
    let receipt = EventKind::ReadReceipt(ReadReceipt { up_to: id("$unknown") });
    assert_eq!(w.to_dm3(receipt).await.unwrap(), ToDm3::Skip("the read message was never bridged"));
    let edit = EventKind::Edit(Edit { target: id("$unknown"), text: Text::plain("x") });
    assert!(matches!(w.to_dm3(edit).await, Err(ConvertError::UnknownNetworkTarget { kind: "edit", .. })));
}

fn alice_message_hash(w: &World, text: &str) -> MessageHash {
    w.alice.sign(w.alice.builder_to(&w.bob, 3).text(text, None)).hash()
}

#[tokio::test]
async fn a_target_in_another_conversation_is_not_reachable() {
    let w = world();
    let elsewhere = alice_message_hash(&w, "in another room");
    w.references.record(elsewhere, "$other-room-event", "!other:example.org");
    let delete = w.alice.sign(w.alice.builder_to(&w.bob, 7).delete_request(&elsewhere));
    let opened = w.deliver_and_open(&delete, &w.alice, &w.bob).await;
    assert_eq!(
        w.to_network(&opened).await.unwrap(),
        ToNetwork::Skip("the deleted message was never bridged")
    );
    let edit = EventKind::Edit(Edit { target: id("$other-room-event"), text: Text::plain("x") });
    assert!(matches!(w.to_dm3(edit).await, Err(ConvertError::UnknownNetworkTarget { .. })));
}

#[tokio::test]
async fn an_unreadable_message_map_is_retried() {
    let mut w = world();
    w.references = MemoryReferences { unavailable: true, ..MemoryReferences::default() };
    let reply = EventKind::Message(Message::new(Content::Text(Text::plain("hm"))).replying_to(id("$orig")));
    let error = w.to_dm3(reply).await.unwrap_err();
    assert!(error.kind().is_retryable(), "{error}");
    let message = w.alice.sign(w.alice.builder_to(&w.bob, 7).edit("x", &w.original, None));
    let opened = w.deliver_and_open(&message, &w.alice, &w.bob).await;
    assert!(w.to_network(&opened).await.unwrap_err().kind().is_retryable());
}

#[tokio::test]
async fn malformed_content_is_refused_with_a_reason() {
    let w = world();
    let empty_reaction = w.alice.sign(w.alice.builder_to(&w.bob, 7).reaction("", &w.original));
    let opened = w.deliver_and_open(&empty_reaction, &w.alice, &w.bob).await;
    assert_eq!(w.to_network(&opened).await.unwrap_err(), ConvertError::BadReaction(String::new()));
    let empty = w.alice.sign(w.alice.builder_to(&w.bob, 7).text("  ", None));
    let opened = w.deliver_and_open(&empty, &w.alice, &w.bob).await;
    assert_eq!(w.to_network(&opened).await.unwrap_err(), ConvertError::Empty);
    assert_eq!(w.to_dm3(text_message("")).await.unwrap_err(), ConvertError::Empty);
    let too_many: Vec<Dm3Attachment> =
        (0..11).map(|_| Dm3Attachment::inline("f", "text/plain", b"x")).collect();
    let crowded = w.alice.sign(w.alice.builder_to(&w.bob, 7).text("files", Some(too_many)));
    let opened = w.deliver_and_open(&crowded, &w.alice, &w.bob).await;
    assert!(matches!(w.to_network(&opened).await, Err(ConvertError::Attachment(_))));
}

#[tokio::test]
async fn a_delivery_receipt_is_a_signed_read_received() {
    let w = world();
    let signing = &w.bob.keys.profile_keys().signing;
    let receipt = delivery_receipt(&w.bob.name, &w.alice.name, signing, &w.original, 42);
    assert_eq!(receipt.message.kind(), MessageType::ReadReceived);
    assert_eq!(receipt.message.text(), Some("READ_RECEIVED"));
    assert_eq!(receipt.message.reference_message_hash(), Some(w.original.to_string().as_str()));
    assert_eq!(receipt.message.verify(&bob_key(&w), w.bob.name.as_str()), Ok(()));
    assert_eq!(receipt, delivery_receipt(&w.bob.name, &w.alice.name, signing, &w.original, 42));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any text a network user writes reaches the other network with the same body (the HTML
    /// is the rendering of that body).
    #[test]
    fn any_text_keeps_its_body_through_dm3(body in "\\PC{1,200}") {
        proptest::prop_assume!(!body.trim().is_empty());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let events = runtime.block_on(async { world().round_trip(text_message(&body)).await });
        let expected = super::markdown::render_text(&body);
        proptest::prop_assert_eq!(
            events,
            vec![EventKind::Message(Message::new(Content::Text(expected)))]
        );
    }
}
