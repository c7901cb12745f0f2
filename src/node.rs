//! Start-up and shutdown of the whole node, in the order that keeps the promises.
//!
//! Start-up refuses to serve anything it could not serve correctly:
//! 1. the configuration is valid ([`Config::problems`]);
//! 2. the master key is found and opens the sealed node keys; a wrong key stops the node with
//!    "master key does not open the sealed node keys: wrong key file?", never garbage keys;
//! 3. the database is reachable and migrated, and the node's clock follows the database's
//!    ([`crate::database_clock`]: replicas compare times through it);
//! 4. the gateway signer opens (or is generated) and the sealed identity keys open under the
//!    master key ([`crate::name_service`]);
//! 5. the engine and the configured networks are built: each network module of the
//!    [registry](crate::bridges::registry) gives its routes and its connector;
//! 6. the listener is bound, and the DM3 API (with live delivery, `crate::live`), the names'
//!    routes and the networks' routes served;
//! 7. the networks are started (Matrix's homeserver pings the node back through the listener).
//!
//! Steps 1 to 4 are [`NodeData::open`], which `dm3-bridge identity …` runs too. A step that
//! fails undoes what the steps before it started, in reverse order, and the start fails with
//! the reason.
//!
//! Shutdown (SIGTERM, ctrl-c, or [`Node::shutdown`]) reverses it:
//! 1. stop accepting connections and let the requests in flight finish (bounded by
//!    [`DRAIN_TIMEOUT`]); a submit in flight is answered only after its envelope committed;
//!    live-delivery sockets are closed (their clients poll again when they reconnect);
//! 2. stop the background workers: the networks stop receiving, then the engine stops;
//! 3. close the store: the writer commits whatever is still queued, then the pool closes
//!    (which also checkpoints SQLite's WAL).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::bridges::matrix::{MatrixError, MatrixFactory, MatrixModule, MatrixNetwork};
use crate::bridges::{self, Bridge, BridgeError, NetworkModule, NodeServices};
use crate::config::{Config, Problem};
use crate::engine::Queue;
use crate::engine::aliases::AliasHold;
use crate::engine::assemble::{EngineSetupError, assemble, engine_directory, inbound_queue};
use crate::engine::backlog::InboxBounds;
use crate::engine::connectors::Connectors;
use crate::engine::inbox::BridgeInbox;
use crate::engine::inbox_limits::InboxLimits;
use crate::engine::runtime::Engine;
use crate::live::LiveDelivery;
use crate::name_service::{NameService, NameServiceError};
use crate::node_keys::{NodeKeys, NodeKeysError};
use crate::protocol::{DeliveryProtocol, ProtocolContext, ProtocolFactory};
use crate::rate_limit::{self, ClientRateLimits};
use crate::routes::state::AppState;
use crate::server::{metrics_router, router, serve};
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry;
use crate::vault::{MasterKey, MasterKeyError};

/// The longest shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the node (or the admin CLI, which opens the same [`NodeData`]) did not start or stop
/// cleanly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("the configuration is not valid:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    InvalidConfig(Vec<Problem>),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    NodeKeys(#[from] NodeKeysError),
    #[error(transparent)]
    Names(#[from] NameServiceError),
    #[error("opening the database {url} failed: {source}")]
    Store { url: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineSetupError),
    /// `[matrix]` did not start (kept apart: its message names the setting to fix).
    #[error(transparent)]
    Matrix(MatrixError),
    /// Another network did not start.
    #[error(transparent)]
    Network(BridgeError),
}

impl From<BridgeError> for NodeError {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::Matrix(error) => NodeError::Matrix(error),
            other => NodeError::Network(other),
        }
    }
}

/// What every command that works on the node's data opens first, in order (steps 1 to 4 of
/// the module documentation): the node keys, the database, the node's own names.
pub struct NodeData {
    pub node_keys: Arc<NodeKeys>,
    pub store: Store,
    pub names: NameService,
}

