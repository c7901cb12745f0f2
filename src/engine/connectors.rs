//! The connectors the engine delivers through, by network.
//!
//! A virtual identity's name says which network its user is on (`tg-…` or `….mx.<parent>`,
//! [`crate::identities::scheme`]), so the inbox finds the connector from the receiver's name
//! alone; the outbox knows it from the job. A network without a running connector is a
//! configuration state, not an error of the message: its jobs wait (retry) until one runs.

use std::collections::HashMap;
use std::sync::Arc;

use dm3_bridge_connector::{Connector, NetworkId, NetworkUserId};

use crate::identities::network::Network;

/// Whether a network user may have a virtual identity (the operator's allow-list).
pub type UserPolicy = Arc<dyn Fn(&NetworkUserId) -> bool + Send + Sync>;

/// The running connectors, and who may use each.
#[derive(Clone, Default)]
pub struct Connectors {
    by_network: HashMap<Network, Arc<dyn Connector>>,
    policies: HashMap<Network, UserPolicy>,
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

    /// Lets only the users `policy` allows have identities on `network` (default: everyone).
    pub fn with_policy(mut self, network: Network, policy: UserPolicy) -> Self {
        self.policies.insert(network, policy);
        self
    }

    /// Whether `user` of `network` may have a virtual identity.
    pub fn allows(&self, network: Network, user: &NetworkUserId) -> bool {
        self.policies.get(&network).is_none_or(|policy| policy(user))
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
