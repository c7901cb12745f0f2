//! `GET/POST /auth/{name}`: the challenge login (docs/protocol.md §9.2).
//!
//! `GET` returns a challenge as a JSON string, which the client signs verbatim with its
//! profile's Ed25519 key; `POST {signature, challenge}` returns a session token as a JSON
//! string. Issuing, checking and single use are the plugged-in protocol's job (with
//! `Store::create_challenge`/`consume_challenge`); this file is the HTTP shell.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::http::body::read_json;
use crate::http::error::ApiError;

/// `{signature, challenge}`: a signature and a token-sized challenge.
const AUTH_BODY_LIMIT: usize = 16 * 1024;

pub async fn get_challenge(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.protocol.issue_challenge(&name).await {
        Ok(challenge) => Json(challenge).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

pub async fn post_challenge(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_json(&headers, body, AUTH_BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    match state.protocol.redeem_challenge(&name, body).await {
        Ok(token) => Json(token).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}
