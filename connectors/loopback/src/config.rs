//! `[loopback]`: the loopback network's section of the service's config file.
//!
//! Shaped like the other connectors' sections: every key has a default (so `[loopback]` alone
//! turns it on), loading fails only on syntax and types, and [`LoopbackConfig::problems`] lists
//! what is wrong by key. Whether `users_of` names a network the node has virtual identities for
//! is the node's to check: this crate does not know them.
//!
//! ```toml
//! [loopback]
//! users_of = "telegram"   # whose virtual identities its users get: "telegram" or "matrix"
//! echo = false            # send every message back as its receiver's answer
//! ```

use dm3_bridge_connector::{ConfigProblem, NetworkId};
use serde::{Deserialize, Serialize};

/// `[loopback]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopbackConfig {
    /// The connector's name in the engine's tables.
    pub network: NetworkId,
    /// The network whose users it stands in for: their ids and their virtual identities.
    pub users_of: NetworkId,
    /// Every message sent to a user comes back as that user's answer.
    pub echo: bool,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self { network: network_id("loopback"), users_of: network_id("telegram"), echo: false }
    }
}

impl LoopbackConfig {
    /// Every semantic problem of the section, each with its key under `[loopback]`.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.network == self.users_of {
            out.push(ConfigProblem::new(
                "network",
                format!(
                    "{:?} is the network whose users it carries (users_of); the two would share the \
                     bridge's records: keep the default \"loopback\"",
                    self.network.as_str()
                ),
            ));
        }
        out
    }
}

fn network_id(id: &str) -> NetworkId {
    NetworkId::new(id).unwrap_or_else(|e| unreachable!("`{id}` is a valid network id: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_defaults_carry_telegram_users_without_echo_and_are_valid() {
        let config = LoopbackConfig::default();
        assert_eq!(
            (config.network.as_str(), config.users_of.as_str(), config.echo),
            ("loopback", "telegram", false)
        );
        assert_eq!(config.problems(), []);
        let same = LoopbackConfig { network: network_id("telegram"), ..LoopbackConfig::default() };
        assert_eq!(same.problems()[0].key, "network");
    }
}
