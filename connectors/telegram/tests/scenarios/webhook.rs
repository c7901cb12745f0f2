//! Webhook mode: registration with Telegram, the secret in path and header, bounded bodies,
//! and 200 only after the sink stored the update.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use dm3_bridge_connector::{Connector as _, Inbound};
use dm3_bridge_telegram::{ReceiveMode, WebhookConfig, WebhookSecret};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

use crate::support::Harness;

pub(crate) const SECRET: &str = "webhook-secret-0123456789abcdef";

pub(crate) async fn webhook_harness() -> Harness {
    webhook_harness_with(|_| {}).await
}

/// [`webhook_harness`], with `adjust` applied to the configuration last.
pub(crate) async fn webhook_harness_with(
    adjust: impl FnOnce(&mut dm3_bridge_telegram::TelegramConfig),
) -> Harness {
    Harness::with(|c| {
        c.mode = ReceiveMode::Webhook;
        c.webhook = Some(WebhookConfig {
            public_base_url: url::Url::parse("https://bridge.example.org").unwrap(),
            secret: WebhookSecret::new(SECRET),
            max_update_bytes: 4096,
        });
        adjust(c);
    })
    .await
}

fn update(update_id: u32, text: &str) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 5, "date": 1_700_000_000,
            "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 42, "type": "private", "first_name": "Ann"},
            "text": text,
        }
    })
    .to_string()
}

pub(crate) async fn post(
    router: &Router,
    path_secret: &str,
    header: Option<&str>,
    body: String,
) -> (StatusCode, String) {
    let mut request =
        Request::post(format!("/telegram/webhook/{path_secret}")).header("content-type", "application/json");
    if let Some(header) = header {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", header);
    }
    let response = router.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn start_registers_the_webhook_with_its_secret_one_connection_at_a_time() {
    let h = webhook_harness().await;
    h.connector.start().await.unwrap();
    let webhook = h.api.webhook().unwrap();
    assert_eq!(webhook["url"], format!("https://bridge.example.org/telegram/webhook/{SECRET}"));
    assert_eq!(webhook["secret_token"], SECRET);
    assert_eq!(webhook["max_connections"], 1, "one update at a time keeps them in order");
    assert_eq!(webhook["allowed_updates"], json!(["message", "edited_message", "message_reaction"]));
    assert_eq!(h.api.calls("getUpdates"), 0, "no polling in webhook mode");
    assert!(h.connector.webhook_router().is_some());
}

#[tokio::test]
async fn the_secret_is_checked_in_path_and_header() {
    let h = webhook_harness().await;
    let router = h.connector.webhook_router().unwrap();
    assert_eq!(
        post(&router, "wrong-secret-0123456789", Some(SECRET), update(1, "/help")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(post(&router, SECRET, None, update(1, "/help")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&router, SECRET, Some("nope"), update(1, "/help")).await.0, StatusCode::FORBIDDEN);
    assert!(h.sink.batches().is_empty());
}

#[tokio::test]
async fn an_update_is_acknowledged_only_once_stored_and_a_repeat_is_a_duplicate() {
    let h = webhook_harness().await;
    h.connector.start().await.unwrap();
    let router = h.connector.webhook_router().unwrap();
    h.sink.fail_next(1);
    let (status, _) = post(&router, SECRET, Some(SECRET), update(77, "/to bob.eth")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "not stored: Telegram must send it again");
    assert!(h.sink.batches().is_empty());
    for _ in 0..2 {
        let (status, _) = post(&router, SECRET, Some(SECRET), update(77, "/to bob.eth")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let batches = h.sink.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].key.as_str(), "update-77");
    assert!(
        matches!(&batches[0].items[..], [Inbound::PortalRequest(r)] if r.conversation.as_str() == "42/bob.eth")
    );
    assert_eq!(h.sink.duplicates(), 1);
    // The answer goes out in the chat's turn, after the 200; stopping lets it out.
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.sent_to(42).len(), 1, "answered once");
}

#[tokio::test]
async fn bodies_are_bounded_and_must_be_updates() {
    let h = webhook_harness().await;
    let router = h.connector.webhook_router().unwrap();
    let big = update(1, &"x".repeat(5000));
    assert_eq!(post(&router, SECRET, Some(SECRET), big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(post(&router, SECRET, Some(SECRET), "{\"no\":1}".into()).await.0, StatusCode::BAD_REQUEST);
    // An update of a kind the bridge does not know is stored (its id is remembered) and acknowledged.
    let (status, _) =
        post(&router, SECRET, Some(SECRET), json!({"update_id": 9, "poll": {"id": "x"}}).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.sink.batches().len(), 1);
    assert!(h.sink.batches()[0].items.is_empty());
}

#[tokio::test]
async fn polling_mode_has_no_webhook_route() {
    let h = Harness::new().await;
    assert!(h.connector.webhook_router().is_none());
}

#[tokio::test]
async fn a_reaction_arrives_through_the_webhook_and_one_without_its_actor_is_refused() {
    let h = webhook_harness().await;
    h.connector.start().await.unwrap();
    let router = h.connector.webhook_router().unwrap();
    let reaction = |update_id: u32, actor: serde_json::Value| {
        let mut update = json!({
            "update_id": update_id,
            "message_reaction": {
                "chat": {"id": 42, "type": "private", "first_name": "Ann"},
                "message_id": 5, "date": 1_700_000_000,
                "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            }
        });
        if let serde_json::Value::Object(actor) = actor {
            update["message_reaction"].as_object_mut().unwrap().extend(actor);
        }
        update.to_string()
    };
    let ann = json!({"user": {"id": 42, "is_bot": false, "first_name": "Ann"}});
    let (status, _) = post(&router, SECRET, Some(SECRET), reaction(10, ann)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.sink.batches()[0].key.as_str(), "update-10");
    // Telegram always names who reacted (`user` or `actor_chat`); a body that does not is refused,
    // not a crash of the route.
    let (status, _) = post(&router, SECRET, Some(SECRET), reaction(11, serde_json::Value::Null)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h.sink.batches().len(), 1);
}
