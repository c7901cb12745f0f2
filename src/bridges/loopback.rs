//! The loopback network in the node: `[loopback]`, for tests and diagnostics.
//!
//! Its connector (`connectors/loopback`) has no servers behind it: it records what the engine
//! sends and hands the engine what its users write (or, with `echo`, each message back as its
//! receiver's answer). Its users are those of another network the node has virtual identities
//! for (`users_of`), so it needs nothing from the service but the engine's inbound queue, and
//! it must not run beside that network: the engine finds a receiver's connector by the network
//! in the receiver's name, and two connectors would claim the same users.

use std::any::Any;
use std::sync::Arc;

use dm3_bridge_connector::Connector;
use dm3_bridge_loopback::{LoopbackConfig, LoopbackConnector};

use super::{Bridge, BridgeError, NetworkModule, NodeServices};
use crate::config::Config;
use crate::identities::network::Network;

/// `[loopback]` in the node's [`registry`](super::registry).
pub struct LoopbackModule;

impl NetworkModule for LoopbackModule {
    fn section(&self) -> &'static str {
        "loopback"
    }

    fn configured(&self, config: &Config) -> bool {
        config.loopback.is_some()
    }

    fn check(&self, config: &Config) -> Vec<Result<String, String>> {
        let Some(section) = &config.loopback else { return Vec::new() };
        match users_of(section) {
            Err(problem) => vec![Err(problem)],
            Ok(network) if runs(config, network) => vec![Err(format!(
                "loopback.users_of: [{network}] is configured too; the loopback network stands in for \
                 {network}'s users only where {network} does not run"
            ))],
            Ok(network) => {
                vec![Ok(format!(
                    "loopback: a test network carrying {network} users (echo: {})",
                    section.echo
                ))]
            }
        }
    }

    fn build(self: Box<Self>, node: &NodeServices<'_>) -> Result<Box<dyn Bridge>, BridgeError> {
        let section = node.config.loopback.as_ref().ok_or(BridgeError::NoIdentities("loopback"))?;
        let network = users_of(section).map_err(|problem| BridgeError::connector("loopback", problem))?;
        let connector = Arc::new(LoopbackConnector::new(section.clone(), node.sink.clone()));
        Ok(Box::new(LoopbackNetwork { network, connector }))
    }
}

/// The network whose virtual identities the loopback users get.
fn users_of(section: &LoopbackConfig) -> Result<Network, String> {
    section.users_of.as_str().parse().map_err(|e| format!("loopback.users_of: {e}"))
}

/// Whether `network`'s own section is configured.
fn runs(config: &Config, network: Network) -> bool {
    match network {
        Network::Telegram => config.telegram.is_some(),
        Network::Matrix => config.matrix.is_some(),
    }
}

/// The loopback network as the node runs it.
pub struct LoopbackNetwork {
    network: Network,
    connector: Arc<LoopbackConnector>,
}

impl LoopbackNetwork {
    /// The connector: what it recorded, and where its users write.
    pub fn connector(&self) -> &Arc<LoopbackConnector> {
        &self.connector
    }
}

impl Bridge for LoopbackNetwork {
    fn network(&self) -> Network {
        self.network
    }

    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
