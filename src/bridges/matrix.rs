//! The Matrix network in the node: `[matrix]` turned into a connector, the appservice routes,
//! the start-up ping, and the ghost directory.
//!
//! The connector crate (`dm3_bridge_matrix`) knows Matrix and nothing of the node; this module
//! is the seam. [`MatrixBridge::from_config`] builds the client, the registration (from the
//! tokens in the config, not from the file, which is the homeserver's copy) and the
//! [`MatrixConnector`]. [`MatrixBridge::router`] gives the routes the node mounts, handing
//! transactions to the engine's [`InboundSink`] (which takes them as they are, one keyed batch
//! each) and asking a [`GhostDirectory`] which ghosts exist: [`DirectoryGhosts`], the node's
//! directory of verified DM3 names. [`MatrixBridge::start`] pings the homeserver through the
//! bridge once the node listens, retrying while the homeserver is still starting, and then
//! probes it every few seconds for as long as the node runs, so that `/ready` says when the
//! homeserver cannot be reached (`dm3_bridge_matrix::reach`).
//!
//! `dm3-bridge generate-registration` is [`crate::matrix::generate`].

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use dm3_bridge_connector::{BoxFuture, Connector, ConnectorError, InboundSink, NetworkId, RemoteIdentity};
use dm3_bridge_matrix::crypto::{GhostDevices, KeySupply, ToDeviceOpener};
use dm3_bridge_matrix::{
    Appservice, AsToken, Client, ClientError, CommandPrefix, Decrypting, DirectoryError, GhostDirectory,
    GhostProfile, HsToken, MatrixConfig, MatrixConnector, MatrixToken, PolicyError, Registration,
    RegistrationError, UserPolicy,
};
use ruma::ServerName;
use tokio::task::{AbortHandle, JoinHandle};
use url::Url;

use super::{Bridge, BridgeError, NetworkModule, NodeServices};
use crate::config::Config;
use crate::engine::connectors::UserPolicy as EngineUserPolicy;
use crate::identities::LocalNames;
use crate::identities::network::Network;
use crate::lease::Leases;
use crate::names::ResolveError;
use crate::names::directory::{self, Directory};
use crate::store::Store;

/// Whether the registration file (the homeserver's copy) agrees with `[matrix]`: a note if it
/// does, the problem if not. A homeserver with another copy refuses the bridge's token or is
/// refused by the bridge, which the start-up ping reports less precisely.
pub fn check_registration_file(matrix: &MatrixConfig, data_dir: &Path) -> Result<String, String> {
    let path = matrix.registration_path(data_dir);
    let key = "matrix.registration_file";
    let yaml = match std::fs::read_to_string(&path) {
        Ok(yaml) => yaml,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{key}: {} does not exist; `dm3-bridge generate-registration` writes it for the homeserver",
                path.display()
            ));
        }
        Err(e) => return Err(format!("{key}: cannot read {}: {e}", path.display())),
    };
    let file = Registration::parse_yaml(&yaml)
        .map_err(|e| format!("{key}: {} is not a registration: {e}", path.display()))?;
    let token = |t: &Option<MatrixToken>| t.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
    let url = |u: &str| u.trim_end_matches('/').to_owned();
    let mismatches: Vec<&str> = [
        ("as_token", file.as_token == token(&matrix.as_token)),
        ("hs_token", file.hs_token == token(&matrix.hs_token)),
        ("url (matrix.bridge_url)", url(file.url.as_deref().unwrap_or_default()) == url(&matrix.bridge_url)),
        ("id (matrix.registration_id)", file.id == matrix.registration_id),
        ("sender_localpart (matrix.bot_localpart)", file.sender_localpart == matrix.bot_localpart),
        (
            "org.matrix.msc3202 and io.element.msc4190 (matrix.encryption)",
            Registration::yaml_asks_for_encryption(&yaml).unwrap_or(false)
                == matrix.encryption.asks_for_extensions(),
        ),
    ]
    .into_iter()
    .filter_map(|(field, same)| (!same).then_some(field))
    .collect();
    if mismatches.is_empty() {
        Ok(format!("matrix: {} matches [matrix]; the homeserver must load this file", path.display()))
    } else {
        Err(format!(
            "{key}: {} differs from [matrix] in {} (values not shown); run `dm3-bridge generate-registration --force` \
             and give the homeserver the new file",
            path.display(),
            mismatches.join(", ")
        ))
    }
}

pub mod device_list_store;
pub mod identity_pins;
pub mod olm_store;
pub mod outbound_store;
pub mod to_device_inbox;

