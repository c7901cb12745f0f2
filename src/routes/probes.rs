//! Liveness and readiness, and the reference's greeting.
//!
//! - `GET /hello` → `Hello DM3`, exactly as the reference DS (docs/protocol.md §9); some tools use
//!   it to recognise a delivery service.
//! - `GET /health`: the process is up and serving HTTP. It checks nothing else, so an
//!   orchestrator does not restart a node just because its database is slow.
//! - `GET /ready`: the database answers within a short timeout (and on SQLite its disk has room:
//!   a full disk fails no read, `store/disk.rs`), and every running network's
//!   connector says it works (a Telegram poll loop that died and is restarting does not); a
//!   load balancer should send traffic only to ready nodes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::http::error::{ApiError, UNAVAILABLE};
use crate::store::StoreError;
use dm3_bridge_connector::Health;

const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn hello() -> &'static str {
    "Hello DM3"
}

pub async fn health() -> &'static str {
    "OK"
}

pub async fn ready(State(state): State<AppState>) -> Response {
    for connector in state.connectors.iter() {
        if let Health::Unhealthy(reason) = connector.health() {
            tracing::warn!(network = %connector.network(), %reason, "readiness check: network not working");
            return not_ready(&format!("the {} network is not working: {reason}", connector.network()));
        }
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(StoreError::DiskFull { free_bytes })) => {
            tracing::warn!(free_bytes, "readiness check: the database's disk is full");
            not_ready(&format!("the database's disk is full ({free_bytes} bytes free)"))
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: database error");
            not_ready("the database does not answer")
        }
        Err(_) => {
            // Said in the log too: an operator reading it after the balancer dropped the node
            // must find why, and a database that hangs never gets to an error of its own.
            tracing::warn!(timeout = ?READY_TIMEOUT, "readiness check: database did not answer in time");
            not_ready("the database did not answer in time")
        }
    }
}

fn not_ready(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, message).into_response()
}
