//! What every admin handler reads from a request: the identity in the path and a JSON body,
//! bounded, each refusal an [`AdminError`] with its reason. Below the handlers, so that the
//! handlers of identities and of custody share it without using each other.

use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::http::admin_error::AdminError;
use crate::http::body::read_limited;
use crate::identities::IdentityRef;

/// A body read whole, within `limit` bytes, as JSON.
pub async fn read_json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value, AdminError> {
    let bytes = read_limited(headers, body, limit).await.map_err(|_| {
        AdminError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large")
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AdminError::bad_request(format!("the body is not JSON: {e}")))
}

/// The identity the path names: an ENS name or `network:userId`.
pub fn reference(id: Result<Path<String>, PathRejection>) -> Result<IdentityRef, AdminError> {
    let Path(id) =
        id.map_err(|e| AdminError::bad_request(format!("the identity in the path is unreadable: {e}")))?;
    Ok(id.parse::<IdentityRef>()?)
}
