//! `GET /names/lookup?network=…&user=…`: the DM3 name this node gives a Matrix or Telegram
//! user, and whether that identity is live here (docs/names.md, "Finding a name").
//!
//! The name is pure scheme (`dm3 name-for` computes it offline, from the same
//! [`dm3::bridge_names`]); what only the node knows is its parent and sub-labels, and whether
//! the identity exists and is enabled, that is, whether the gateway publishes it and a message
//! to it is bridged. So a client that knows only the bridge's URL learns both in one call.
//! A Telegram `user` given as `@username` is answered with the username's alias, which names
//! nobody yet (`exists: false`, docs/names.md "Telegram username aliases").
//!
//! It is public, as the gateway that publishes the same names is, and it is an outsider's
//! entry, so everything it does is bounded:
//! - the query string is at most [`MAX_QUERY_BYTES`] (a Matrix id, percent-encoded, fits three
//!   times over) and is refused with 414 before it is parsed;
//! - exactly `network` and `user`, each once; anything else is a 400 that says what is wrong;
//! - one indexed read by name, through the vault's reads of the last second (bounded; absences
//!   are not kept), so a flood of distinct users costs reads, not memory;
//! - per client, the `[rate_limits] names_lookup_*` budget ([`crate::rate_limit`]) in front.
//!
//! Errors have the node's one JSON shape ([`crate::http::error`]): 400 for bad input, 404 when
//! the node has no identities (`[identities] parent` unset), 414, 429, 500/503.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::http::error::{ApiError, INTERNAL_ERROR, INVALID_PARAMS, NOT_FOUND};
use dm3::bridge_names::Addressee;

use crate::identities::{IdentityError, IdentityVault, Network};

/// The longest query string accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;

/// The route, over the node's identities.
pub fn router(vault: IdentityVault) -> Router {
    Router::new().route("/names/lookup", get(lookup)).with_state(vault)
}

/// The answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Found {
    name: String,
    network: Network,
    user_id: String,
    /// The identity exists on this node and is enabled.
    exists: bool,
}

async fn lookup(State(vault): State<IdentityVault>, RawQuery(query): RawQuery) -> Response {
    match answer(&vault, query.as_deref().unwrap_or_default()).await {
        Ok(found) => axum::Json(found).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn answer(vault: &IdentityVault, query: &str) -> Result<Found, ApiError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            INVALID_PARAMS,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let Some(scheme) = vault.scheme() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "this node gives no names to network users (its virtual identities are disabled)",
        ));
    };
    let addressee = parse_query(query)?;
    let (_, name) = scheme.name_of(&addressee).map_err(|e| ApiError::invalid_params(e.to_string()))?;
    let exists = match &addressee {
        Addressee::User(user) => {
            let record = vault.recent_identity(&name).await.map_err(internal)?;
            // A hashed label is a hash of the id: the row must also be this user's, not a collision's.
            record.is_some_and(|record| record.user == *user && record.disabled_at_ms.is_none())
        }
        // An alias is answered, derived, by a node that runs Telegram (docs/names.md section 8).
        Addressee::TelegramAlias(_) => vault.alias_username(&name).is_some(),
    };
    Ok(Found { name: name.to_string(), network: addressee.network(), user_id: addressee.written(), exists })
}

/// `network=…&user=…`, each exactly once, percent-decoded.
fn parse_query(query: &str) -> Result<Addressee, ApiError> {
    let (mut network, mut user) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "network" => &mut network,
            "user" => &mut user,
            other => {
                return Err(ApiError::invalid_params(format!(
                    "unknown parameter {:?}: the query is network=matrix|telegram&user=<user id>",
                    other.chars().take(40).collect::<String>()
                )));
            }
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::invalid_params(format!("the parameter {key:?} is given twice")));
        }
    }
    let network = network.ok_or_else(|| missing("network"))?;
    let user = user.ok_or_else(|| missing("user"))?;
    let network: Network = network.parse().map_err(|e| ApiError::invalid_params(format!("{e}")))?;
    Addressee::parse(network, &user).map_err(|e| ApiError::invalid_params(e.to_string()))
}

fn missing(parameter: &str) -> ApiError {
    ApiError::invalid_params(format!(
        "the parameter {parameter:?} is missing: the query is network=matrix|telegram&user=<user id>"
    ))
}

fn internal(error: IdentityError) -> ApiError {
    match error {
        IdentityError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "names lookup: reading the identity failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_are_read_strictly() {
        let matrix = parse_query("network=matrix&user=%40carol%3Aexample.org").unwrap();
        assert_eq!(matrix.written(), "@carol:example.org");
        assert_eq!(parse_query("user=12345&network=telegram").unwrap().written(), "12345");
        // `+` is a space in a query: a Matrix localpart's `+` must be sent as %2B.
        assert_eq!(parse_query("network=matrix&user=@a%2Bb:x").unwrap().written(), "@a+b:x");
        assert!(parse_query("network=matrix&user=@a+b:x").is_err());
        assert_eq!(parse_query("network=telegram&user=%40Carol_X").unwrap().written(), "@carol_x");
        for bad in [
            "",
            "network=matrix",
            "user=12345",
            "network=irc&user=1",
            "network=telegram&user=012",
            "network=telegram&user=@car",
            "network=telegram&user=@carol-x",
            "network=telegram&user=1&user=2",
            "network=telegram&user=1&extra=x",
            "network=matrix&user=carol",
            "network=matrix&user=%FF%FE",
        ] {
            let error = parse_query(bad).unwrap_err();
            assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, INVALID_PARAMS), "{bad}");
        }
    }
}
