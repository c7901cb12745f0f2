//! Errors on the wire: an HTTP status plus a JSON-RPC 2.0 error object, from one place.
//!
//! Every error answer of the node has the body
//! `{"jsonrpc":"2.0","error":{"code":C,"message":M}}` (and the request's `id`, if it had one).
//! The reference DS answers errors with assorted bodies (`{error}`, `{message}`, text, or
//! nothing) and clients look only at the status (docs/protocol.md §9.1, P10), so one shape for all
//! routes costs no compatibility and gives clients something to show. `message` carries the
//! reference's wording where there is one (`Method not allowed`, `Message is too large`).
//!
//! Codes: the JSON-RPC standard ones (-32700 parse error, -32600 invalid request, -32601
//! method not found, -32602 invalid params, -32603 internal) and the DM3 spec's application
//! codes (dm3-spec "API Delivery-Service", docs/protocol.md §9.1): -32000 invalid input, -32001
//! resource not found, -32002 resource unavailable, -32003 unauthorized, -32010 spam, -32011
//! too big. Each [`Rejection`] has its code here, and its own `message`:
//!
//! | condition | HTTP | code |
//! | --- | --- | --- |
//! | body not JSON | 400 | -32700 |
//! | malformed params, schema, name; a JSON body of too many values | 400 | -32602 |
//! | envelope larger than `size_limit` | 413 | -32011 |
//! | unknown account / unknown user | 400 | -32001 |
//! | name does not resolve | 400 | -32001 |
//! | delivery information does not open, hash mismatch | 400 | -32000 |
//! | bad signature, unresolved sender, bad challenge | 400 | -32003 |
//! | registering a name the node serves, or a profile that does not list the node | 400 | -32003 |
//! | spam | 400 | -32010 |
//! | past a per-sender or per-bridged-user rate limit (docs/relay.md, "Block and rate limits") | 429 | -32010 |
//! | the bridged user blocked the sender, or left the conversation with them | 400 | -32012 |
//! | the receiver's queue from this sender is full (a bridged user, docs/engine.md "Bounds") | 429 | -32005 |
//! | missing or invalid token | 401 | -32003 |
//! | no such account (`GET /profile`, `/auth`) | 404 | -32001 |
//! | shutting down, database or name source down | 503 | -32002 |
//! | internal | 500 | -32603 |
//!
//! Refusals stay 400 as in the reference DS, whose clients branch on 4xx versus 2xx only, and
//! react to 401 by logging in again (docs/protocol.md §9.2): a refused submit or login must not be
//! a 401, or a client would loop.
//!
//! Internal errors are logged with their detail and answered with a generic message: the
//! detail may name files, tables or hosts.

use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{CONNECTION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::json::JsonError;
use crate::protocol::{DeliveryError, Rejection};
use crate::store::StoreError;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
/// DM3 spec: missing or invalid input.
pub const INVALID_INPUT: i32 = -32000;
/// DM3 spec: the requested resource does not exist.
pub const NOT_FOUND: i32 = -32001;
/// DM3 spec: the requested resource is not available (now).
pub const UNAVAILABLE: i32 = -32002;
/// DM3 spec: the caller is not authorized.
pub const UNAUTHORIZED: i32 = -32003;
/// DM3 spec: the sender does not meet the receiver's spam rules.
pub const SPAM: i32 = -32010;
/// DM3 spec: the message is larger than the delivery service's `sizeLimit`.
pub const TOO_LARGE: i32 = -32011;
/// Ours, in the DM3 spec's application range beside -32010 and -32011, which has no code for
/// it: the receiver blocked the sender. Not -32010 (spam), which a retry later may clear, nor
/// -32003 (unauthorized), which says the sender's credentials are at fault (docs/relay.md,
/// "Block and rate limits").
pub const BLOCKED: i32 = -32012;
/// DM3 spec: rate limited, retry later (what the engine's own delivery client reads as such).
pub const RATE_LIMITED: i32 = -32005;

/// An error answer: status, JSON-RPC code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i32,
    pub message: String,
    pub id: Option<Value>,
    /// Answer with `Connection: close`: the request body was left unread, so the connection
    /// cannot carry another request.
    pub close_connection: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), id: None, close_connection: false }
    }

    /// Echoes the JSON-RPC request id, if the request had one.
    pub fn with_id(mut self, id: Option<Value>) -> Self {
        self.id = id;
        self
    }

    /// 413: the body is larger than the route accepts.
    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE, "Message is too large")
    }

    /// 413 for a raw body over its limit, refused before it was read to the end. The server
    /// drops such a connection after answering, so the answer says `Connection: close`: a
    /// pooling client then does not send its next request on a connection about to close.
    pub fn body_too_large() -> Self {
        Self { close_connection: true, ..Self::too_large() }
    }

    /// 400: the body is not JSON.
    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, PARSE_ERROR, format!("the body is not valid JSON: {detail}"))
    }

    /// 400: well-formed JSON of the wrong shape.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
    }

    /// 400: the params do not fit the method.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, INVALID_PARAMS, message)
    }

    /// 405 `Method not allowed`, the reference's answer to an unknown JSON-RPC method.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_FOUND, "Method not allowed")
    }
}

impl From<DeliveryError> for ApiError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::InvalidRequest(message) => Self::invalid_params(message),
            DeliveryError::TooLarge => Self::too_large(),
            DeliveryError::Rejected { reason, message } => {
                Self::new(StatusCode::BAD_REQUEST, rejection_code(reason), message)
            }
            DeliveryError::Unauthorized(message) => {
                Self::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED, message)
            }
            DeliveryError::NotFound(message) => Self::new(StatusCode::NOT_FOUND, NOT_FOUND, message),
            DeliveryError::Backlogged(message) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED, message)
            }
            DeliveryError::SpamLimited(message) => Self::new(StatusCode::TOO_MANY_REQUESTS, SPAM, message),
            e @ DeliveryError::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, e.to_string())
            }
            DeliveryError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR, "internal error")
            }
        }
    }
}

/// The JSON-RPC code of a refusal (table in the module documentation).
pub fn rejection_code(reason: Rejection) -> i32 {
    match reason {
        Rejection::UnknownAccount | Rejection::UnresolvedName => NOT_FOUND,
        Rejection::Undecryptable | Rejection::HashMismatch => INVALID_INPUT,
        Rejection::BadSignature | Rejection::UnresolvedSender | Rejection::InvalidChallenge => UNAUTHORIZED,
        Rejection::ReservedName | Rejection::NotThisNode => UNAUTHORIZED,
        Rejection::Spam => SPAM,
        Rejection::Blocked => BLOCKED,
    }
}

impl From<JsonError> for ApiError {
    fn from(error: JsonError) -> Self {
        match error {
            JsonError::Syntax(e) => Self::parse_error(e),
            too_many @ JsonError::TooManyValues { .. } => {
                Self::invalid_params(format!("invalid schema: {too_many}"))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        DeliveryError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "jsonrpc": "2.0",
            "error": { "code": self.code, "message": self.message },
        });
        if let (Some(id), Some(object)) = (self.id, body.as_object_mut()) {
            object.insert("id".to_owned(), id);
        }
        let mut response =
            (self.status, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if self.close_connection {
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
