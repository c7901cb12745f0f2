//! `DELETE /admin/matrix/cross-signing/{userId}`: an admin accepts a Matrix user's new
//! cross-signing identity.
//!
//! With `[matrix] sender_trust = "cross-signed"` the bridge pins each sender's master key on
//! first sight and refuses their messages once another one is published
//! ([`crate::store::cross_signing_pins`]); the user is told an admin must accept it. Whether the
//! new key is the user's own (they reset their identity) or the homeserver's (an attack) is
//! something only a person can find out, out of band; once they did, this drops the pin, and the
//! user's next message pins what they publish then. It answers the pin it dropped, so the admin
//! sees which key the bridge had trusted.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AdminState;
use super::routes::store_error;
use crate::http::admin_error::AdminError;
use crate::store::CrossSigningPin;

/// The longest Matrix user id, in bytes (the spec's limit).
pub const MAX_USER_ID_BYTES: usize = 255;

/// A dropped pin, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PinView {
    pub user_id: String,
    pub master_key: String,
    pub pinned_at: i64,
}

impl From<CrossSigningPin> for PinView {
    fn from(pin: CrossSigningPin) -> Self {
        Self { user_id: pin.user_id, master_key: pin.master_key, pinned_at: pin.pinned_at_ms }
    }
}

/// Drops the pinned master key of the user the path names.
pub async fn accept_identity(
    State(state): State<AdminState>,
    user: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    let Path(user) =
        user.map_err(|e| AdminError::bad_request(format!("the user id in the path is unreadable: {e}")))?;
    if user.len() > MAX_USER_ID_BYTES {
        return Err(AdminError::bad_request(format!(
            "the user id is {} bytes long; a Matrix user id has at most {MAX_USER_ID_BYTES}",
            user.len()
        )));
    }
    let user = ruma::UserId::parse(user.as_str()).map_err(|e| {
        AdminError::bad_request(format!("{user:?} is not a Matrix user id (@name:server): {e}"))
    })?;
    match state.store.drop_cross_signing_pin(user.as_str()).await.map_err(store_error)? {
        Some(pin) => {
            tracing::info!(%user, dropped = pin.master_key, "an admin accepted a Matrix user's new cross-signing identity");
            Ok((StatusCode::OK, Json(PinView::from(pin))).into_response())
        }
        None => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no cross-signing identity is pinned for {user}"),
        )),
    }
}
