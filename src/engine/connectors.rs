//! The connectors the engine delivers through, by network.
//!
//! A virtual identity's name says which network its user is on (`tg-…` or `….mx.<parent>`,
//! [`crate::identities::scheme`]), so the inbox finds the connector from the receiver's name
//! alone; the outbox knows it from the job. A network without a running connector is a
//! configuration state, not an error of the message: its jobs wait (retry) until one runs.

use std::collections::HashMap;
use std::sync::Arc;

use dm3_bridge_connector::{Connector, NetworkId};

use crate::identities::network::Network;

/// The running connectors.
#[derive(Clone, Default)]
pub struct Connectors {
    by_network: HashMap<Network, Arc<dyn Connector>>,
}

impl Connectors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the connector of `network`, replacing any earlier one.
    pub fn with(mut self, network: Network, connector: Arc<dyn Connector>) -> Self {
        self.by_network.insert(network, connector);
        self
    }

    pub fn get(&self, network: Network) -> Option<&Arc<dyn Connector>> {
        self.by_network.get(&network)
    }

    /// The network of a connector id (`matrix`, `telegram`), if that connector runs.
    pub fn network_of(&self, id: &NetworkId) -> Option<Network> {
        self.by_network.iter().find(|(_, connector)| connector.network() == id).map(|(network, _)| *network)
    }

    pub fn is_empty(&self) -> bool {
        self.by_network.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Network, &Arc<dyn Connector>)> {
        self.by_network.iter().map(|(network, connector)| (*network, connector))
    }
}
