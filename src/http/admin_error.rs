//! Admin errors on the wire: one status and one JSON body shape for every failure.
//!
//! `{"error": {"code": "not_found", "message": "no identity tg-1.tg.bridge.example.eth"}}`.
//! `code` is stable for scripts; `message` says what was wrong in the operator's terms (the
//! [`IdentityError`] texts). Internal failures (database, sealing, corrupt rows) are logged
//! with their detail and answered with a generic message, since the detail may name hosts or
//! files; no message ever carries key material, because none of the errors holds any.
//!
//! It is here, below the admin API, because the admin token check ([`super::admin_token`])
//! answers with it in front of `/metrics` as well as `/admin`.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::identities::IdentityError;

/// An admin API error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<IdentityError> for AdminError {
    fn from(error: IdentityError) -> Self {
        let message = error.to_string();
        match error {
            IdentityError::UserId(_) | IdentityError::BadReference(_) | IdentityError::InvalidPage { .. } => {
                Self::bad_request(message)
            }
            IdentityError::Scheme(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_name", message),
            IdentityError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            IdentityError::Exists { .. } => Self::new(StatusCode::CONFLICT, "exists", message),
            IdentityError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            IdentityError::SelfCustody(_) => Self::new(StatusCode::CONFLICT, "self_custody", message),
            IdentityError::Custodial(_) => Self::new(StatusCode::CONFLICT, "custodial", message),
            IdentityError::Pending { .. } => Self::new(StatusCode::CONFLICT, "pending", message),
            IdentityError::Profile(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_profile", message),
            IdentityError::Claim(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_claim", message),
            IdentityError::NoParent => Self::new(StatusCode::CONFLICT, "identities_disabled", message),
            IdentityError::Keys(_)
            | IdentityError::Seal(_)
            | IdentityError::Corrupt { .. }
            | IdentityError::Store(_) => {
                tracing::error!(detail = %message, "admin operation failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the node's log has the details",
                )
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } }).to_string();
        let mut response = (self.status, [(CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
