//! Replays (issue #16, item 6): an update served again after a later update of its chat is a
//! duplicate, and its state change (`/to`) is not made again: it would undo the later one.

use axum::http::StatusCode;
use dm3_bridge_connector::{Connector as _, Inbound};

use crate::support::Harness;
use crate::support::bot_api::wait_until;
use crate::webhook::{SECRET, post, webhook_harness};

/// The conversation the batch of update `update_id` went to.
fn conversation_of(h: &Harness, update_id: u32) -> String {
    let batch = h.sink.batch_of(update_id).expect("the update was stored");
    match &batch.items[..] {
        [Inbound::Event(event)] => event.conversation.to_string(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_replayed_to_does_not_undo_a_later_to_when_polling() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    let (to_alice, _) = h.api.user_text(42, "/to alice.eth");
    let (to_bob, _) = h.api.user_text(42, "/to bob.eth");
    h.sink.wait_for_update(to_bob).await;

    h.api.serve_again(to_alice);
    wait_until(|| (h.sink.duplicates() == 1).then_some(())).await;
    let (message, _) = h.api.user_text(42, "for bob");
    h.api.user_text(42, "/who");
    h.sink.wait_for_update(message).await;
    assert_eq!(conversation_of(&h, message), "42/bob.eth", "the replayed /to set alice again");
    let answers = h.api.wait_for_sent(42, 3).await;
    assert_eq!(answers[2].text, "You are writing to <b>bob.eth</b>.");
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.sent_to(42).len(), 3, "the replay was not answered");
}

#[tokio::test]
async fn a_replayed_to_does_not_undo_a_later_to_through_the_webhook() {
    let h = webhook_harness().await;
    h.connector.start().await.unwrap();
    let router = h.connector.webhook_router().unwrap();
    let (to_alice, _) = h.api.user_text(42, "/to alice.eth");
    let (to_bob, _) = h.api.user_text(42, "/to bob.eth");
    let (message, _) = h.api.user_text(42, "for bob");
    let body = |id: u32| h.api.update_json(id).to_string();
    for id in [to_alice, to_bob, to_alice, message] {
        assert_eq!(post(&router, SECRET, Some(SECRET), body(id)).await.0, StatusCode::OK);
    }
    assert_eq!(h.sink.duplicates(), 1);
    assert_eq!(conversation_of(&h, message), "42/bob.eth", "the replayed /to set alice again");
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.sent_to(42).len(), 2, "the replay was not answered");
}
