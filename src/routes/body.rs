//! Reading a request body with a hard size limit, before any parsing.
//!
//! The limit is checked twice: against `Content-Length` up front (a declared oversized body
//! is refused without reading a byte), and while streaming (a chunked or lying body is cut off
//! at the limit). Only a body that fits is handed to the JSON parser, so an oversized request
//! costs at most `limit` bytes of memory and no parsing (docs/design.md: check size before parsing).

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::ApiError;

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

/// Reads a JSON body of at most `limit` bytes.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<serde_json::Value, ApiError> {
    let bytes = read_limited(headers, body, limit).await?;
    serde_json::from_slice(&bytes).map_err(ApiError::parse_error)
}
