//! Reactions of Telegram users: to the sender of the reacted-to message as reactions, taken back
//! as deletes of the reaction that added them, and what is dropped (custom emoji, paid
//! reactions, messages the bridge never relayed) without holding up later updates.

use dm3_bridge_connector::{
    Connector as _, ConnectorError, Delete, DeleteHandling as _, EventKind, Inbound, InboundBatch,
    InboundEvent, NetworkMessageId,
};
use serde_json::json;

use crate::support::bot_api::wait_until;
use crate::support::{Harness, outbound, text_message};

/// The one event of `batch`.
fn only_event(batch: &InboundBatch) -> &InboundEvent {
    match &batch.items[..] {
        [Inbound::Event(event)] => event,
        other => panic!("expected one event, got {other:?}"),
    }
}

/// `(event id, kind)` of every item of `batch`, for comparing whole batches at once.
fn events(batch: &InboundBatch) -> Vec<(String, EventKind)> {
    batch
        .items
        .iter()
        .map(|item| match item {
            Inbound::Event(event) => (event.network_event_id.to_string(), event.kind.clone()),
            other => panic!("expected an event, got {other:?}"),
        })
        .collect()
}

fn reaction(target: &NetworkMessageId, emoji: &str) -> EventKind {
    EventKind::Reaction(dm3_bridge_connector::Reaction {
        target: target.clone(),
        key: dm3_bridge_connector::ReactionKey::new(emoji).unwrap(),
    })
}

fn taken_back(reaction_id: &str) -> EventKind {
    EventKind::Delete(Delete { target: NetworkMessageId::new(reaction_id).unwrap(), reason: None })
}

/// A harness whose chat 42 writes to bob.eth and holds a message relayed from alice.eth;
/// answers it and alice's message's id.
async fn with_a_message_from_alice() -> (Harness, NetworkMessageId, i32) {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    h.sink.wait_for(1).await;
    let relayed = h
        .connector
        .send_message(&outbound(42, "alice.eth", "k1", text_message("hi from alice")))
        .await
        .unwrap();
    let message = dm3_bridge_telegram::ids::parse_message_id(&relayed).unwrap().0.message;
    (h, relayed, message)
}

#[tokio::test]
async fn a_reaction_goes_to_the_sender_of_the_reacted_message_and_is_taken_back_by_its_id() {
    // The fake, as Telegram, sends `message_reaction` only to a bot that asked for it by name.
    let (h, relayed, message) = with_a_message_from_alice().await;
    let thumbs = "f09f918d";
    let heart = "e29da4";

    // 👍 on alice's message: a reaction in alice's conversation, though bob is the contact.
    let first = h.api.user_reaction(42, message, &["👍"]);
    let batches = h.sink.wait_for(2).await;
    assert_eq!(batches[1].key.as_str(), format!("update-{first}"));
    let event = only_event(&batches[1]);
    assert_eq!(event.conversation.as_str(), "42/alice.eth", "the reacted-to message decides");
    assert_eq!(event.sender.as_str(), "42");
    let thumbs_first = format!("42:{message}:reacted-42-{thumbs}-u{first}");
    assert_eq!(event.network_event_id.as_str(), thumbs_first);
    assert_eq!(event.kind, reaction(&relayed, "👍"));
    assert!(event.timestamp_ms > 1_600_000_000_000, "seconds were read as seconds");
    assert_eq!(event.timestamp_ms % 1000, u64::from(first % 1000), "the update id fills the milliseconds");
    assert_eq!(event.original, None);

    // 👍 swapped for ❤: the 👍 taken back first, then ❤.
    let swap = h.api.user_reaction(42, message, &["❤"]);
    let heart_id = format!("42:{message}:reacted-42-{heart}-u{swap}");
    // Everything taken back: the ❤ reaction is deleted by the id it was added under.
    let cleared = h.api.user_reaction(42, message, &[]);
    // 👍 again is a new reaction (a new id, not a replay of the first), and taking it back
    // names the new one.
    let again = h.api.user_reaction(42, message, &["👍"]);
    let removed = h.api.user_reaction(42, message, &[]);
    let batches = h.sink.wait_for(6).await;
    assert_eq!(
        events(&batches[2]),
        [
            (format!("42:{message}:unreacted-42-{thumbs}-u{swap}"), taken_back(&thumbs_first)),
            (heart_id.clone(), reaction(&relayed, "❤")),
        ]
    );
    assert_eq!(
        events(&batches[3]),
        [(format!("42:{message}:unreacted-42-{heart}-u{cleared}"), taken_back(&heart_id))]
    );
    let thumbs_again = format!("42:{message}:reacted-42-{thumbs}-u{again}");
    assert_eq!(events(&batches[4]), [(thumbs_again.clone(), reaction(&relayed, "👍"))]);
    assert_eq!(
        events(&batches[5]),
        [(format!("42:{message}:unreacted-42-{thumbs}-u{removed}"), taken_back(&thumbs_again))]
    );
    assert!(
        batches[2..].iter().flat_map(|b| &b.items).all(|item| item.conversation().as_str() == "42/alice.eth")
    );
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn reactions_the_bridge_cannot_carry_are_dropped_and_later_updates_still_flow() {
    let (h, _, message) = with_a_message_from_alice().await;
    // A message the bridge never relayed (a command of the user's own) and one that does not exist.
    h.api.user_reaction(42, 1, &["👍"]);
    h.api.user_reaction(42, 9999, &["🔥"]);
    // Custom emoji and paid reactions have no DM3 form; taking back what was never relayed
    // has nothing to delete.
    h.api.user_reaction_types(
        42,
        message,
        json!([{"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"}, {"type": "paid"}]),
    );
    h.api.user_reaction_types(42, message, json!([]));
    let (_, later) = h.api.user_text(42, "still here");
    let batches = h.sink.wait_for(6).await;
    for batch in &batches[1..5] {
        assert!(batch.items.is_empty(), "nothing to relay, yet stored and confirmed: {batch:?}");
    }
    let event = only_event(&batches[5]);
    assert_eq!(event.network_event_id.as_str(), format!("42:{later}"));
    assert_eq!(event.conversation.as_str(), "42/bob.eth");
    wait_until(|| (h.api.pending_updates() == 0).then_some(())).await;
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_dm3_user_cannot_take_back_a_telegram_users_reaction() {
    let (h, _, message) = with_a_message_from_alice().await;
    h.api.user_reaction(42, message, &["👍"]);
    let batches = h.sink.wait_for(2).await;
    let reaction_id = only_event(&batches[1]).network_event_id.clone();
    let delete = outbound(42, "alice.eth", "k2", Delete { target: reaction_id, reason: None });
    match h.connector.send_delete(&delete).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("only by that user"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(h.api.deleted().is_empty(), "the reacted-to message was not deleted instead");
    assert_eq!(h.api.calls("setMessageReaction"), 0);
    h.connector.stop().await.unwrap();
}
