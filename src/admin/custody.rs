//! The admin API's custody operations (docs/gateway.md sections 2 and 4): a self-custody
//! identity registered from a profile the user's wallet signed, and the switch either way.
//!
//! The body names the wallet and carries its signed profile, `{"address", "signedProfile"}`;
//! the vault checks the signature against the address as the reference does before anything
//! is written. Bodies are read bounded, like every admin body.

use alloy_primitives::Address;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dm3::crypto::eth::parse_address;
use dm3::profile::SignedUserProfile;
use serde_json::Value;

use super::AdminState;
use super::input::{read_json_body, reference};
use super::views::IdentityView;
use crate::clock::now_ms;
use crate::http::admin_error::AdminError;

/// A signed profile is a few hundred bytes; this leaves room for many delivery services.
pub const PROFILE_BODY_LIMIT: usize = 16 * 1024;

/// The user's wallet and the profile it signed, if the body carries them: both or neither.
pub fn self_custody_fields(body: &Value) -> Result<Option<(Address, SignedUserProfile)>, AdminError> {
    match (body.get("address"), body.get("signedProfile")) {
        (None, None) => Ok(None),
        (Some(address), Some(profile)) => {
            let address = address
                .as_str()
                .ok_or_else(|| AdminError::bad_request("\"address\" must be the wallet's 0x address"))
                .and_then(|text| {
                    parse_address(text).map_err(|e| AdminError::bad_request(format!("\"address\": {e}")))
                })?;
            let profile = SignedUserProfile::from_value(profile.clone())
                .map_err(|e| AdminError::bad_request(format!("\"signedProfile\": {e}")))?;
            Ok(Some((address, profile)))
        }
        _ => Err(AdminError::bad_request(
            "a self-custody identity needs both \"address\" (the user's wallet) and \"signedProfile\" (signed by it)",
        )),
    }
}

/// `POST /admin/identities/{id}/self-custody` with `{"address", "signedProfile"}`.
pub async fn to_self_custody(
    State(state): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let reference = reference(id)?;
    let body = read_json_body(&headers, body, PROFILE_BODY_LIMIT).await?;
    let (address, profile) = self_custody_fields(&body)?.ok_or_else(|| {
        AdminError::bad_request(
            "missing \"address\" (the user's wallet) and \"signedProfile\" (signed by it)",
        )
    })?;
    let identity = state.vault.switch_to_self_custody(&reference, address, profile, now_ms()).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

/// `POST /admin/identities/{id}/custodial`: a new wallet the node holds.
pub async fn to_custodial(
    State(state): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    let identity = state.vault.switch_to_custodial(&reference(id)?, now_ms()).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}
