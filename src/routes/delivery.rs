//! Fetching and acknowledging stored envelopes (docs/protocol.md §9, §10.2).
//!
//! - `GET /delivery/messages/incoming/{name}`: the receiver's stored envelopes, newest first,
//!   within the reference's caps (101 conversations × 1001 envelopes, P24). The stored JSON
//!   texts are joined into the answer array as they are, never re-serialized.
//! - `POST /delivery/messages/{name}/syncAcknowledgements` with
//!   `{acknowledgements:[{contactAddress, messageHash}]}`: deletes those envelopes.
//!   `contactAddress` is the *sender's name* despite its spelling (P8). Acknowledging an
//!   envelope that is not there is not an error (clients acknowledge on every device). The
//!   body may be 16 MiB (a whole `incoming` answer acknowledged at once), so it is parsed into
//!   borrowed, typed entries ([`acknowledgements`]), never into a `serde_json::Value`, which
//!   would take some 35 times its size.
//!
//! Both need `Authorization: Bearer <token>`; the token check is the protocol's
//! ([`crate::protocol::DeliveryProtocol::authorize`]) and happens before the body is read.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dm3::ens::EnsName;
use dm3::message::MessageHash;
use std::collections::HashMap;

use super::acknowledgements;
use super::state::AppState;
use crate::clock::now_ms;
use crate::config::body_limits::ACK_BODY_LIMIT;
use crate::http::body::read_limited;
use crate::http::error::ApiError;
use crate::store::{Acknowledgement, IncomingLimits};

/// Acknowledgements deleted per store call: one conversation's worth of a full answer.
const DELETE_CHUNK: usize = 1001;

pub async fn incoming(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match state.protocol.authorize(&name, crate::http::bearer::from_headers(&headers)).await {
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
    let account = match state.protocol.authorize(&name, crate::http::bearer::from_headers(&headers)).await {
        Ok(account) => account,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let body = match read_limited(&headers, body, ACK_BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let result = match acknowledgements::parse(&body) {
        Ok(acks) => acknowledge(&state, &account, &acks).await,
        Err(error) => Err(error),
    };
    match result {
        Ok((acknowledged, deleted)) => {
            tracing::debug!(acknowledged, deleted, "acknowledgements");
            StatusCode::OK.into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// Deletes the acknowledged envelopes of `account`, [`DELETE_CHUNK`] at a time; answers how
/// many were acknowledged and how many existed.
///
/// Every entry is checked before anything is deleted, so a bad one refuses the whole request
/// as before. The owned names and hashes are then made one chunk at a time: all of them at
/// once would double what the request holds (they are as large as the body). A chunk that
/// fails leaves the earlier ones deleted, which is what the client asked for anyway; it sends
/// the whole list again and acknowledging twice is not an error.
async fn acknowledge(
    state: &AppState,
    account: &EnsName,
    acks: &[acknowledgements::Raw<'_>],
) -> Result<(usize, u64), ApiError> {
    // A full answer has at most 101 senders: each name is normalized once.
    let mut senders: HashMap<&str, EnsName> = HashMap::new();
    for ack in acks {
        if !senders.contains_key(ack.sender()) {
            senders
                .insert(ack.sender(), state.protocol.normalize_name(ack.sender()).map_err(ApiError::from)?);
        }
        message_hash(ack.message_hash())?;
    }
    let mut deleted = 0;
    for chunk in acks.chunks(DELETE_CHUNK) {
        let mut known = Vec::with_capacity(chunk.len());
        for ack in chunk {
            let sender = senders.get(ack.sender()).cloned();
            let sender = sender.ok_or_else(|| ApiError::invalid_params(acknowledgements::SCHEMA))?;
            // Text that is no message hash names no stored envelope: nothing to delete.
            if let Some(message_hash) = message_hash(ack.message_hash())? {
                known.push(Acknowledgement { sender, message_hash });
            }
        }
        let chunk = known;
        deleted += state.store.delete_acknowledged(account, &chunk).await?;
    }
    Ok((acks.len(), deleted))
}

fn message_hash(text: &str) -> Result<Option<MessageHash>, ApiError> {
    Acknowledgement::hash_from_client(text).map_err(|e| ApiError::invalid_params(e.to_string()))
}
