//! Messages from Telegram users to DM3 users: routing by current contact and by reply,
//! formatting, edits, and what cannot be bridged.

use dm3_bridge_connector::{Connector as _, Content, EventKind, Inbound, InboundEvent};
use serde_json::json;

use crate::support::{Harness, outbound, text_message};

fn event(item: &Inbound) -> &InboundEvent {
    match item {
        Inbound::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn to_then_a_plain_message_is_an_inbound_event_for_that_contact() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    let entities = json!([{"type": "bold", "offset": 6, "length": 5}, {"type": "text_link", "offset": 12, "length": 4, "url": "https://dm3.network/"}]);
    let (update, message) = h.api.user_formatted(42, "hello world docs", entities);
    let batches = h.sink.wait_for(2).await;
    assert_eq!(batches[1].key.as_str(), format!("update-{update}"));
    assert_eq!(batches[1].network.as_str(), "telegram");
    let event = event(&batches[1].items[0]);
    assert_eq!(event.conversation.as_str(), "42/bob.eth");
    assert_eq!(event.sender.as_str(), "42");
    assert_eq!(event.network_event_id.as_str(), format!("42:{message}"));
    assert!(event.timestamp_ms > 1_600_000_000_000, "seconds were read as seconds");
    match &event.kind {
        EventKind::Message(m) => {
            assert_eq!(m.reply_to, None);
            match &m.content {
                Content::Text(text) => {
                    assert_eq!(text.body, "hello **world** [docs](https://dm3.network/)");
                    assert_eq!(
                        text.html.as_deref(),
                        Some(r#"hello <b>world</b> <a href="https://dm3.network/">docs</a>"#)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.state.route(&format!("42:{message}")).as_deref(), Some("42/bob.eth"));
    h.connector.stop().await.unwrap();
}

/// The markdown body of the text message in the batch of `update`.
fn body_of(h: &Harness, update: u32) -> String {
    let batch = h.sink.batch_of(update).unwrap();
    match &event(&batch.items[0]).kind {
        EventKind::Message(m) => match &m.content {
            Content::Text(text) => text.body.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn text_links_reach_dm3_as_one_safe_link_or_as_plain_text() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    // A link whose URL would run code in a reader that follows it: its text alone.
    let (script, _) = h.api.user_formatted(
        42,
        "open the docs",
        json!([{"type": "text_link", "offset": 5, "length": 8, "url": "javascript:alert(document.cookie)"}]),
    );
    // A URL that would close the link and open a second one, and a link text that would too.
    let (smuggled, _) = h.api.user_formatted(
        42,
        "docs and more",
        json!([
            {"type": "text_link", "offset": 0, "length": 4, "url": "https://x.org/a)](javascript:alert(1))"},
            {"type": "text_link", "offset": 5, "length": 8, "url": "https://dm3.network/"},
        ]),
    );
    let (label, _) = h.api.user_formatted(
        42,
        "a](javascript:x)\n\n**b**",
        json!([{"type": "text_link", "offset": 0, "length": 23, "url": "https://dm3.network/"}]),
    );
    h.sink.wait_for_update(label).await;
    assert_eq!(body_of(&h, script), "open the docs");
    assert_eq!(
        body_of(&h, smuggled),
        "[docs](https://x.org/a%29%5D%28javascript:alert%281%29%29) [and more](https://dm3.network/)"
    );
    assert_eq!(body_of(&h, label), r"[a\]\(javascript:x\)  \*\*b\*\*](https://dm3.network/)");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_without_a_contact_gets_a_helpful_answer() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "hi there");
    let answers = h.api.wait_for_sent(42, 1).await;
    assert!(answers[0].text.contains("not writing to anyone yet"), "{}", answers[0].text);
    assert!(answers[0].text.contains("<code>/to alice.eth</code>"));
    let batches = h.sink.wait_for(1).await;
    assert!(batches[0].items.is_empty(), "the message went nowhere and says so");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_to_a_relayed_message_goes_to_its_sender() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    h.sink.wait_for(1).await;
    // alice.eth writes; the bot relays it into the same chat.
    let relayed = h
        .connector
        .send_message(&outbound(42, "alice.eth", "k1", text_message("hi from alice")))
        .await
        .unwrap();
    let (relayed_id, _) = dm3_bridge_telegram::ids::parse_message_id(&relayed).unwrap();
    h.api.user_reply(42, "hi alice", relayed_id.message);
    h.api.user_text(42, "and hi bob");
    let batches = h.sink.wait_for(3).await;
    let reply = event(&batches[1].items[0]);
    assert_eq!(reply.conversation.as_str(), "42/alice.eth", "a reply answers the relayed message's sender");
    match &reply.kind {
        EventKind::Message(m) => assert_eq!(m.reply_to.as_ref(), Some(&relayed)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        event(&batches[2].items[0]).conversation.as_str(),
        "42/bob.eth",
        "the current contact is unchanged"
    );
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn edits_of_relayed_messages_become_edit_events() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    let (_, message) = h.api.user_text(42, "helo");
    h.sink.wait_for(2).await;
    let update = h.api.user_edit(42, message, "hello");
    let batches = h.sink.wait_for(3).await;
    let edit = event(&batches[2].items[0]);
    assert_eq!(edit.conversation.as_str(), "42/bob.eth");
    assert_eq!(edit.network_event_id.as_str(), format!("42:{message}:edit-{update}"));
    match &edit.kind {
        EventKind::Edit(e) => {
            assert_eq!(e.target.as_str(), format!("42:{message}"));
            assert_eq!(e.text.body, "hello");
        }
        other => panic!("{other:?}"),
    }
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn kinds_dm3_cannot_carry_are_reported_not_dropped() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    let (_, message) = h.api.user_location(42);
    let batches = h.sink.wait_for(2).await;
    match &batches[1].items[0] {
        Inbound::Unbridgeable(u) => {
            assert_eq!(u.conversation.as_str(), "42/bob.eth");
            assert_eq!(u.network_event_id.as_str(), format!("42:{message}"));
            assert!(u.reason.contains("locations cannot be sent to DM3 users"), "{}", u.reason);
        }
        other => panic!("{other:?}"),
    }
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn messages_of_one_second_get_distinct_times_from_their_ids() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    // Telegram dates both in the same whole second (or the next: the test cannot stop the
    // clock); as DM3 messages with the same text they must still differ.
    let (_, first) = h.api.user_text(42, "ok");
    let (_, second) = h.api.user_text(42, "ok");
    let batches = h.sink.wait_for(3).await;
    let (a, b) = (event(&batches[1].items[0]), event(&batches[2].items[0]));
    assert_eq!(a.network_event_id.as_str(), format!("42:{first}"));
    assert_ne!(a.timestamp_ms, b.timestamp_ms);
    assert!(a.timestamp_ms < b.timestamp_ms, "in the order sent");
    // The milliseconds come from the message id, so handling an update again (a re-served
    // update) gives the same time, hence the same DM3 message.
    assert_eq!(a.timestamp_ms % 1000, u64::try_from(first % 1000).unwrap());
    assert_eq!(b.timestamp_ms % 1000, u64::try_from(second % 1000).unwrap());
    h.connector.stop().await.unwrap();
}
