//! The admin API handlers: thin HTTP shells over [`IdentityVault`](crate::identities::IdentityVault).
//!
//! Each handler parses its input into typed values (every rejection becomes an
//! [`AdminError`] with a JSON body, including axum's own path rejections), calls one vault
//! operation and answers a view from [`super::views`]. `docs/admin-api.yaml` documents them.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AdminState;
use super::custody::{PROFILE_BODY_LIMIT, self_custody_fields};
use super::input::{read_json_body, reference};
use super::views::{ConversationsView, IdentityView, PageView, PortalPageView, PortalView, ProfileView};
use crate::clock::now_ms;
use crate::http::admin_error::AdminError;
use crate::identities::vault::{DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::identities::{IdentityError, Network, NetworkUserId, Page};
use crate::store::portals::MAX_PAGE as MAX_PORTALS_PAGE;

/// Longest search term, in bytes: longer than any name or network user id.
pub const MAX_SEARCH_BYTES: usize = 200;
/// The most conversations one answer lists.
pub const CONVERSATIONS_LIMIT: u32 = 1_000;

type Answer = Result<Response, AdminError>;

pub async fn gateway(State(state): State<AdminState>) -> Answer {
    Ok(Json(state.gateway.clone()).into_response())
}

/// `POST /admin/identities` with `{"network": "telegram"|"matrix", "userId": "…"}`, and for a
/// self-custody identity `"address"` and `"signedProfile"` (docs/gateway.md section 2).
pub async fn create(State(state): State<AdminState>, headers: HeaderMap, body: Body) -> Answer {
    let body = read_json_body(&headers, body, PROFILE_BODY_LIMIT).await?;
    let network = body
        .get("network")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::bad_request("missing \"network\": \"telegram\" or \"matrix\""))?;
    let network: Network = network
        .parse()
        .map_err(|e: crate::identities::network::UnknownNetwork| AdminError::bad_request(e.to_string()))?;
    let user_id = match body.get("userId") {
        Some(Value::String(text)) => text.clone(),
        // A Telegram id sent as a JSON number is still unambiguous.
        Some(Value::Number(number)) if network == Network::Telegram => number.to_string(),
        _ => {
            return Err(AdminError::bad_request(
                "missing \"userId\": the user's id on the network, as a string",
            ));
        }
    };
    let user = NetworkUserId::parse(network, &user_id).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let identity = match self_custody_fields(&body)? {
        Some((address, profile)) => state.vault.create_self_custody(user, address, profile, now_ms()).await?,
        None => state.vault.create(user, now_ms()).await?,
    };
    Ok((StatusCode::CREATED, Json(IdentityView::from(&identity))).into_response())
}

/// `GET /admin/identities?page=1&perPage=50`, or `?q=term`: those whose name or network user
/// id contains `term` (at most [`MAX_SEARCH_BYTES`]), the first `perPage` in name order.
pub async fn list(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Answer {
    let mut page = 1;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut search = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| AdminError::bad_request(format!("{key}={value:?} is not a whole number")))
        };
        match key.as_ref() {
            "page" => page = number()?,
            "perPage" | "per_page" => per_page = number()?,
            "q" if value.len() > MAX_SEARCH_BYTES => {
                return Err(AdminError::bad_request(format!("q is longer than {MAX_SEARCH_BYTES} bytes")));
            }
            "q" => search = Some(value.trim().to_owned()).filter(|q| !q.is_empty()),
            other => {
                return Err(AdminError::bad_request(format!(
                    "unknown query parameter {other:?}; expected page, perPage, q"
                )));
            }
        }
    }
    if let Some(search) = search {
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(IdentityError::InvalidPage { page, per_page }.into());
        }
        let items = state.store.search_identities(&search, per_page).await.map_err(store_error)?;
        let total = u64::try_from(items.len()).unwrap_or(u64::MAX);
        return Ok(Json(PageView::from(&Page { items, page: 1, per_page, total })).into_response());
    }
    let page = state.vault.list(page, per_page).await?;
    Ok(Json(PageView::from(&page)).into_response())
}

pub async fn show(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.get(&reference(id)?).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

pub async fn delete(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.delete(&reference(id)?).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

pub async fn disable(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.disable(&reference(id)?, now_ms()).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

pub async fn enable(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.enable(&reference(id)?, now_ms()).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

pub async fn rotate(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.rotate(&reference(id)?, now_ms()).await?;
    Ok(Json(IdentityView::from(&identity)).into_response())
}

pub async fn profile(State(state): State<AdminState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let identity = state.vault.get(&reference(id)?).await?;
    Ok(Json(ProfileView::from(&identity)).into_response())
}

pub async fn conversations(
    State(state): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let (identity, counterparties) = state.vault.counterparties(&reference(id)?, CONVERSATIONS_LIMIT).await?;
    let portals =
        state.store.identity_portals(&identity.name, CONVERSATIONS_LIMIT).await.map_err(store_error)?;
    Ok(Json(ConversationsView::new(&identity, &counterparties, &portals)).into_response())
}

/// Portals listed by default.
const DEFAULT_PORTALS_PAGE: u32 = 100;

/// `GET /admin/portals?network=matrix&after=0&limit=100`: portals in id order.
pub async fn portals(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Answer {
    let mut network = None;
    let mut after = 0;
    let mut limit = DEFAULT_PORTALS_PAGE;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let invalid = || AdminError::bad_request(format!("{key}={value:?} is not a whole number"));
        match key.as_ref() {
            "network" => {
                let id = dm3_bridge_connector::NetworkId::new(value.as_ref())
                    .map_err(|e| AdminError::bad_request(format!("network={value:?}: {e}")))?;
                network = Some(id);
            }
            "after" => after = value.parse::<i64>().map_err(|_| invalid())?,
            "limit" => limit = value.parse::<u32>().map_err(|_| invalid())?.clamp(1, MAX_PORTALS_PAGE),
            other => {
                return Err(AdminError::bad_request(format!(
                    "unknown query parameter {other:?}; expected network, after, limit"
                )));
            }
        }
    }
    let portals = state.store.list_portals(network.as_ref(), after, limit).await.map_err(store_error)?;
    Ok(Json(PortalPageView::new(&portals, limit)).into_response())
}

pub async fn portal(State(state): State<AdminState>, id: Result<Path<i64>, PathRejection>) -> Answer {
    let id = portal_id(id)?;
    match state.store.portal(id).await.map_err(store_error)? {
        Some(portal) => Ok(Json(PortalView::from(&portal)).into_response()),
        None => Err(no_portal(id)),
    }
}

/// `DELETE /admin/portals/{id}`: unlinks the portal ([`crate::engine::portals::unlink`]).
pub async fn unlink_portal(State(state): State<AdminState>, id: Result<Path<i64>, PathRejection>) -> Answer {
    let id = portal_id(id)?;
    match crate::engine::portals::unlink(&state.store, id).await.map_err(store_error)? {
        Some(portal) => Ok(Json(PortalView::from(&portal)).into_response()),
        None => Err(no_portal(id)),
    }
}

fn portal_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, AdminError> {
    let Path(id) = id.map_err(|e| AdminError::bad_request(format!("the portal id is not a number: {e}")))?;
    Ok(id)
}

fn no_portal(id: i64) -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "not_found", format!("there is no portal {id}"))
}

pub(super) fn store_error(error: crate::store::StoreError) -> AdminError {
    AdminError::from(crate::identities::IdentityError::Store(error))
}

/// Any other path under `/admin`.
pub async fn not_found() -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "no_route", "no such admin route; see docs/admin-api.yaml")
}
