//! Start-up and shutdown of the whole node, in the order that keeps the promises.
//!
//! Start-up refuses to serve anything it could not serve correctly:
//! 1. the configuration is valid ([`Config::problems`]);
//! 2. the master key is found and opens the sealed node keys; a wrong key stops the node with
//!    "master key does not open the sealed node keys: wrong key file?", never garbage keys;
//! 3. the database is reachable and migrated;
//! 4. the gateway signer opens (or is generated) and the sealed identity keys open under the
//!    master key ([`crate::name_service`]);
//! 5. the listener is bound.
//!
//! Only then does it accept requests.
//!
//! Shutdown (SIGTERM, ctrl-c, or [`Node::shutdown`]) reverses it:
//! 1. stop accepting connections and let the requests in flight finish (bounded by
//!    [`DRAIN_TIMEOUT`]); a submit in flight is answered only after its envelope committed;
//! 2. stop the background workers;
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

use crate::bridges::telegram::build_telegram;
use crate::config::{Config, Problem};
use crate::engine::Queue;
use crate::engine::assemble::{EngineSetupError, assemble, engine_directory, inbound_queue};
use crate::engine::connectors::Connectors;
use crate::engine::ghosts::EngineGhosts;
use crate::engine::runtime::Engine;
use crate::identities::network::Network;
use crate::matrix::{MatrixBridge, MatrixContext, MatrixError, MatrixFactory, MatrixServices};
use crate::name_service::{NameService, NameServiceError};
use crate::node_keys::{NodeKeys, NodeKeysError};
use crate::protocol::{ProtocolContext, ProtocolFactory};
use crate::rate_limit::{self, ClientRateLimits};
use crate::server::{AppState, router, serve};
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry;
use crate::vault::{MasterKey, MasterKeyError};
use dm3_bridge_connector::Connector;

/// The longest shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the node did not start or stop cleanly.
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
    #[error(transparent)]
    Matrix(#[from] MatrixError),
}

/// A running node.
pub struct Node {
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    expiry: JoinHandle<()>,
    /// The bridge engine's workers, when the node bridges.
    engine: Option<Engine>,
    matrix: Option<Arc<dm3_bridge_matrix::MatrixConnector>>,
    telegram: Option<Arc<dm3_bridge_telegram::TelegramConnector>>,
    store: Store,
    node_keys: Arc<NodeKeys>,
    names: NameService,
}

impl Node {
    /// Starts a node; `env` is the process environment (for `DM3_BRIDGE_MASTER_KEY`), and
    /// `protocol` builds the DM3 protocol implementation.
    pub async fn start(
        config: &Config,
        env: &[(String, String)],
        protocol: ProtocolFactory,
    ) -> Result<Self, NodeError> {
        Self::start_with_matrix(config, env, protocol, None).await
    }

    /// [`Node::start`], with the service's halves of the Matrix bridge replaced by `matrix`
    /// (tests stand in for the engine there). Without it, `[matrix]` hands transactions to the
    /// engine's durable queue and asks the engine's directory which ghosts exist. The
    /// homeserver must answer the ping before the start succeeds.
    pub async fn start_with_matrix(
        config: &Config,
        env: &[(String, String)],
        protocol: ProtocolFactory,
        matrix: Option<MatrixFactory>,
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
            max_connections: config.database.max_connections,
            busy_timeout: Duration::from_millis(config.database.busy_timeout_ms),
            ..StoreOptions::default()
        };
        let store = Store::open(&url, &options)
            .await
            .map_err(|source| NodeError::Store { url: url.to_string(), source })?;
        tracing::info!(database = %url, backend = %store.backend(), "database ready");
        let names = NameService::open(config, master, store.clone(), &node_keys).await?;