/// The network id of the Matrix connector in the engine's tables.
pub const MATRIX_NETWORK: &str = "matrix";

/// What the service's Matrix halves are built from at start-up.
pub struct MatrixContext {
    pub store: Store,
    /// The node's own names (its virtual identities), for the ghost directory.
    pub local_names: LocalNames,
    /// The connector, for the engine's sends and portals.
    pub connector: Arc<MatrixConnector>,
    /// Which Matrix users may use the bridge (`matrix.allow`).
    pub policy: UserPolicy,
}

/// The service's halves of the appservice.
pub struct MatrixServices {
    /// The engine's durable inbound queue: each transaction is stored there before the
    /// homeserver gets its 200.
    pub sink: Arc<dyn InboundSink>,
    /// Which DM3 names have ghosts, asked when a Matrix user invites an unknown one.
    pub directory: Arc<dyn GhostDirectory>,
}

/// Builds [`MatrixServices`] once the store is open ([`MatrixModule::with_services`],
/// [`crate::node::Node::start_with_matrix`]).
pub type MatrixFactory = Box<dyn FnOnce(MatrixContext) -> MatrixServices + Send>;

/// Why the Matrix bridge did not start.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// `[matrix]` is incomplete or malformed (`dm3-bridge check` lists every problem).
    #[error("[matrix] is not usable: {0}")]
    Config(String),
    #[error("[matrix] is not usable: {0}")]
    Registration(#[from] RegistrationError),
    #[error("matrix.allow: {0}")]
    Policy(#[from] PolicyError),
    #[error("the Matrix client could not be built: {0}")]
    Client(#[from] ClientError),
    /// The start-up ping failed; the message names the setting to fix.
    #[error("the Matrix homeserver check failed: {0}")]
    Ping(ConnectorError),
}

/// The Matrix side of the node.
pub struct MatrixBridge {
    registration: Registration,
    client: Arc<Client>,
    connector: Arc<MatrixConnector>,
    policy: UserPolicy,
    commands: CommandPrefix,
    bridge_url: String,
    ping_timeout: Duration,
}

impl MatrixBridge {
    /// The bridge `matrix` describes (a section that `dm3-bridge check` found valid).
    pub fn from_config(matrix: &MatrixConfig) -> Result<Self, MatrixError> {
        let missing = |key: &str| MatrixError::Config(format!("matrix.{key} is not set"));
        let bridge_url = Url::parse(&matrix.bridge_url)
            .map_err(|e| MatrixError::Config(format!("matrix.bridge_url: {e}")))?;
        let homeserver = Url::parse(&matrix.homeserver_url)
            .map_err(|e| MatrixError::Config(format!("matrix.homeserver_url: {e}")))?;
        let server = ServerName::parse(&matrix.server_name)
            .map_err(|e| MatrixError::Config(format!("matrix.server_name: {e}")))?;
        let as_token = AsToken::new(matrix.as_token.as_ref().ok_or_else(|| missing("as_token"))?.expose());
        let hs_token = HsToken::new(matrix.hs_token.as_ref().ok_or_else(|| missing("hs_token"))?.expose());
        let registration = Registration::from_parts(
            matrix.registration_id.clone(),
            bridge_url,
            &server,
            &matrix.bot_localpart,
            &matrix.ghost_prefix,
            as_token,
            hs_token,
        )?;
        let client = Arc::new(Client::new(&homeserver, registration.as_token().clone(), registration.id())?);
        let network = NetworkId::new(MATRIX_NETWORK).map_err(|e| MatrixError::Config(e.to_string()))?;
        let connector = Arc::new(
            MatrixConnector::new(network, client.clone(), registration.ghosts().clone())
                .with_max_media_bytes(matrix.max_media_bytes)
                .requiring_encryption(matrix.encryption == dm3_bridge_matrix::Encryption::Require),
        );
        Ok(Self {
            policy: matrix.user_policy()?,
            commands: matrix
                .command_prefix()
                .map_err(|e| MatrixError::Config(format!("matrix.command_prefix: {e}")))?,
            registration,
            client,
            connector,
            bridge_url: matrix.bridge_url.clone(),
            ping_timeout: Duration::from_secs(matrix.ping_timeout_secs),
        })
    }

    /// The connector, for the engine's outbound sends and portals.
    pub fn connector(&self) -> &Arc<MatrixConnector> {
        &self.connector
    }

    /// Which Matrix users may use the bridge.
    pub fn policy(&self) -> &UserPolicy {
        &self.policy
    }

    /// The registration the node runs under (its scope keys the remembered transaction ids).
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The appservice routes, to merge into the node's router: transactions go to `sink`,
    /// ghost queries to `directory`.
    pub fn router(
        &self,
        sink: Arc<dyn InboundSink>,
        directory: Arc<dyn GhostDirectory>,
        devices: Option<(Arc<GhostDevices>, KeySupply)>,
    ) -> Router {
        let appservice = Appservice::new(&self.registration, self.client.clone(), sink, directory)
            .network(self.connector.network().clone())
            .command_prefix(self.commands.clone());
        match devices {
            Some((devices, supply)) => appservice.ghost_devices(devices).key_supply(supply).router(),
            None => appservice.router(),
        }
    }

    /// Gives the connector ghost devices whose Olm accounts live sealed in the node's database
    /// ([`olm_store`]) with their outbound Megolm sessions, and starts the task that keeps them supplied with one-time keys; the
    /// routes keep the to-device messages sent to them ([`to_device_inbox`]), and a task opens them.
    fn ghost_devices(
        &self,
        node: &NodeServices<'_>,
    ) -> ((Arc<GhostDevices>, KeySupply), Vec<JoinHandle<()>>) {
        let store = olm_store::SealedOlmStore::new(
            node.store.clone(),
            node.vault.master_key().clone(),
            Leases::new(node.store.clone()),
        );
        let store = Arc::new(store);
        let devices = Arc::new(GhostDevices::new(self.client.clone(), store.clone()));
        // The same store keeps the outbound Megolm sessions ([`outbound_store`]), the members'
        // device lists ([`device_list_store`]), the senders' pinned master keys
        // ([`identity_pins`]) and the to-device messages until they are opened
        // ([`to_device_inbox`]).
        devices.set_inbox(store.clone());
        devices.set_outbound(store.clone());
        devices.set_device_lists(store.clone());
        devices.set_identity_pins(store);
        self.connector.set_devices(devices.clone());
        self.connector.set_decrypting(Decrypting {
            commands: self.commands.clone(),
            patience: Duration::from_secs(
                node.config
                    .matrix
                    .as_ref()
                    .map_or(dm3_bridge_matrix::DEFAULT_UNDECRYPTABLE_AFTER.as_secs(), |matrix| {
                        matrix.undecryptable_after_secs
                    }),
            ),
            sender_trust: node.config.matrix.as_ref().map(|matrix| matrix.sender_trust).unwrap_or_default(),
        });
        let (supply, task) = KeySupply::start(devices.clone());
        let opener = ToDeviceOpener::start(devices.clone());
        ((devices, supply), vec![task, opener])
    }

    /// Pings the homeserver through the bridge (the node must be listening), retrying
    /// temporary failures until `matrix.ping_timeout_secs` have passed.
    pub async fn start(&self) -> Result<(), MatrixError> {
        let deadline = Instant::now() + self.ping_timeout;
        let mut delay = Duration::from_millis(500);
        loop {
            match self.connector.start().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && Instant::now() + delay < deadline => {
                    tracing::warn!(error = %e, bridge_url = %self.bridge_url, "the homeserver check failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(MatrixError::Ping(e)),
            }
        }
    }
}

/// `[matrix]` in the node's [`registry`](super::registry).
#[derive(Default)]
pub struct MatrixModule {
    /// Replaces the engine's halves of the appservice (tests stand in for the engine there).
    services: Option<MatrixFactory>,
}

impl MatrixModule {
    /// The module with the service's halves built by `services` instead of the engine's queue
    /// and the node's directory.
    pub fn with_services(services: MatrixFactory) -> Self {
        Self { services: Some(services) }
    }
}

impl NetworkModule for MatrixModule {
    fn section(&self) -> &'static str {
        "matrix"
    }

    fn configured(&self, config: &Config) -> bool {
        config.matrix.is_some()
    }

    fn check(&self, config: &Config) -> Vec<Result<String, String>> {
        let encryption =
            |matrix: &MatrixConfig| Ok(format!("matrix.encryption = {}", matrix.encryption.today()));
        let sender_trust =
            |matrix: &MatrixConfig| Ok(format!("matrix.sender_trust = {}", matrix.sender_trust.today()));
        config
            .matrix
            .iter()
            .flat_map(|matrix| {
                [check_registration_file(matrix, config.data_dir()), encryption(matrix), sender_trust(matrix)]
            })
            .collect()
    }

    fn build(self: Box<Self>, node: &NodeServices<'_>) -> Result<Box<dyn Bridge>, BridgeError> {
        let section = node.config.matrix.as_ref().ok_or(BridgeError::NoIdentities("matrix"))?;
        let bridge = MatrixBridge::from_config(section)?;
        let supply = section.encryption.asks_for_extensions().then(|| bridge.ghost_devices(node));
        let services = match self.services {
            Some(factory) => factory(MatrixContext {
                store: node.store.clone(),
                local_names: node.local_names.clone(),
                connector: bridge.connector().clone(),
                policy: bridge.policy().clone(),
            }),
            None => MatrixServices {
                sink: node.sink.clone(),
                directory: Arc::new(DirectoryGhosts::new(node.directory.clone())),
            },
        };
        let (supply, supply_task) = supply.unzip();
        let routes = bridge.router(services.sink, services.directory, supply);
        let tasks = Mutex::new(supply_task.into_iter().flatten().map(|task| task.abort_handle()).collect());
        Ok(Box::new(MatrixNetwork { bridge, routes, probe: Mutex::new(None), tasks }))
    }
}

/// How often the running node asks whether the homeserver answers, and how long it waits: an
/// outage shows in `/ready` within about this time even when nothing is being sent, and its
/// end too (`dm3_bridge_matrix::reach`).
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The Matrix network as the node runs it: the bridge, its routes, and the task that probes
/// the homeserver while it runs.
pub struct MatrixNetwork {
    bridge: MatrixBridge,
    routes: Router,
    probe: Mutex<Option<AbortHandle>>,
    /// The top-up task of the ghost devices' one-time keys, when encryption is not `off`.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for MatrixNetwork {
    /// A network dropped without [`Bridge::stop`] (a test's node, a start unwound) leaves no
    /// probe behind.
    fn drop(&mut self) {
        if let Some(probe) = self.probe_handle().take() {
            probe.abort();
        }
        self.abort_tasks();
    }
}

impl MatrixNetwork {
    fn abort_tasks(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }

    fn probe_handle(&self) -> std::sync::MutexGuard<'_, Option<AbortHandle>> {
        // One assignment at a time: a poisoned lock still holds a whole value.
        self.probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connector, for callers outside the engine (tests read its media limit).
    pub fn connector(&self) -> &Arc<MatrixConnector> {
        self.bridge.connector()
    }
}

impl Bridge for MatrixNetwork {
    fn network(&self) -> Network {
        Network::Matrix
    }

    fn connector(&self) -> Arc<dyn Connector> {
        self.bridge.connector().clone()
    }

    fn user_policy(&self) -> Option<EngineUserPolicy> {
        let policy = self.bridge.policy().clone();
        Some(Arc::new(move |user| policy.allows_network_user(user)))
    }

    fn routes(&self) -> Option<Router> {
        Some(self.routes.clone())
    }

    /// The homeserver's ping through the bridge, retried while it is starting; then the probe
    /// of the homeserver, until [`Bridge::stop`].
    fn start(&self) -> BoxFuture<'_, Result<(), BridgeError>> {
        Box::pin(async move {
            self.bridge.start().await?;
            let client = self.bridge.client.clone();
            let probe = tokio::spawn(async move {
                let mut every = tokio::time::interval(PROBE_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    client.probe(PROBE_EVERY).await;
                }
            });
            if let Some(previous) = self.probe_handle().replace(probe.abort_handle()) {
                previous.abort();
            }
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(probe) = self.probe_handle().take() {
                probe.abort();
            }
            self.abort_tasks();
            if let Err(error) = self.bridge.connector().stop().await {
                tracing::warn!(network = MATRIX_NETWORK, %error, "stopping a connector");
            }
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Which DM3 users get a ghost on Matrix: those whose name resolves to a verified DM3 profile.
///
/// The homeserver asks when a Matrix user invites an unknown `@_dm3_…` user. Answering yes for
/// any name would let anyone fill the homeserver with junk users, so the directory must verify
/// a profile first. A name source that is down is an error, not a "no" (the homeserver would
/// remember the "no").
pub struct DirectoryGhosts {
    directory: Directory,
}

impl DirectoryGhosts {
    pub fn new(directory: Directory) -> Self {
        Self { directory }
    }
}

impl GhostDirectory for DirectoryGhosts {
    fn lookup<'a>(
        &'a self,
        identity: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>> {
        Box::pin(async move {
            let Ok(name) = dm3::ens::EnsName::parse(identity.as_str()) else { return Ok(None) };
            match self.directory.user_profile(&name).await {
                Ok(Some(_)) => Ok(Some(GhostProfile { display_name: name.to_string() })),
                Ok(None) => Ok(None),
                Err(directory::DirectoryError::Resolve(ResolveError::Unavailable(detail))) => {
                    Err(DirectoryError(detail))
                }
                Err(_) => Ok(None),
            }
        })
    }
}
