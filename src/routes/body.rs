//! Reading a request body with a hard size limit, before any parsing.
//!
//! The limit is checked twice: against `Content-Length` up front (a declared oversized body
//! is refused without reading a byte), and while streaming (a chunked or lying body is cut off
//! at the limit). Only a body that fits is handed to the JSON parser, so an oversized request
//! costs at most `limit` bytes of memory and no parsing (DESIGN.md: check size before parsing).
//!
//! What a body costs while it is read is bounded by the server as well
//! (`crate::server::body_guard`): it must arrive in time, and its bytes come out of the
//! connection's and the node's body budgets, so that many bodies at once cannot exhaust memory
//! either. A body that fails there fails here as unreadable, and the server answers for it.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::ApiError;
use super::json::{MAX_VALUES, parse_value};

/// Reads at most `limit` bytes; more is a 413 [`ApiError::body_too_large`], which closes the
/// connection (the rest of the body is never read).
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::body_too_large()),
        Err(e) => Err(ApiError::invalid_request(format!("the request body could not be read: {e}"))),
    }
}

/// Reads a JSON body of at most `limit` bytes and [`MAX_VALUES`] values.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<serde_json::Value, ApiError> {
    let bytes = read_limited(headers, body, limit).await?;
    parse_value(&bytes, MAX_VALUES).map_err(ApiError::from)
}
