//! The HTTP server: which path goes to which handler, the shared state, and serving with a
//! graceful shutdown.
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
//! Handlers read their bodies themselves with explicit limits ([`routes::body`]), so there is
//! no global body-limit layer to reason about. Every request passes through
//! [`routes::observe::observe`] for metrics.
//!
//! Shutdown: when the token is cancelled, the server stops accepting connections, lets the
//! requests in flight finish (each of which may be waiting for its envelope to commit), and
//! then returns. The caller ([`crate::node`]) drains the store afterwards.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::auth::TokenCheck;
use crate::config::{AdminConfig, RelayConfig};
use crate::protocol::DeliveryProtocol;
use crate::routes;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub relay: Arc<RelayConfig>,
    /// The raw body limit of `/rpc` ([`routes::rpc::rpc_body_limit`]).
    pub rpc_body_limit: usize,
    pub protocol: Arc<dyn DeliveryProtocol>,
    pub metrics: PrometheusHandle,
    /// Who may read `/metrics`: `None` is anyone (`admin.public_metrics`), else the admin
    /// token's holder.
    pub metrics_guard: Option<TokenCheck>,
}

impl AppState {
    pub fn new(
        store: Store,
        relay: RelayConfig,
        protocol: Arc<dyn DeliveryProtocol>,
        metrics: PrometheusHandle,
        admin: &AdminConfig,
    ) -> Self {
        Self {
            metrics_guard: (!admin.public_metrics).then(|| TokenCheck::new(admin.token.as_ref())),
            rpc_body_limit: routes::rpc::rpc_body_limit(&relay),
            relay: Arc::new(relay),
            store,
            protocol,
            metrics,
        }
    }
}

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

/// Serves `router` on `listener` until `shutdown` is cancelled and in-flight requests are done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer address reaches handlers and layers as `ConnectInfo` (the per-client rate limits).
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
