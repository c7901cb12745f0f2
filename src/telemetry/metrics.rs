//! Prometheus metrics: names, buckets, and the process-wide recorder.
//!
//! The `metrics` crate is a facade with one global recorder per process, like `tracing`.
//! We install the Prometheus recorder once ([`install`]) and render it from our own
//! `GET /metrics` route, rather than letting the exporter open its own listener: our server's
//! bounds and shutdown apply to it, on the main listener or on `admin.metrics_listen`. Several
//! nodes in one process (tests) share the recorder. Every metric is listed, with the alert to
//! set on it, in docs/operations.md (a test below keeps the two in step).
//!
//! Durations are histograms with buckets chosen around the latency goal (p99 < 50 ms), so
//! quantiles can be computed across replicas in Prometheus.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests, by `route` (template), `method` and `outcome` (ok, client_error, server_error).
pub const HTTP_REQUESTS: &str = "dm3_http_requests_total";
/// HTTP request latency in seconds, by `route` and `method`.
pub const HTTP_DURATION: &str = "dm3_http_request_duration_seconds";
/// Connections the HTTP server serves now.
pub const HTTP_CONNECTIONS: &str = "dm3_http_connections";
/// Times a `[limits]` bound acted, by `limit`: `max_connections` (accepting paused),
/// `per_ip` (a connection closed at once), `idle` (a connection closed), `body_budget` (503),
/// `body_timeout` (408).
pub const HTTP_LIMITED: &str = "dm3_http_limited_total";
/// JSON-RPC calls on `/rpc`, by `method` (known methods, else `unknown`) and `outcome`.
pub const RPC_REQUESTS: &str = "dm3_rpc_requests_total";
/// JSON-RPC latency in seconds, by `method`.
pub const RPC_DURATION: &str = "dm3_rpc_request_duration_seconds";
/// Envelopes stored and not yet acknowledged or expired (sampled at scrape time).
pub const STORED_ENVELOPES: &str = "dm3_stored_envelopes";
/// Envelope inserts accepted and not yet committed (sampled at scrape time).
pub const PENDING_WRITES: &str = "dm3_pending_envelope_writes";
/// Envelopes per group commit (recorded by the store's writer).
pub const WRITE_BATCH_SIZE: &str = "dm3_store_write_batch_size";
/// Seconds per group commit, insert statements and COMMIT (recorded by the store's writer).
pub const WRITE_COMMIT_DURATION: &str = "dm3_store_write_commit_seconds";
/// Writes per SQLite transaction (recorded by the store's write connection).
pub const WRITE_GROUP_SIZE: &str = "dm3_store_write_group_size";
/// Seconds per SQLite write group, writes and COMMIT (recorded by the store's write connection).
pub const WRITE_GROUP_COMMIT_DURATION: &str = "dm3_store_write_group_commit_seconds";
/// Expired envelopes deleted by the TTL cleanup.
pub const EXPIRED_DELETED: &str = "dm3_expired_envelopes_deleted_total";
/// Envelopes stored by `dm3_submitMessage`, by `sender`: `verified` (metadata signature
/// checked against the sender's profile) or `unverified` (`relay.unresolved_sender = "accept"`).
pub const ENVELOPES_ACCEPTED: &str = "dm3_envelopes_accepted_total";
/// Submits of an envelope the receiver already had (answered `200 OK`, stored once).
pub const ENVELOPES_DUPLICATE: &str = "dm3_envelopes_duplicate_total";
/// Refused submits, by `reason` (a bounded label: `too_large`, `bad_signature`, …).
pub const ENVELOPES_REJECTED: &str = "dm3_envelopes_rejected_total";
/// Session tokens issued, by `via`: `profile` (a first registration by `POST /profile`),
/// `challenge` (`POST /auth`) or `address_bound` (`POST /profile` on an existing account: a
/// token that opens nothing, docs/relay.md).
pub const SESSIONS_ISSUED: &str = "dm3_sessions_issued_total";
/// Calls refused by the per-client rate limits, by `route` class (auth, profile, rpc, ccip,
/// names_lookup).
pub const RATE_LIMITED: &str = "dm3_rate_limited_total";
/// Logged-in live-delivery sockets (`/socket.io/`).
pub const LIVE_SOCKETS: &str = "dm3_live_sockets";
/// Live-delivery handshakes, by `outcome`: `authorized`, `unauthorized`, `malformed`,
/// `unavailable`, `node_full`, `account_full`.
pub const LIVE_HANDSHAKES: &str = "dm3_live_handshakes_total";
/// Envelopes pushed to live sockets, by `outcome`: `sent`, `expired` (the session had ended:
/// closed instead), `dropped` (the socket's queue was full: closed).
pub const LIVE_PUSHES: &str = "dm3_live_pushes_total";
/// Engine job runs settled, by `queue` (inbox, outbox) and `outcome` (done, retry, failed,
/// expired, lease_lost).
pub const ENGINE_JOBS: &str = "dm3_engine_jobs_total";
/// Seconds a job handler ran, by `queue`.
pub const ENGINE_JOB_DURATION: &str = "dm3_engine_job_duration_seconds";
/// Jobs in the engine's queues, by `queue` and `state` (pending, done, failed; sampled by the
/// workers).
pub const ENGINE_QUEUE_DEPTH: &str = "dm3_engine_queue_depth";
/// Seconds the oldest pending job of a `queue` has waited since it was queued (0 when none is
/// pending; sampled by the workers with the depth count).
pub const ENGINE_OLDEST_PENDING: &str = "dm3_engine_oldest_pending_seconds";
/// Jobs failed for good, by `queue` and `cause` (network, dm3, identity, portal_suspended,
/// expired, other).
pub const ENGINE_FAILURES: &str = "dm3_engine_failures_total";
/// Seconds one send to the other side took, by `network` and `direction` (dm3_to_network: the
/// connector's call; network_to_dm3: sealing and posting to every delivery service); `network`
/// names the connector (matrix, telegram, loopback).
pub const BRIDGE_SEND_DURATION: &str = "dm3_bridge_send_seconds";
/// Inbound batches handed in by connectors, by `network` and `outcome` (new, duplicate).
pub const ENGINE_INBOUND_BATCHES: &str = "dm3_engine_inbound_batches_total";
/// Messages carried across the bridge, by `direction` (dm3_to_network, network_to_dm3) and
/// `network`.
pub const BRIDGED_MESSAGES: &str = "dm3_bridged_messages_total";
/// Sealed envelopes carried through the gateway for self-custody identities, by `direction`
/// (dm3_to_network, network_to_dm3) and `network` (docs/gateway.md section 5).
pub const GATEWAY_ENVELOPES: &str = "dm3_gateway_envelopes_total";
/// Envelopes and claims a network user sent to the gateway and the node refused, by `network`
/// and `reason`.
pub const GATEWAY_REFUSED: &str = "dm3_gateway_refused_total";
/// Saves of Matrix ghost devices' Olm accounts, by `outcome` (written; conflict: another
/// process wrote the account first and nothing was sent; failed: the database refused).
pub const MATRIX_OLM_ACCOUNT_SAVES: &str = "dm3_matrix_olm_account_saves_total";
/// Attempts to open a network user's end-to-end encrypted message, by `network` and `outcome`
/// (decrypted, missing_key, gave_up, refused, failed).
pub const NETWORK_DECRYPTIONS: &str = "dm3_network_decryptions_total";
/// Outbound Megolm sessions ghosts made (a room's first encrypted send, and each rotation).
pub const MATRIX_MEGOLM_SESSIONS: &str = "dm3_matrix_megolm_sessions_total";
/// Room keys ghosts shared over Olm, one per receiving device.
pub const MATRIX_ROOM_KEYS_SHARED: &str = "dm3_matrix_room_keys_shared_total";
/// `/keys/query` calls ghosts made for members' device lists not kept or outdated.
pub const MATRIX_DEVICE_LIST_QUERIES: &str = "dm3_matrix_device_list_queries_total";
/// Matrix users' encrypted messages refused under `sender_trust = "cross-signed"`, by `reason`
/// (not_cross_signed, no_identity, identity_changed).
pub const MATRIX_SENDER_TRUST_REFUSALS: &str = "dm3_matrix_sender_trust_refusals_total";
/// To-device messages for ghost devices kept before they are opened, by `via` (push: in a
/// transaction; catch_up: by `/sync` as the device) and `outcome` (new; duplicate: kept before).
pub const MATRIX_TO_DEVICE_MESSAGES: &str = "dm3_matrix_to_device_messages_total";

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITE_BATCH_SIZE.to_owned()), BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITE_GROUP_SIZE.to_owned()), BATCH_BUCKETS)
                });
            let builder = match builder {
                Ok(builder) => builder,
                Err(error) => {
                    tracing::warn!(%error, "metric buckets rejected; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and outcome");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route and method"
    );
    metrics::describe_counter!(RPC_REQUESTS, "JSON-RPC calls by method and outcome");
    metrics::describe_histogram!(RPC_DURATION, metrics::Unit::Seconds, "JSON-RPC latency by method");
    metrics::describe_gauge!(STORED_ENVELOPES, "Envelopes stored for retrieval");
    metrics::describe_gauge!(PENDING_WRITES, "Envelope inserts waiting for their commit");
    metrics::describe_histogram!(WRITE_BATCH_SIZE, "Envelopes per group commit");
    metrics::describe_histogram!(
        WRITE_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Duration of one group commit"
    );
    metrics::describe_histogram!(WRITE_GROUP_SIZE, "Writes per SQLite transaction");
    metrics::describe_histogram!(
        WRITE_GROUP_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Duration of one SQLite write group, writes and COMMIT"
    );
    metrics::describe_counter!(
        BRIDGED_MESSAGES,
        "Messages carried across the bridge, by direction and network"
    );
    metrics::describe_counter!(
        GATEWAY_ENVELOPES,
        "Sealed envelopes carried through the gateway for self-custody identities, by direction and network"
    );
    metrics::describe_counter!(
        GATEWAY_REFUSED,
        "What network users sent to the gateway and the node refused, by network and reason"
    );
    metrics::describe_counter!(EXPIRED_DELETED, "Expired envelopes deleted");
    metrics::describe_counter!(ENVELOPES_ACCEPTED, "Envelopes stored, by sender authentication");
    metrics::describe_counter!(ENVELOPES_DUPLICATE, "Envelopes submitted again, stored once");
    metrics::describe_counter!(ENVELOPES_REJECTED, "Envelopes refused, by reason");
    metrics::describe_counter!(SESSIONS_ISSUED, "Session tokens issued, by login path");
    metrics::describe_counter!(RATE_LIMITED, "Calls refused by the per-client rate limits, by route class");
    metrics::describe_gauge!(LIVE_SOCKETS, "Logged-in live-delivery sockets");
    metrics::describe_counter!(LIVE_HANDSHAKES, "Live-delivery handshakes, by outcome");
    metrics::describe_counter!(LIVE_PUSHES, "Envelopes pushed to live sockets, by outcome");
    metrics::describe_counter!(ENGINE_JOBS, "Engine job runs settled, by queue and outcome");
    metrics::describe_histogram!(
        ENGINE_JOB_DURATION,
        metrics::Unit::Seconds,
        "Duration of one engine job run, by queue"
    );
    metrics::describe_gauge!(ENGINE_QUEUE_DEPTH, "Jobs in the engine's queues, by queue and state");
    metrics::describe_counter!(ENGINE_INBOUND_BATCHES, "Inbound batches from connectors, by outcome");
    metrics::describe_counter!(
        NETWORK_DECRYPTIONS,
        "Attempts to open a network user's encrypted message, by network and outcome"
    );
    metrics::describe_counter!(
        MATRIX_OLM_ACCOUNT_SAVES,
        "Saves of Matrix ghost devices' Olm accounts, by outcome (written, conflict, failed)"
    );
    metrics::describe_counter!(
        MATRIX_MEGOLM_SESSIONS,
        "Outbound Megolm sessions Matrix ghosts made (first encrypted send in a room, rotations)"
    );
    metrics::describe_counter!(
        MATRIX_ROOM_KEYS_SHARED,
        "Room keys Matrix ghosts shared over Olm, per device"
    );
    metrics::describe_counter!(
        MATRIX_DEVICE_LIST_QUERIES,
        "Device-list queries (/keys/query) for members whose list was not kept or was outdated"
    );
    metrics::describe_counter!(
        MATRIX_SENDER_TRUST_REFUSALS,
        "Encrypted Matrix messages refused because their sender had not cross-signed the sending device, by reason"
    );
    metrics::describe_counter!(
        MATRIX_TO_DEVICE_MESSAGES,
        "To-device messages for Matrix ghost devices kept before opening, by via (push, catch_up) and outcome (new, duplicate)"
    );
    metrics::describe_gauge!(
        ENGINE_OLDEST_PENDING,
        metrics::Unit::Seconds,
        "Age of the oldest pending job, by queue"
    );
    metrics::describe_counter!(ENGINE_FAILURES, "Jobs failed for good, by queue and cause");
    metrics::describe_histogram!(
        BRIDGE_SEND_DURATION,
        metrics::Unit::Seconds,
        "Duration of one send to the other side, by network and direction"
    );
}

/// The `outcome` label of an HTTP status.
pub fn outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    /// docs/operations.md lists every metric with the alert to set on it: a metric added here
    /// and not there fails this test.
    #[test]
    fn every_metric_is_in_the_operations_guide() {
        let source = include_str!("metrics.rs");
        let guide = include_str!("../../docs/operations.md");
        let names: Vec<&str> = source
            .lines()
            .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \"dm3_"))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert!(names.len() >= 25, "{names:?}");
        for name in names {
            assert!(guide.contains(&format!("`{name}`")), "{name} is not in docs/operations.md");
        }
    }
}
