//! Webhook mode: the route Telegram POSTs updates to, `/telegram/webhook/<secret>`.
//!
//! Telegram treats any answer but 2xx as "not delivered" and sends the update again later, so
//! the route answers 200 only after the update handler returned `Ok` (the engine stored
//! the batch), and 500 when it could not: that is the acknowledgement, as the offset is for
//! polling. The connector registers the webhook with `max_connections = 1`, so Telegram sends one
//! update at a time, in order.
//!
//! The caller must prove it is Telegram: the path holds the secret, and the
//! `X-Telegram-Bot-Api-Secret-Token` header must carry it too. Both are compared in constant
//! time over SHA-256 digests, so neither the secret nor its length leaks through timing. The
//! body is read with a hard limit before it is parsed, and parsed as polling parses an update
//! (`updates`: a shape teloxide would panic on is refused with 400 first).
//!
//! Handling an update never waits for a send (the bot's answers are queued in their chat,
//! `crate::answers`), so a POST is answered as soon as the update is stored, whatever the
//! chat's backlog.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::WEBHOOK_PATH_PREFIX;
use crate::handler::UpdateHandler;
use crate::secret::WebhookSecret;
use crate::updates;

/// The header Telegram puts the secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

struct Webhook {
    secret_digest: [u8; 32],
    max_body_bytes: usize,
    handler: Arc<UpdateHandler>,
}

/// The router to mount at the root of the service's listener.
pub(crate) fn router(handler: Arc<UpdateHandler>, secret: &WebhookSecret, max_body_bytes: usize) -> Router {
    let state = Arc::new(Webhook { secret_digest: digest(secret.expose()), max_body_bytes, handler });
    Router::new().route(&format!("{WEBHOOK_PATH_PREFIX}/{{secret}}"), post(receive)).with_state(state)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Webhook {
    fn is_secret(&self, presented: &str) -> bool {
        bool::from(digest(presented).ct_eq(&self.secret_digest))
    }
}

async fn receive(
    State(webhook): State<Arc<Webhook>>,
    Path(path_secret): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A wrong path is "no such route": the route's existence is not confirmed to a scanner.
    if !webhook.is_secret(&path_secret) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match headers.get(SECRET_HEADER).map(|v| v.to_str().map(|s| webhook.is_secret(s))) {
        Some(Ok(true)) => {}
        None => return (StatusCode::UNAUTHORIZED, "missing secret token").into_response(),
        Some(_) => {
            tracing::warn!("webhook call with a wrong secret token");
            return (StatusCode::FORBIDDEN, "wrong secret token").into_response();
        }
    }
    let bytes = match read_limited(&headers, body, webhook.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let update = match updates::parse_bytes(&bytes) {
        Ok(update) => update,
        Err(malformed) => {
            tracing::warn!(update_id = malformed.update_id, reason = %malformed, "webhook body is not a Telegram update the bridge can read");
            return (StatusCode::BAD_REQUEST, "not a Telegram update").into_response();
        }
    };
    match webhook.handler.handle(&update).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(update_id = update.id.0, error = %e, "update not stored; Telegram will send it again");
            (StatusCode::INTERNAL_SERVER_ERROR, "not stored; retry later").into_response()
        }
    }
}

/// Reads at most `limit` bytes: a declared larger body is refused unread, a longer stream is
/// cut off at the limit.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large =
        || (StatusCode::PAYLOAD_TOO_LARGE, format!("an update is at most {limit} bytes")).into_response();
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err((StatusCode::BAD_REQUEST, "the body could not be read").into_response()),
    }
}
