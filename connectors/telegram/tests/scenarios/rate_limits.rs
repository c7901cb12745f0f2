//! Rate limits: Telegram's 429 becomes "retry after" for the engine, and a retrying outbox
//! delivers everything, in order, once.

use std::time::{Duration, Instant};

use dm3_bridge_connector::{Connector as _, ConnectorError};
use dm3_bridge_telegram::RateLimits;

use crate::support::{Harness, outbound, text_message};

#[tokio::test]
async fn a_429_storm_delivers_all_100_in_order_exactly_once() {
    let h = Harness::new().await;
    // Every 7th sendMessage is refused with retry_after = 1, as Telegram does under flood control.
    h.api.rate_limit_every("sendMessage", 7, 1);
    let mut retries = 0;
    // The loop stands in for the engine's outbox: one job at a time per conversation, retried
    // after the delay the connector reports.
    for i in 0..100 {
        let request = outbound(42, "alice.eth", &format!("msg-{i}"), text_message(&format!("message {i}")));
        loop {
            match h.connector.send_message(&request).await {
                Ok(_) => break,
                Err(ConnectorError::RetryAfter(delay)) => {
                    assert_eq!(delay, Some(Duration::from_secs(1)));
                    retries += 1;
                    tokio::time::sleep(delay.unwrap()).await;
                }
                Err(e) => panic!("message {i}: {e}"),
            }
        }
    }
    let texts: Vec<String> = h.api.sent_to(42).into_iter().map(|s| s.text).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("<b>alice.eth</b>: message {i}")).collect();
    assert_eq!(texts, expected, "all 100, in order, none twice");
    assert!(retries >= 14, "the storm was real: {retries} retries");
    assert_eq!(h.api.calls("sendMessage"), 100 + retries);
}

#[tokio::test]
async fn the_limiter_paces_one_chat_and_hands_back_far_slots() {
    let h = Harness::with(|c| {
        c.rate_limits = RateLimits { per_chat_interval_ms: 200, global_per_second: 30, max_wait_ms: 500 }
    })
    .await;
    let start = Instant::now();
    for i in 0..3 {
        h.connector
            .send_message(&outbound(42, "alice.eth", &format!("a{i}"), text_message("paced")))
            .await
            .unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(400), "three sends into one chat take two intervals");
    // Another chat is not held up by the first.
    let other = Instant::now();
    h.connector.send_message(&outbound(43, "alice.eth", "b0", text_message("other chat"))).await.unwrap();
    assert!(other.elapsed() < Duration::from_millis(150));
    // After a 429 with retry_after = 1 the chat's next slot is a second away: past max_wait,
    // so the connector answers "retry after" without calling Telegram.
    h.api.fail_next("sendMessage", crate::support::bot_api::Failure::too_many(1));
    assert_eq!(
        h.connector.send_message(&outbound(44, "alice.eth", "c0", text_message("x"))).await,
        Err(ConnectorError::RetryAfter(Some(Duration::from_secs(1))))
    );
    let calls = h.api.calls("sendMessage");
    match h.connector.send_message(&outbound(44, "alice.eth", "c1", text_message("y"))).await {
        Err(ConnectorError::RetryAfter(Some(wait))) => assert!(wait > Duration::from_millis(500)),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.api.calls("sendMessage"), calls, "no call while the chat is rate limited");
}
