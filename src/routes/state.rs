//! What every handler of the delivery-service API can reach: the store, the relay settings,
//! the protocol, the metrics and the running networks' connectors.
//!
//! It is its own module, below the handlers and the server that builds the router from it, so
//! that the handlers need nothing of the server (and the server only mounts them).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::body_limits::rpc_body_limit;
use crate::config::{AdminConfig, RelayConfig};
use crate::http::admin_token::TokenCheck;
use crate::protocol::DeliveryProtocol;
use crate::store::Store;
use dm3_bridge_connector::Connector;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub relay: Arc<RelayConfig>,
    /// The raw body limit of `/rpc` ([`rpc_body_limit`](crate::config::body_limits::rpc_body_limit)).
    pub rpc_body_limit: usize,
    pub protocol: Arc<dyn DeliveryProtocol>,
    pub metrics: PrometheusHandle,
    /// Who may read `/metrics`: `None` is anyone (`admin.public_metrics`), else the admin
    /// token's holder.
    pub metrics_guard: Option<TokenCheck>,
    /// The running networks' connectors, whose health `/ready` reports.
    pub connectors: Arc<[Arc<dyn Connector>]>,
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
            connectors: Arc::from(Vec::new()),
            rpc_body_limit: rpc_body_limit(&relay),
            relay: Arc::new(relay),
            store,
            protocol,
            metrics,
        }
    }

    /// The connectors of the running networks, for `/ready`.
    pub fn with_connectors(mut self, connectors: Vec<Arc<dyn Connector>>) -> Self {
        self.connectors = Arc::from(connectors);
        self
    }
}