impl NodeData {
    /// Checks the config, opens the keys under the master key found in `config` or `env`, the
    /// database with at most `max_connections`, and the names. Nothing stays open on failure.
    pub async fn open(
        config: &Config,
        env: &[(String, String)],
        max_connections: u32,
    ) -> Result<Self, NodeError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(NodeError::InvalidConfig(problems));
        }
        let (master, source) = MasterKey::resolve(config, env)?;
        let keys_path = config.key_path(&config.keys.node_keys_file);
        let node_keys = Arc::new(NodeKeys::read_file(&master, &keys_path)?);
        // Kept (zeroized on drop) for the identity vault, which seals new keys at run time.
        let master = Arc::new(master);
        tracing::info!(
            master_key = %source,
            encryption_public_key = %STANDARD.encode(node_keys.encryption_public_key().as_bytes()),
            signing_public_key = %STANDARD.encode(node_keys.signing_public_key().as_bytes()),
            "node keys opened"
        );
        let url = config.database_url();
        let options = StoreOptions {
            max_connections,
            busy_timeout: Duration::from_millis(config.database.busy_timeout_ms),
            ..StoreOptions::default()
        };
        let store = Store::open(&url, &options)
            .await
            .map_err(|source| NodeError::Store { url: url.to_string(), source })?;
        tracing::info!(database = %url, backend = %store.backend(), "database ready");
        crate::database_clock::follow_at_start(&store).await;
        match NameService::open(config, master, store.clone(), &node_keys).await {
            Ok(names) => Ok(Self { node_keys, store, names }),
            Err(error) => {
                store.close().await;
                Err(error.into())
            }
        }
    }
}

/// A running node.
pub struct Node {
    addr: SocketAddr,
    /// The address of `admin.metrics_listen`, when configured.
    metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    expiry: JoinHandle<()>,
    /// This process's own sweeps (`housekeeping`).
    housekeeping: JoinHandle<()>,
    /// Keeps the node's clock on the database's.
    database_clock: JoinHandle<()>,
    /// The bridge engine's workers, when the node bridges.
    engine: Option<Engine>,
    /// The configured networks, started, in registry order.
    bridges: Vec<Box<dyn Bridge>>,
    store: Store,
    node_keys: Arc<NodeKeys>,
    names: NameService,
}

/// The listeners of a node that came up, and the task serving them.
struct Listening {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Serves the node's router on `listener` and, when configured, `/metrics` alone on its own
/// listener, both until `stop`; the first error of either is the answer.
async fn serve_all(
    listener: TcpListener,
    app: axum::Router,
    metrics: Option<(TcpListener, axum::Router)>,
    limits: crate::config::LimitsConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let metrics_limits = limits.clone();
    let metrics_stop = stop.clone();
    let only_metrics = async move {
        match metrics {
            Some((listener, router)) => serve(listener, router, metrics_limits, metrics_stop).await,
            None => Ok(()),
        }
    };
    let (served, metrics_served) = tokio::join!(serve(listener, app, limits, stop), only_metrics);
    served.and(metrics_served)
}

/// What start-up has started so far, to undo in reverse when a later step fails.
struct Started {
    stop: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    engine: Option<Engine>,
    /// Built networks; the first `running` of them were started.
    bridges: Vec<Box<dyn Bridge>>,
    running: usize,
}

impl Started {
    /// Stops everything started, newest first, and closes the store.
    async fn unwind(self, store: &Store) {
        for bridge in self.bridges.iter().take(self.running).rev() {
            bridge.stop().await;
        }
        self.stop.cancel();
        if let Some(server) = self.server {
            let _ = server.await;
        }
        if let Some(engine) = self.engine {
            engine.shutdown().await;
        }
        store.close().await;
    }
}

impl Node {
    /// Starts a node with every network of the [registry](bridges::registry) that the config
    /// turns on; `env` is the process environment (for `DM3_BRIDGE_MASTER_KEY`), and `protocol`
    /// builds the DM3 protocol implementation.
    pub async fn start(
        config: &Config,
        env: &[(String, String)],
        protocol: ProtocolFactory,
    ) -> Result<Self, NodeError> {
        Self::start_with(config, env, protocol, bridges::registry()).await
    }

    /// [`Node::start`], with the service's halves of the Matrix bridge replaced by `matrix`
    /// (tests stand in for the engine there). Without it, `[matrix]` hands transactions to the
    /// engine's durable queue and asks the node's directory which ghosts exist. The
    /// homeserver must answer the ping before the start succeeds.
    pub async fn start_with_matrix(
        config: &Config,
        env: &[(String, String)],
        protocol: ProtocolFactory,
        matrix: Option<MatrixFactory>,
    ) -> Result<Self, NodeError> {
        let mut networks = bridges::registry();
        if let Some(services) = matrix {
            networks = bridges::replacing(networks, Box::new(MatrixModule::with_services(services)));
        }
        Self::start_with(config, env, protocol, networks).await
    }

