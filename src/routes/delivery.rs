//! Fetching and acknowledging stored envelopes (docs/protocol.md §9, §10.2).
//!
//! - `GET /delivery/messages/incoming/{name}`: the receiver's stored envelopes, newest first,
//!   within the reference's caps (101 conversations × 1001 envelopes, P24). The stored JSON
//!   texts are joined into the answer array as they are, never re-serialized.
//! - `POST /delivery/messages/{name}/syncAcknowledgements` with
//!   `{acknowledgements:[{contactAddress, messageHash}]}`: deletes those envelopes.
//!   `contactAddress` is the *sender's name* despite its spelling (P8). Acknowledging an
//!   envelope that is not there is not an error (clients acknowledge on every device).
//!
//! Both need `Authorization: Bearer <token>`; the token check is the protocol's
//! ([`crate::protocol::DeliveryProtocol::authorize`]) and happens before the body is read.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::body::read_json;
use super::error::ApiError;
use crate::clock::now_ms;
use crate::server::AppState;
use crate::store::{Acknowledgement, IncomingLimits};

/// Enough to acknowledge a whole `incoming` answer (101 × 1001 entries of ~150 bytes).
const ACK_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The most acknowledgements one request may carry: one full `incoming` answer.
const MAX_ACKS: usize = 101 * 1001;

pub async fn incoming(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match state.protocol.authorize(&name, crate::bearer::from_headers(&headers)).await {
        Ok(account) => account,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let envelopes = match state.store.list_incoming(&account, now_ms(), IncomingLimits::REFERENCE).await {
        Ok(envelopes) => envelopes,
        Err(error) => {
            return ApiError::from(error).into_response();
        }
    };
    let mut body = String::with_capacity(2 + envelopes.iter().map(|e| e.envelope.len() + 1).sum::<usize>());
    body.push('[');
    for (i, envelope) in envelopes.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&envelope.envelope);
    }
    body.push(']');
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn sync_acknowledgements(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let account = match state.protocol.authorize(&name, crate::bearer::from_headers(&headers)).await {
        Ok(account) => account,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let body = match read_json(&headers, body, ACK_BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let acks = match parse_acknowledgements(&state, &body) {
        Ok(acks) => acks,
        Err(error) => return error.into_response(),
    };
    match state.store.delete_acknowledged(&account, &acks).await {
        Ok(deleted) => {
            tracing::debug!(acknowledged = acks.len(), deleted, "acknowledgements");
            StatusCode::OK.into_response()
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn parse_acknowledgements(state: &AppState, body: &Value) -> Result<Vec<Acknowledgement>, ApiError> {
    let schema = "expected {\"acknowledgements\":[{\"contactAddress\":NAME,\"messageHash\":HASH}]}";
    let list = body
        .get("acknowledgements")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_params(schema))?;
    if list.len() > MAX_ACKS {
        return Err(ApiError::invalid_params(format!("at most {MAX_ACKS} acknowledgements per request")));
    }
    list.iter()
        .map(|ack| {
            let sender = ack.get("contactAddress").and_then(Value::as_str);
            let hash = ack.get("messageHash").and_then(Value::as_str);
            let (Some(sender), Some(hash)) = (sender, hash) else {
                return Err(ApiError::invalid_params(schema));
            };
            let sender = state.protocol.normalize_name(sender).map_err(ApiError::from)?;
            Acknowledgement::from_client(sender, hash).map_err(|e| ApiError::invalid_params(e.to_string()))
        })
        .filter_map(Result::transpose)
        .collect()
}
