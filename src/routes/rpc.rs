//! `POST /rpc`: the JSON-RPC dispatch of the delivery service (docs/protocol.md §9.1).
//!
//! The reference's behaviour, which clients depend on, and what we do:
//! - The body is read with a hard limit before parsing (see [`rpc_body_limit`]); over it: 413
//!   with JSON-RPC error -32011.
//! - A body that is not JSON: 400, -32700. Not an object (batches included): 400, -32600.
//!   The body, and the envelope text in `params[0]`, become `Value`s only if they hold at most
//!   [`MAX_VALUES`] JSON values (`http::json`); more: 400, -32602.
//! - No `method`: 400 (-32600). An unknown method: 405 `Method not allowed` (-32601).
//! - The messenger sends no `id`. Such a request is *not* a notification: it gets a full
//!   answer (P10). When an `id` is present it is echoed.
//! - `dm3_submitMessage` answers `200 OK` as plain text on success (P10); the work is done by
//!   the plugged-in protocol ([`DeliveryProtocol::submit_message`]).
//! - Getters answer `{"jsonrpc":"2.0","result":"<JSON string>"}`: the result is a JSON
//!   *string* that clients parse again.
//! - `dm3_getDeliveryServiceProperties` returns only `messageTTL`, `sizeLimit` and
//!   `notificationChannel: []`. The reference leaks its whole config here, secrets included
//!   (P11); we disclose nothing else.
//!
//! [`DeliveryProtocol::submit_message`]: crate::protocol::DeliveryProtocol::submit_message
//! [`rpc_body_limit`]: crate::config::body_limits::rpc_body_limit

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::state::AppState;
use crate::config::RelayConfig;
use crate::http::body::read_limited;
use crate::http::error::ApiError;
use crate::http::json::{self, JsonError, MAX_VALUES, parse_value};
use crate::telemetry::metrics::{RPC_DURATION, RPC_REQUESTS, outcome};

pub const SUBMIT_MESSAGE: &str = "dm3_submitMessage";
pub const GET_PROPERTIES: &str = "dm3_getDeliveryServiceProperties";
pub const GET_PROFILE_EXTENSION: &str = "dm3_getProfileExtension";

/// The properties a client may know: TTL in milliseconds (the unit the reference DS and its
/// clients use, P12), the size limit in bytes, and no notification channels.
pub fn delivery_service_properties(relay: &RelayConfig) -> Value {
    json!({
        "messageTTL": relay.message_ttl_ms(),
        "sizeLimit": relay.size_limit,
        "notificationChannel": [],
    })
}

pub async fn rpc(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (label, response) = match parse(&state, &headers, body).await {
        Ok(call) => (label(&call.method), dispatch(&state, call).await),
        Err(error) => ("none", error.into_response()),
    };
    metrics::counter!(
        RPC_REQUESTS,
        "method" => label,
        "outcome" => outcome(response.status().as_u16())
    )
    .increment(1);
    metrics::histogram!(RPC_DURATION, "method" => label).record(started.elapsed().as_secs_f64());
    response
}

/// A parsed JSON-RPC call.
struct Call {
    method: String,
    params: Vec<Value>,
    id: Option<Value>,
}

async fn parse(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Call, ApiError> {
    let bytes = read_limited(headers, body, state.rpc_body_limit).await?;
    let request = parse_value(&bytes, MAX_VALUES)?;
    let Value::Object(mut request) = request else {
        return Err(ApiError::invalid_request(
            "expected one JSON-RPC request object (batches are not supported)",
        ));
    };
    let id = request.remove("id");
    let method = match request.remove("method") {
        Some(Value::String(method)) => method,
        Some(_) => {
            return Err(ApiError::invalid_request("method must be a string").with_id(id));
        }
        None => return Err(ApiError::invalid_request("Method missing").with_id(id)),
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => {
            return Err(ApiError::invalid_params("params must be an array").with_id(id));
        }
    };
    Ok(Call { method, params, id })
}

async fn dispatch(state: &AppState, call: Call) -> Response {
    let Call { method, params, id } = call;
    let outcome = match method.as_str() {
        SUBMIT_MESSAGE => match bound_envelope_values(&params) {
            Ok(()) => state
                .protocol
                .submit_message(&params)
                .await
                .map(|()| (StatusCode::OK, [(CONTENT_TYPE, "text/plain")], "OK").into_response())
                .map_err(ApiError::from),
            Err(error) => Err(error),
        },
        GET_PROPERTIES => Ok(result(&delivery_service_properties(&state.relay), id.clone())),
        GET_PROFILE_EXTENSION => match params.first() {
            Some(Value::String(name)) => state
                .protocol
                .profile_extension(name)
                .await
                .map(|extension| result(&extension, id.clone()))
                .map_err(ApiError::from),
            _ => Err(ApiError::invalid_params("params[0] must be the ENS name of the user")),
        },
        _ => Err(ApiError::method_not_allowed()),
    };
    outcome.unwrap_or_else(|error| error.with_id(id).into_response())
}

/// The envelope in `params[0]` is JSON text that the protocol parses into a `Value` (it is
/// signed, P2), so its values are bounded like a body's. Text that is not JSON passes: the
/// protocol refuses it with the reference's words.
fn bound_envelope_values(params: &[Value]) -> Result<(), ApiError> {
    match params.first() {
        Some(Value::String(text)) => match json::count(text.as_bytes(), MAX_VALUES) {
            Err(JsonError::TooManyValues { max }) => Err(ApiError::invalid_params(format!(
                "invalid schema: the envelope has more than {max} JSON values"
            ))),
            Ok(()) | Err(JsonError::Syntax(_)) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// `{"jsonrpc":"2.0","result":"<value as a JSON string>"}`, plus the id if the call had one.
fn result(value: &Value, id: Option<Value>) -> Response {
    let mut body = Map::new();
    body.insert("jsonrpc".to_owned(), Value::from("2.0"));
    if let Some(id) = id {
        body.insert("id".to_owned(), id);
    }
    body.insert("result".to_owned(), Value::String(value.to_string()));
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], Value::Object(body).to_string()).into_response()
}

/// A bounded metrics label for a method name.
fn label(method: &str) -> &'static str {
    match method {
        SUBMIT_MESSAGE => SUBMIT_MESSAGE,
        GET_PROPERTIES => GET_PROPERTIES,
        GET_PROFILE_EXTENSION => GET_PROFILE_EXTENSION,
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_disclose_only_ttl_size_and_channels() {
        let relay = RelayConfig { message_ttl_secs: 60, ..RelayConfig::default() };
        let props = delivery_service_properties(&relay);
        assert_eq!(props, json!({"messageTTL": 60_000, "sizeLimit": 100_000, "notificationChannel": []}));
    }
}