        let metrics = telemetry::metrics::install();
        // The engine runs when the node has virtual identities to bridge.
        let engine_queue = names.local_names.bridges().then(|| Queue::new(store.clone()));
        let protocol = protocol(ProtocolContext {
            store: store.clone(),
            node_keys: node_keys.clone(),
            relay: config.relay.clone(),
            node_name: config.node.name.clone(),
            public_url: config.node.public_url.clone(),
            local_names: names.local_names.clone(),
            engine_queue: engine_queue.clone(),
        });
        let engine_directory = match &engine_queue {
            Some(_) => Some(engine_directory(config, &names)?),
            None => None,
        };
        let matrix = match (&config.matrix, matrix, &engine_queue, &engine_directory) {
            (None, _, _, _) => None,
            (Some(section), factory, queue, directory) => {
                let bridge = MatrixBridge::from_config(section)?;
                let services = match (factory, queue, directory) {
                    (Some(factory), _, _) => factory(MatrixContext {
                        store: store.clone(),
                        local_names: names.local_names.clone(),
                        connector: bridge.connector().clone(),
                        policy: bridge.policy().clone(),
                    }),
                    (None, Some(queue), Some(directory)) => MatrixServices {
                        sink: Arc::new(inbound_queue(config, queue)),
                        directory: Arc::new(EngineGhosts::new(directory.clone())),
                    },
                    (None, _, _) => {
                        store.close().await;
                        return Err(MatrixError::Config(
                            "[matrix] is configured, but the node has no virtual identities for Matrix users: \
                             set identities.parent"
                                .to_owned(),
                        )
                        .into());
                    }
                };
                let routes = bridge.router(services.sink, services.directory);
                Some((bridge, routes))
            }
        };
        let telegram = match (&config.telegram, &engine_queue, &engine_directory) {
            (None, _, _) => None,
            (Some(section), Some(queue), Some(directory)) => Some(
                build_telegram(
                    section,
                    Arc::new(inbound_queue(config, queue)),
                    store.clone(),
                    names.vault.clone(),
                    directory.clone(),
                )
                .map_err(|e| EngineSetupError::Connector { network: "telegram", reason: e.to_string() })?,
            ),
            (Some(_), _, _) => {
                store.close().await;
                return Err(EngineSetupError::Connector {
                    network: "telegram",
                    reason: "[telegram] is configured, but the node has no virtual identities for Telegram \
                             users: set identities.parent"
                        .to_owned(),
                }
                .into());
            }
        };
        let engine = match (&engine_queue, engine_directory) {
            (Some(queue), Some(directory)) => {
                let mut connectors = Connectors::new();
                if let Some(connector) = &telegram {
                    let connector: Arc<dyn Connector> = connector.clone();
                    connectors = connectors.with(Network::Telegram, connector);
                }
                if let Some((bridge, _)) = &matrix {
                    let connector: Arc<dyn Connector> = bridge.connector().clone();
                    let policy = bridge.policy().clone();
                    connectors = connectors
                        .with(Network::Matrix, connector)
                        .with_policy(Network::Matrix, Arc::new(move |user| policy.allows_network_user(user)));
                }
                Some(assemble(
                    config,
                    queue.clone(),
                    store.clone(),
                    &names,
                    directory,
                    protocol.clone(),
                    connectors,
                )?)
            }
            _ => None,
        };
        let state = AppState::new(store.clone(), config.relay.clone(), protocol, metrics, &config.admin);

        let listener = TcpListener::bind(&config.node.listen)
            .await
            .map_err(|source| NodeError::Bind { addr: config.node.listen.clone(), source })?;
        let addr = listener.local_addr().map_err(NodeError::Serve)?;
        let stop = CancellationToken::new();
        let mut app = router(state).merge(names.router(config));
        if let Some((_, routes)) = &matrix {
            app = app.merge(routes.clone());
        }
        if let Some(routes) = telegram.as_ref().and_then(|connector| connector.webhook_router()) {
            app = app.merge(routes);
        }
        let rate_limits = ClientRateLimits::new(&config.rate_limits);
        let app = app.layer(axum::middleware::from_fn_with_state(rate_limits, rate_limit::enforce));
        let server = tokio::spawn(serve(listener, app, config.limits.clone(), stop.clone()));
        if let Some((bridge, _)) = &matrix
            && let Err(e) = bridge.start().await
        {
            stop.cancel();
            let _ = server.await;
            if let Some(engine) = engine {
                engine.shutdown().await;
            }
            store.close().await;
            return Err(e.into());
        }
        let matrix = matrix.map(|(bridge, _)| bridge.connector().clone());
        if let Some(connector) = &telegram
            && let Err(e) = connector.start().await
        {
            stop.cancel();
            let _ = server.await;
            if let Some(engine) = engine {
                engine.shutdown().await;
            }
            store.close().await;
            return Err(EngineSetupError::Connector { network: "telegram", reason: e.to_string() }.into());
        }
        let expiry = tokio::spawn(crate::expiry::run(store.clone(), crate::expiry::INTERVAL, stop.clone()));
        tracing::info!(%addr, name = %config.node.name, "dm3-bridge relay listening");
        Ok(Self { addr, stop, server, expiry, engine, matrix, telegram, store, node_keys, names })
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

    /// The Matrix connector, when `[matrix]` is configured.
    pub fn matrix(&self) -> Option<&Arc<dm3_bridge_matrix::MatrixConnector>> {
        self.matrix.as_ref()
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
        if let Some(connector) = &self.telegram
            && let Err(error) = connector.stop().await
        {
            tracing::warn!(%error, "stopping the Telegram connector");
        }
        if let Some(engine) = self.engine {
            engine.shutdown().await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        served
    }
}
