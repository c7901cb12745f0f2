//! The HTTP server: which path goes to which handler, and serving with a graceful shutdown.
//! The state the handlers share is [`AppState`], beside them in [`routes::state`].
//!
//! Route table (docs/protocol.md §9 paths, plus operability):
//!
//! | method and path | handler |
//! | --- | --- |
//! | `GET /hello` | [`routes::probes::hello`] |
//! | `GET /health`, `GET /ready` | [`routes::probes`] |
//! | `GET /metrics` | [`routes::metrics::metrics`] |
//! | `POST /rpc` | [`routes::rpc::rpc`] |
//! | `GET/POST /profile/{name}` | [`routes::profile`] |
//! | `GET/POST /auth/{name}` | [`routes::auth`] |
//! | `GET /delivery/messages/incoming/{name}` | [`routes::delivery::incoming`] |
//! | `POST /delivery/messages/{name}/syncAcknowledgements` | [`routes::delivery::sync_acknowledgements`] |
//!
//! Handlers read their bodies themselves with explicit limits ([`crate::http::body`]), so there is
//! no global body-limit layer to reason about. Every request passes through
//! [`routes::observe::observe`] for metrics.
//!
//! Serving is our own accept loop over hyper-util ([`serve`]), because axum's `serve` bounds
//! nothing a hostile client can hold: it keeps silent and idle connections for ever, accepts
//! any number of them, and lets bodies pile up in memory. `[limits]` bounds each of those
//! (`docs/relay.md`, "Limits"), for every route on the listener, the Matrix, Telegram, gateway
//! and admin routes included:
//! - connections: at most `max_connections` are served at once; at the cap the loop stops
//!   accepting, and new connections wait in the kernel's listen queue until one closes (the
//!   connections already served go on being answered). One address gets at most
//!   `max_connections_per_ip` ([`peers`]); past that its new connection is closed at once. A
//!   connection upgraded to a live-delivery websocket keeps its places until it closes
//!   ([`held`]);
//! - time and protocol bounds per connection: head and idle timeouts, HTTP/2 streams, header
//!   size, pings ([`connection`]);
//! - request bodies: a deadline, and a per-connection and a node-wide budget of buffered body
//!   bytes ([`body_guard`]).
//!
//! Shutdown: when the token is cancelled, the server stops accepting connections (the
//! listener closes, so new ones are refused), lets the requests in flight finish (each of
//! which may be waiting for its envelope to commit), and then returns. The caller
//! ([`crate::node`]) bounds the wait and drains the store afterwards.

mod body_guard;
mod connection;
mod held;
mod peers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use body_guard::BodyGuard;
use connection::Shared;
use held::HeldConnection;
use peers::PeerSlots;

use crate::config::LimitsConfig;
use crate::routes;
use crate::routes::state::AppState;
use crate::telemetry::metrics::HTTP_LIMITED;

/// The node's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/hello", get(routes::probes::hello))
        .route("/health", get(routes::probes::health))
        .route("/ready", get(routes::probes::ready))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/rpc", post(routes::rpc::rpc))
        .route("/profile/{name}", get(routes::profile::get_profile).post(routes::profile::post_profile))
        .route("/auth/{name}", get(routes::auth::get_challenge).post(routes::auth::post_challenge))
        .route("/delivery/messages/incoming/{name}", get(routes::delivery::incoming))
        .route(
            "/delivery/messages/{name}/syncAcknowledgements",
            post(routes::delivery::sync_acknowledgements),
        )
        .layer(axum::middleware::from_fn(routes::observe::observe))
        .with_state(state)
}

/// `GET /metrics` alone, to anyone who reaches it: the router of `admin.metrics_listen`, a
/// listener the operator keeps on a private network.
pub fn metrics_router(mut state: AppState) -> Router {
    state.metrics_guard = None;
    Router::new().route("/metrics", get(routes::metrics::metrics)).with_state(state)
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled and the
/// requests in flight are done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: LimitsConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router =
        router.layer(axum::middleware::from_fn_with_state(BodyGuard::new(&limits), body_guard::guard));
    let shared = Arc::new(Shared::new(router, &limits));
    let slots = Arc::new(Semaphore::new(usize::try_from(limits.max_connections).unwrap_or(usize::MAX)));
    let peers = PeerSlots::new(limits.max_connections_per_ip);
    let connections = TaskTracker::new();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::counter!(HTTP_LIMITED, "limit" => "max_connections").increment(1);
                tracing::debug!("at limits.max_connections: not accepting until a connection closes");
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(peer_slot) = peers.enter(peer.ip()) else {
            metrics::counter!(HTTP_LIMITED, "limit" => "per_ip").increment(1);
            tracing::debug!(%peer, "at limits.max_connections_per_ip: connection closed");
            continue;
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let held = HeldConnection::new(slot, peer_slot);
        connections.spawn(async move {
            connection::serve(stream, peer, &shared, shutdown, held).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// A failed `accept` is the client's problem, except when the process is out of file
/// descriptors: then accepting again at once would spin, so wait a second for some to close
/// (as hyper 0.14's server and axum's `serve` do).
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
