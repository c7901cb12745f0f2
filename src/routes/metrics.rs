//! `GET /metrics`: the Prometheus text exposition.
//!
//! Behind the admin token unless `admin.public_metrics` is set: the figures tell an outsider
//! how much the node stores and whom it refuses, and every scrape runs a count over the stored
//! envelopes. Prometheus sends the token with `authorization: {credentials: …}`; a refusal is
//! the admin API's (401 wrong or missing token, 403 no token configured).
//!
//! Gauges that describe stored state (envelopes stored, inserts waiting for their commit) are
//! sampled here, at scrape time, instead of being maintained on every write: a `COUNT(*)` per
//! scrape is cheaper than bookkeeping per envelope, and it cannot drift from the truth.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::http::admin_error::AdminError;
use crate::telemetry::metrics::{PENDING_WRITES, STORED_ENVELOPES};

const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(guard) = &state.metrics_guard {
        if !guard.is_enabled() {
            return AdminError::new(
                StatusCode::FORBIDDEN,
                "metrics_not_public",
                "/metrics is served to the admin token's holder: set admin.token (and send it as a bearer \
                 token), or admin.public_metrics = true",
            )
            .into_response();
        }
        if let Err(refused) = guard.check(headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())) {
            return refused.into_response();
        }
    }
    match tokio::time::timeout(COUNT_TIMEOUT, state.store.count_envelopes()).await {
        Ok(Ok(n)) => metrics::gauge!(STORED_ENVELOPES).set(n as f64),
        Ok(Err(error)) => tracing::warn!(%error, "metrics: counting stored envelopes failed"),
        Err(_) => tracing::warn!("metrics: counting stored envelopes timed out"),
    }
    metrics::gauge!(PENDING_WRITES).set(state.store.pending_writes() as f64);
    state.metrics.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