    /// [`Node::start`] with the networks of `networks` (the registry, or a variant of it).
    pub async fn start_with(
        config: &Config,
        env: &[(String, String)],
        protocol: ProtocolFactory,
        networks: Vec<Box<dyn NetworkModule>>,
    ) -> Result<Self, NodeError> {
        // 1 to 4: config, keys, database, names.
        let NodeData { node_keys, store, names } =
            NodeData::open(config, env, config.database.max_connections).await?;
        let mut started = Started {
            stop: CancellationToken::new(),
            server: None,
            engine: None,
            bridges: Vec::new(),
            running: 0,
        };
        match Self::bring_up(config, protocol, networks, &node_keys, &store, &names, &mut started).await {
            Ok(Listening { addr, metrics_addr, server }) => {
                let Started { stop, engine, bridges, .. } = started;
                let expiry = tokio::spawn(crate::expiry::run(
                    store.clone(),
                    crate::lease::Leases::new(store.clone()),
                    crate::expiry::INTERVAL,
                    stop.clone(),
                ));
                let housekeeping =
                    tokio::spawn(crate::housekeeping::run(store.clone(), names.vault.clone(), stop.clone()));
                let database_clock = tokio::spawn(crate::database_clock::run(store.clone(), stop.clone()));
                tracing::info!(%addr, name = %config.node.name, "dm3-bridge relay listening");
                Ok(Self {
                    addr,
                    metrics_addr,
                    stop,
                    server,
                    expiry,
                    housekeeping,
                    database_clock,
                    engine,
                    bridges,
                    store,
                    node_keys,
                    names,
                })
            }
            Err(error) => {
                started.unwind(&store).await;
                Err(error)
            }
        }
    }

    /// Steps 5 to 7, recording in `started` what runs; answers the address listened on and the
    /// server.
    async fn bring_up(
        config: &Config,
        protocol: ProtocolFactory,
        networks: Vec<Box<dyn NetworkModule>>,
        node_keys: &Arc<NodeKeys>,
        store: &Store,
        names: &NameService,
        started: &mut Started,
    ) -> Result<Listening, NodeError> {
        // 5. The engine and the configured networks.
        let metrics = telemetry::metrics::install();
        let protocol = protocol(ProtocolContext {
            store: store.clone(),
            node_keys: node_keys.clone(),
            relay: config.relay.clone(),
            node_name: config.node.name.clone(),
            public_url: config.node.public_url.clone(),
            local_names: names.local_names.clone(),
        });
        Self::build_engine(config, &protocol, networks, store, names, started)?;

        // 6. The listener, serving the DM3 API, the names' routes and the networks' routes.
        let listener = TcpListener::bind(&config.node.listen)
            .await
            .map_err(|source| NodeError::Bind { addr: config.node.listen.clone(), source })?;
        let addr = listener.local_addr().map_err(NodeError::Serve)?;
        let metrics_listener = match &config.admin.metrics_listen {
            Some(at) => Some(
                TcpListener::bind(at).await.map_err(|source| NodeError::Bind { addr: at.clone(), source })?,
            ),
            None => None,
        };
        let metrics_addr =
            metrics_listener.as_ref().map(TcpListener::local_addr).transpose().map_err(NodeError::Serve)?;
        let connectors: Vec<_> = started.bridges.iter().map(|bridge| bridge.connector()).collect();
        let live = LiveDelivery::start(protocol.clone(), &config.limits, started.stop.clone());
        let state =
            AppState::new(store.clone(), config.relay.clone(), protocol.clone(), metrics, &config.admin)
                .with_connectors(connectors.clone());
        let metrics_state = state.clone();
        let admin = AdminState {
            vault: names.vault.clone(),
            gateway: names.info.clone(),
            store: store.clone(),
            connectors: Arc::from(connectors),
            https: config.node.public_url.starts_with("https://"),
        };
        let admin = admin::router(admin, config.admin.token.as_ref())
            .layer(axum::middleware::from_fn(crate::routes::observe::observe));
        let mut app = router(state).merge(names.router()).merge(admin);
        for routes in started.bridges.iter().filter_map(|bridge| bridge.routes()) {
            app = app.merge(routes);
        }
        if let Some((live, routes)) = live {
            protocol.plug_live(live);
            app = app.merge(routes.layer(axum::middleware::from_fn(crate::routes::observe::observe)));
        }
        let rate_limits = ClientRateLimits::new(&config.rate_limits);
        let app = app.layer(axum::middleware::from_fn_with_state(rate_limits, rate_limit::enforce));
        let metrics_app = metrics_listener.map(|listener| (listener, metrics_router(metrics_state)));
        let server =
            tokio::spawn(serve_all(listener, app, metrics_app, config.limits.clone(), started.stop.clone()));

        // 7. The networks, started now that the node listens.
        for bridge in &started.bridges {
            if let Err(error) = bridge.start().await {
                started.server = Some(server);
                return Err(error.into());
            }
            started.running += 1;
        }
        Ok(Listening { addr, metrics_addr, server })
    }

