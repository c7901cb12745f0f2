//! [`Network`]: the networks a DM3 bridge speaks, by the names they go by on the wire.
//!
//! A bridge payload names the network its content is encoded for (`"network": "matrix"`,
//! [`crate::bridge_payload`]), so the protocol needs the names; the bridge uses this same type
//! for everything else that names a network (virtual identities, its connectors, its
//! configuration), so that there is one list of networks and one spelling of each. This crate
//! is the lowest that can own it: it cannot depend on the bridge's connector crates, and those
//! know nothing of DM3, so they name a connector with their own neutral id instead.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A network DM3 can be bridged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Telegram,
    Matrix,
}

impl Network {
    pub const ALL: [Network; 2] = [Network::Telegram, Network::Matrix];

    /// The wire name, also the one used in configuration, APIs and databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Telegram => "telegram",
            Network::Matrix => "matrix",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the [`Network`]s (kept to 80 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?}; expected \"telegram\" or \"matrix\"")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Network::ALL
            .into_iter()
            .find(|network| network.as_str() == text)
            .ok_or_else(|| UnknownNetwork(text.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for network in Network::ALL {
            assert_eq!(network.as_str().parse::<Network>().unwrap(), network);
            assert_eq!(serde_json::to_value(network).unwrap(), network.as_str());
        }
        assert_eq!("irc".parse::<Network>(), Err(UnknownNetwork("irc".to_owned())));
        assert_eq!(
            "Matrix".parse::<Network>().unwrap_err().to_string(),
            "unknown network \"Matrix\"; expected \"telegram\" or \"matrix\""
        );
    }
}
