//! `GET/POST /profile/{name}`: an account's signed profile (docs/protocol.md §9).
//!
//! Thin HTTP shells: the DM3 work (resolving the name, checking the profile's signature
//! against the resolved address, issuing a token) is the plugged-in protocol's
//! ([`crate::protocol::DeliveryProtocol`]). Here: the body limit, JSON parsing, and the answer
//! shapes (`GET` → the profile object, `POST` → the token as a JSON string).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::http::body::read_json;
use crate::http::error::ApiError;

/// A signed user profile is a few hundred bytes; this leaves ample room and bounds abuse.
const PROFILE_BODY_LIMIT: usize = 64 * 1024;

pub async fn get_profile(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.protocol.get_profile(&name).await {
        Ok(profile) => Json(profile).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

pub async fn post_profile(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_json(&headers, body, PROFILE_BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    match state.protocol.register_profile(&name, body).await {
        Ok(token) => Json(token).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}
