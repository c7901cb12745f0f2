//! Each network in the node, and the one list of them.
//!
//! A network is a connector crate (`connectors/<network>`, which knows its network and nothing
//! of the node) and one file here, `bridges/<network>.rs`, which gives it what it asks of the
//! service (the store, the identity vault, the directory of verified DM3 names, the engine's
//! inbound queue) through the traits of its crate. Every network enters the node the same way,
//! through one entry point:
//! - a [`NetworkModule`] turns the network's config section into a [`Bridge`], not started;
//! - the [`Bridge`] hands the node its routes to mount and the engine its connector (and who may
//!   use it), is started once the node listens (Matrix's homeserver pings the node back) and
//!   stopped before the engine at shutdown.
//!
//! [`registry`] lists the modules, one line each: it is the only place the node names its
//! networks. Adding a network touches its crate, its file here, one line of [`registry`] and
//! the config (its section in [`Config`] and its problems in `config/validate.rs`);
//! ARCHITECTURE.md has the recipe.
//!
//! - [`matrix`]: `[matrix]` into the connector, the appservice routes, the start-up ping, and
//!   the ghost directory over the node's verified names;
//! - [`telegram`]: chat state over the store, virtual identities over the vault, DM3 names over
//!   the directory;
//! - [`loopback`]: a network with no servers behind it, for tests and diagnostics, carrying the
//!   users of another network.

pub mod loopback;
pub mod matrix;
pub mod telegram;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use dm3_bridge_connector::{BoxFuture, Connector, InboundSink};

use crate::config::Config;
use crate::engine::connectors::UserPolicy;
use crate::identities::network::Network;
use crate::identities::{IdentityVault, LocalNames};
use crate::names::directory::Directory;
use crate::store::Store;

/// Every network the node can run, in start order: one line per network.
pub fn registry() -> Vec<Box<dyn NetworkModule>> {
    vec![
        Box::new(matrix::MatrixModule::default()),
        Box::new(telegram::TelegramModule),
        Box::new(loopback::LoopbackModule),
    ]
}

/// `modules` with `module` in place of the module of its section (tests replace a network's
/// services this way, [`crate::node::Node::start_with_matrix`]).
pub fn replacing(
    mut modules: Vec<Box<dyn NetworkModule>>,
    module: Box<dyn NetworkModule>,
) -> Vec<Box<dyn NetworkModule>> {
    match modules.iter().position(|m| m.section() == module.section()) {
        Some(index) => modules[index] = module,
        None => modules.push(module),
    }
    modules
}

/// One network's entry into the node: from its config section to a [`Bridge`].
pub trait NetworkModule: Send {
    /// Its config section, which also names it in logs and errors: `matrix`.
    fn section(&self) -> &'static str;

    /// Whether the config turns it on (its section is present).
    fn configured(&self, config: &Config) -> bool;

    /// What `dm3-bridge check` can find out beyond [`Config::problems`] without side effects:
    /// notes (`Ok`) and problems (`Err`). Matrix compares the registration file with `[matrix]`.
    fn check(&self, _config: &Config) -> Vec<Result<String, String>> {
        Vec::new()
    }

    /// The network over the node's services, not started. Called only when
    /// [`NetworkModule::configured`].
    fn build(self: Box<Self>, node: &NodeServices<'_>) -> Result<Box<dyn Bridge>, BridgeError>;
}

/// What the node gives a network at start-up.
pub struct NodeServices<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    /// The virtual identities of the networks' users.
    pub vault: &'a IdentityVault,
    /// The node's own names (its virtual identities).
    pub local_names: &'a LocalNames,
    /// Verified DM3 profiles, the node's own identities first.
    pub directory: &'a Directory,
    /// The engine's durable inbound queue: a network acknowledges what it received only once
    /// this stored it.
    pub sink: Arc<dyn InboundSink>,
}

/// A network built from its config: what the node mounts, gives the engine, starts and stops.
pub trait Bridge: Send + Sync {
    /// Whose virtual identities it carries: the engine finds the connector of a DM3 message's
    /// receiver by the network in the receiver's name.
    fn network(&self) -> Network;

    /// The connector the engine sends through.
    fn connector(&self) -> Arc<dyn Connector>;

    /// Who may have a virtual identity on it (the operator's allow-list); everyone by default.
    fn user_policy(&self) -> Option<UserPolicy> {
        None
    }

    /// The routes it serves on the node's listener (Matrix's appservice, Telegram's webhook).
    fn routes(&self) -> Option<Router> {
        None
    }

    /// Starts receiving, once the node listens and the engine runs.
    fn start(&self) -> BoxFuture<'_, Result<(), BridgeError>> {
        Box::pin(async move {
            let connector = self.connector();
            connector.start().await.map_err(|e| BridgeError::connector(connector.network().as_str(), e))
        })
    }

    /// Stops receiving (before the engine stops); a failure is logged, shutdown goes on.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let connector = self.connector();
            if let Err(error) = connector.stop().await {
                tracing::warn!(network = %connector.network(), %error, "stopping a connector");
            }
        })
    }

    /// The concrete bridge, for callers that know which one they want ([`crate::node::Node::bridge`]).
    fn as_any(&self) -> &dyn Any;
}

/// Why a network did not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// `[matrix]`: its settings, its client, or the homeserver's start-up ping.
    #[error(transparent)]
    Matrix(#[from] matrix::MatrixError),
    /// Another network's connector could not be built or started.
    #[error("the {network} connector: {reason}")]
    Connector { network: String, reason: String },
    /// The network is configured, but its users could get no virtual identities (`dm3-bridge
    /// check` reports this before).
    #[error(
        "[{0}] is configured, but the node has no virtual identities for its users: set identities.parent"
    )]
    NoIdentities(&'static str),
    /// Two configured networks carry the same users (the loopback network and the one it
    /// stands in for); the engine could not tell which one a message is for.
    #[error("two configured networks carry the {0} users; run one of them")]
    SameUsers(Network),
}

impl BridgeError {
    pub fn connector(network: &str, reason: impl ToString) -> Self {
        Self::Connector { network: network.to_owned(), reason: reason.to_string() }
    }
}
