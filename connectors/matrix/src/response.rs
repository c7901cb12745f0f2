//! Matrix-style answers of the application-service routes: `{}` or `{errcode, error}`.
//!
//! The homeserver reads only the status (and retries on anything but 2xx), but operators read
//! the body in its logs, so each refusal names what was wrong in the spec's errcode vocabulary.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A Matrix error answer.
#[derive(Debug)]
pub struct MatrixError {
    pub status: StatusCode,
    pub errcode: &'static str,
    pub message: String,
}

impl MatrixError {
    pub fn new(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Self { status, errcode, message: message.into() }
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", "the homeserver token is not valid")
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", "no homeserver token was presented")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", message)
    }

    pub fn unrecognized() -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "unrecognized request")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED", "method not allowed on this path")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("the body is larger than {limit} bytes"),
        )
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", message)
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errcode": self.errcode, "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// The empty success answer, `{}`.
pub fn empty() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}