    /// Step 5: the engine runs when the node has virtual identities to bridge. The relay hands
    /// it their envelopes, and each configured network is built with its queue as the sink and
    /// gives it its connector.
    fn build_engine(
        config: &Config,
        protocol: &Arc<dyn DeliveryProtocol>,
        networks: Vec<Box<dyn NetworkModule>>,
        store: &Store,
        names: &NameService,
        started: &mut Started,
    ) -> Result<(), NodeError> {
        let configured: Vec<_> = networks.into_iter().filter(|network| network.configured(config)).collect();
        if !names.local_names.bridges() {
            return match configured.first() {
                Some(network) => Err(BridgeError::NoIdentities(network.section()).into()),
                None => Ok(()),
            };
        }
        let queue = Queue::new(store.clone());
        let directory = engine_directory(config, names)?;
        let services = NodeServices {
            config,
            store,
            vault: &names.vault,
            local_names: &names.local_names,
            directory: &directory,
            sink: Arc::new(inbound_queue(config, &queue)),
        };
        for network in configured {
            started.bridges.push(network.build(&services)?);
        }
        let mut connectors = Connectors::new();
        for bridge in &started.bridges {
            if connectors.get(bridge.network()).is_some() {
                return Err(BridgeError::SameUsers(bridge.network()).into());
            }
            connectors = connectors.with(bridge.network(), bridge.connector());
            if let Some(policy) = bridge.user_policy() {
                connectors = connectors.with_policy(bridge.network(), policy);
            }
        }
        let networks =
            started.bridges.iter().map(|bridge| (bridge.network(), bridge.connector().network().clone()));
        let bounds = InboxBounds {
            max_pending: u64::from(config.engine.max_pending_per_conversation),
            report_ttl: Some(config.relay.message_ttl_ms()).filter(|&ttl| ttl > 0).map(Duration::from_millis),
        };
        let limits = InboxLimits::new(&config.rate_limits);
        let aliases =
            AliasHold::new(names.vault.clone(), config.engine.max_held_until_consent, bounds.report_ttl);
        let inbox = BridgeInbox::new(queue.clone(), networks, bounds, limits).with_aliases(aliases);
        protocol.plug_inbox(Arc::new(inbox));
        started.engine =
            Some(assemble(config, queue, store.clone(), names, directory, protocol.clone(), connectors)?);
        Ok(())
    }

    /// The address of the `/metrics`-only listener (`admin.metrics_listen`), if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node_keys(&self) -> &Arc<NodeKeys> {
        &self.node_keys
    }

    /// The identity vault, the local names and the gateway.
    pub fn names(&self) -> &NameService {
        &self.names
    }

    /// The running network of type `T` (`MatrixNetwork`, `TelegramNetwork`, …), if configured.
    pub fn bridge<T: Bridge + 'static>(&self) -> Option<&T> {
        self.bridges.iter().find_map(|bridge| bridge.as_any().downcast_ref::<T>())
    }

    /// The Matrix connector, when `[matrix]` is configured.
    pub fn matrix(&self) -> Option<&Arc<dm3_bridge_matrix::MatrixConnector>> {
        self.bridge::<MatrixNetwork>().map(MatrixNetwork::connector)
    }

    /// Stops the node gracefully (see the module documentation for the order).
    pub async fn shutdown(self) -> Result<(), NodeError> {
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        self.stop.cancel();
        let mut server = self.server;
        let served = match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
            Ok(Ok(result)) => result.map_err(NodeError::Serve),
            Ok(Err(join_error)) => Err(NodeError::Serve(std::io::Error::other(join_error))),
            Err(_) => {
                tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing their connections");
                server.abort();
                Ok(())
            }
        };
        let _ = self.expiry.await;
        let _ = self.housekeeping.await;
        let _ = self.database_clock.await;
        for bridge in self.bridges.iter().rev() {
            bridge.stop().await;
        }
        if let Some(engine) = self.engine {
            engine.shutdown().await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        served
    }
}
