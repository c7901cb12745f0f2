//! `GET /metrics`: the Prometheus text exposition.
//!
//! Gauges that describe stored state (envelopes stored, inserts waiting for their commit) are
//! sampled here, at scrape time, instead of being maintained on every write: a `COUNT(*)` per
//! scrape is cheaper than bookkeeping per envelope, and it cannot drift from the truth.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::server::AppState;
use crate::telemetry::metrics::{PENDING_WRITES, STORED_ENVELOPES};

const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(COUNT_TIMEOUT, state.store.count_envelopes()).await {
        Ok(Ok(n)) => metrics::gauge!(STORED_ENVELOPES).set(n as f64),
        Ok(Err(error)) => tracing::warn!(%error, "metrics: counting stored envelopes failed"),
        Err(_) => tracing::warn!("metrics: counting stored envelopes timed out"),
    }
    metrics::gauge!(PENDING_WRITES).set(state.store.pending_writes() as f64);
    state.metrics.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
