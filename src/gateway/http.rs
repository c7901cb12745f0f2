//! The gateway's HTTP face: `GET /ccip/{sender}/{data}[.json]` and `POST /ccip`.
//!
//! EIP-3668 lets the resolver's URL template choose: with `{data}` in it the client GETs,
//! without it the client POSTs `{"data": …, "sender": …}`. Both are served, under `/ccip` so
//! the gateway cannot collide with the delivery-service routes; the template to register on
//! the resolver is `<public_url>/ccip/{sender}/{data}.json` (`docs/names.md`).
//!
//! Answers: `200 {"data": "0x…"}` (the signed response). Errors follow EIP-3668, which tells
//! clients to stop on a 4xx and show its JSON `message`: `400 {"message": …}` for every
//! malformed request, `500 {"message": "internal error"}` (details only in the log) when the
//! database fails, so a client may try the next gateway URL.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{Gateway, GatewayError, MAX_CALLDATA};
use crate::http::body::read_limited;
use crate::http::json::{JsonError, MAX_VALUES, parse_value};

/// The mount point of the gateway routes.
pub const MOUNT: &str = "/ccip";

/// A POST body holds two hex strings; anything much larger than the largest calldata is abuse.
const POST_BODY_LIMIT: usize = 2 * MAX_CALLDATA + 1024;

/// The gateway routes, with their state applied.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/ccip", post(post_request))
        .route("/ccip/{sender}/{data}", get(get_request))
        .with_state(gateway)
}

async fn get_request(
    State(gateway): State<Gateway>,
    Path((sender, data)): Path<(String, String)>,
) -> Response {
    let data = data.strip_suffix(".json").unwrap_or(&data);
    answer(gateway.respond_hex(&sender, data, now_secs()).await)
}

async fn post_request(State(gateway): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_limited(&headers, body, POST_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large"),
    };
    // Counted before it is built: the value is held while the lookup waits for the database.
    let parsed = match parse_value(&bytes, MAX_VALUES) {
        Ok(value) => value,
        Err(JsonError::Syntax(e)) => {
            return error(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}"));
        }
        Err(too_many @ JsonError::TooManyValues { .. }) => {
            return error(StatusCode::BAD_REQUEST, &too_many.to_string());
        }
    };
    let field = |key: &str| parsed.get(key).and_then(serde_json::Value::as_str);
    let (Some(sender), Some(data)) = (field("sender"), field("data")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"sender\": \"0x…\", \"data\": \"0x…\"}",
        );
    };
    answer(gateway.respond_hex(sender, data, now_secs()).await)
}

fn answer(result: Result<dm3::ccip::GatewayResponse, GatewayError>) -> Response {
    match result {
        Ok(response) => {
            (StatusCode::OK, [(CONTENT_TYPE, "application/json")], response.to_json_body()).into_response()
        }
        Err(GatewayError::Internal(detail)) => {
            tracing::error!(%detail, "gateway lookup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Err(GatewayError::TooLarge) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, &GatewayError::TooLarge.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], json!({ "message": message }).to_string()).into_response()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
