//! Fairness (issue #16, item 3): one user's flood of commands holds up neither another user's
//! updates nor the bot's answers to them. Telegram's own pace is on here: one message per
//! second per chat, 30 per second overall.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dm3_bridge_connector::{Connector as _, Inbound};
use dm3_bridge_telegram::RateLimits;
use serde_json::json;

use crate::support::Harness;
use crate::support::bot_api::{BotApi, wait_until};
use crate::webhook::{SECRET, post, webhook_harness_with};

/// Telegram's limits, as a bridge in production keeps them.
const TELEGRAMS_PACE: RateLimits =
    RateLimits { per_chat_interval_ms: 1000, global_per_second: 30, max_wait_ms: 5000 };
/// How soon the other user's update is handled and answered: the answers of thirty commands
/// took the old code 29 s; one chat interval (1 s) plus a wide margin.
const BOUND: Duration = Duration::from_secs(2);
const FLOODER: i64 = 42;
const OTHER: i64 = 43;
const FLOOD: usize = 30;

#[tokio::test]
async fn thirty_commands_from_one_user_do_not_hold_up_another_user_when_polling() {
    let h = Harness::with(|c| c.rate_limits = TELEGRAMS_PACE).await;
    h.connector.start().await.unwrap();
    let (to, _) = h.api.user_text(OTHER, "/to alice.eth");
    h.sink.wait_for_update(to).await;
    h.api.wait_for_sent(OTHER, 1).await;

    for _ in 0..FLOOD {
        h.api.user_text(FLOODER, "/start");
    }
    let sent_at = Instant::now();
    let (hello, _) = h.api.user_text(OTHER, "hello alice");
    h.api.user_text(OTHER, "/who");
    let batch = h.sink.wait_for_update(hello).await;
    let handed_over = sent_at.elapsed();
    let answer = h.api.wait_for_sent(OTHER, 2).await;
    let answered = sent_at.elapsed();
    assert!(
        matches!(&batch.items[..], [Inbound::Event(e)] if e.conversation.as_str() == "43/alice.eth"),
        "{batch:?}"
    );
    assert!(handed_over < BOUND, "the message reached the engine {handed_over:?} after it was sent");
    assert_eq!(answer[1].text, "You are writing to <b>alice.eth</b>.");
    assert!(answered < BOUND, "/who was answered {answered:?} after it was sent");

    // The flooder's own chat keeps Telegram's pace: a second apart, and still going.
    assert_paced(&h.api, FLOODER).await;
    assert!(h.api.sent_to(FLOODER).len() < FLOOD, "thirty answers in a chat take half a minute");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn thirty_commands_from_one_user_do_not_hold_up_another_user_through_the_webhook() {
    let h = webhook_harness_with(|c| c.rate_limits = TELEGRAMS_PACE).await;
    h.connector.start().await.unwrap();
    let router = h.connector.webhook_router().unwrap();
    let mut next_id = 100;
    let mut send = |user: i64, text: &str| {
        next_id += 1;
        text_update(next_id, user, text)
    };
    assert_eq!(post(&router, SECRET, Some(SECRET), send(OTHER, "/to alice.eth")).await.0, StatusCode::OK);
    h.api.wait_for_sent(OTHER, 1).await;

    // Each POST is answered once the update is stored, not after its answer's send slot.
    let flood = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..FLOOD {
        let posted = Instant::now();
        assert_eq!(post(&router, SECRET, Some(SECRET), send(FLOODER, "/start")).await.0, StatusCode::OK);
        slowest = slowest.max(posted.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "the slowest POST took {slowest:?}");
    assert!(flood.elapsed() < BOUND, "thirty POSTs took {:?}", flood.elapsed());

    let sent_at = Instant::now();
    let message = send(OTHER, "hello alice");
    assert_eq!(post(&router, SECRET, Some(SECRET), message).await.0, StatusCode::OK);
    assert!(sent_at.elapsed() < BOUND);
    let stored = h.sink.batches().into_iter().last().unwrap();
    assert!(
        matches!(&stored.items[..], [Inbound::Event(e)] if e.conversation.as_str() == "43/alice.eth"),
        "{stored:?}"
    );
    assert_eq!(post(&router, SECRET, Some(SECRET), send(OTHER, "/who")).await.0, StatusCode::OK);
    let answer = h.api.wait_for_sent(OTHER, 2).await;
    assert_eq!(answer[1].text, "You are writing to <b>alice.eth</b>.");
    assert!(sent_at.elapsed() < BOUND, "/who was answered {:?} after the message", sent_at.elapsed());

    assert_paced(&h.api, FLOODER).await;
    h.connector.stop().await.unwrap();
}

/// The bot's first two messages to `chat` came a chat interval apart.
async fn assert_paced(api: &BotApi, chat: i64) {
    wait_until(|| (api.sent_to(chat).len() >= 2).then_some(())).await;
    let calls: Vec<Instant> = api
        .log()
        .into_iter()
        .filter(|c| c.method == "sendmessage" && c.chat == Some(chat) && c.status == 200)
        .map(|c| c.at)
        .collect();
    let gap = calls[1].duration_since(calls[0]);
    // The fake logs arrival; a request can arrive a little later than its turn began.
    assert!(gap >= Duration::from_millis(950), "two answers in one chat {gap:?} apart");
}

/// A private text message from `user` as Telegram POSTs it.
fn text_update(update_id: u32, user: i64, text: &str) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 1_700_000_000,
            "from": {"id": user, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": user, "type": "private", "first_name": "Ann"},
            "text": text,
        }
    })
    .to_string()
}
