//! The node's own delivery-service profile, as operators publish it.
//!
//! A DM3 client finds a delivery service through the ENS text record
//! `network.dm3.deliveryService` of the service's name: `{publicEncryptionKey,
//! publicSigningKey, url}` (docs/protocol.md §4.4). Senders encrypt `deliveryInformation` to the
//! first key, receivers check postmarks with the second, and `url` is the base of every HTTP
//! call (§9); this node serves its API at the root of `node.public_url`. The record must be the
//! `data:application/json,` form: bare JSON (what the reference CLI writes) is not found by the
//! reference clients.
//!
//! `dm3-bridge --config … profile` prints it ([`NodeDsProfile`]); the keys are opened with the
//! master key like at start-up, because only the sealed file holds them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::text_record::DELIVERY_SERVICE_KEY;
use serde_json::{Value, json};

use crate::config::Config;
use crate::node_keys::{NodeKeys, NodeKeysError};
use crate::vault::{MasterKey, MasterKeyError};

/// Why the node's profile could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DsProfileError {
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    NodeKeys(#[from] NodeKeysError),
}

/// The node's name and delivery-service profile.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDsProfile {
    pub name: String,
    pub profile: DeliveryServiceProfile,
}

impl NodeDsProfile {
    /// The profile of a node with these keys and config.
    pub fn new(config: &Config, keys: &NodeKeys) -> Self {
        let profile = DeliveryServiceProfile::new(
            STANDARD.encode(keys.encryption_public_key().as_bytes()),
            STANDARD.encode(keys.signing_public_key().as_bytes()),
            config.node.public_url.clone(),
        );
        Self { name: config.node.name.clone(), profile }
    }

    /// Opens the node keys with the master key (from `env` or its file) and builds the profile.
    pub fn load(config: &Config, env: &[(String, String)]) -> Result<Self, DsProfileError> {
        let (master, _) = MasterKey::resolve(config, env)?;
        let keys = NodeKeys::read_file(&master, &config.key_path(&config.keys.node_keys_file))?;
        Ok(Self::new(config, &keys))
    }

    /// The text record key: `network.dm3.deliveryService`.
    pub fn record_key(&self) -> &'static str {
        DELIVERY_SERVICE_KEY
    }

    /// The text record value to publish: `data:application/json,{…}` (canonical JSON).
    pub fn record_value(&self) -> String {
        self.profile.to_text_record()
    }

    /// Everything at once, for scripts.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "profile": self.profile.to_value(),
            "textRecordKey": self.record_key(),
            "textRecord": self.record_value(),
        })
    }
}
