//! The node's own names, assembled at start-up: identity vault, local name table, gateway
//! signer, and the `/ccip` and `/names/lookup` routes (the node mounts `/admin`).
//!
//! One constructor for the node ([`crate::node`]) and the CLI (`dm3-bridge identity …`), so
//! both check the same things in the same order before touching anything:
//! 1. the `[identities]` settings make a name scheme (or none, when no parent is set);
//!    Users reachable before they used the bridge (`[matrix] reachable`) resolve on demand
//!    (docs/names.md "Reachable before first use");
//! 2. the gateway signer opens under the master key, or is generated when its file is missing;
//! 3. the newest sealed identity key opens under the master key, so a lost or wrong master key
//!    stops the node at start-up with a message that says so, not at the first message.

use std::sync::Arc;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::crypto::eth::checksum;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use serde::Serialize;

use crate::config::Config;
use crate::gateway::{self, Gateway, GatewaySigner, GatewaySignerError};
use crate::identities::scheme::SchemeError;
use crate::identities::{IdentityError, IdentityVault, LocalNames, Network};
use crate::node_keys::NodeKeys;
use crate::store::Store;
use crate::vault::MasterKey;

/// Why the name service did not start.
#[derive(Debug, thiserror::Error)]
pub enum NameServiceError {
    #[error("identities: {0}")]
    Scheme(#[from] SchemeError),
    #[error("matrix.reachable: {0}")]
    Reachable(#[from] dm3_bridge_matrix::PolicyError),
    #[error("node.name {0:?} is not a normalized ENS name")]
    NodeName(String),
    #[error(transparent)]
    Signer(#[from] GatewaySignerError),
    #[error("{0}; the identity keys are sealed under another master key (was master.key replaced?)")]
    MasterKey(IdentityError),
    #[error("checking the identity keys failed: {0}")]
    Identities(IdentityError),
}

/// Everything the node needs to serve and manage its own names.
#[derive(Clone)]
pub struct NameService {
    pub vault: IdentityVault,
    pub local_names: LocalNames,
    pub gateway: Gateway,
    /// What `GET /admin/gateway` shows.
    pub info: GatewayView,
}

impl NameService {
    /// Builds the service and checks the master key against the sealed keys (see above).
    pub async fn open(
        config: &Config,
        master: Arc<MasterKey>,
        store: Store,
        node_keys: &NodeKeys,
    ) -> Result<Self, NameServiceError> {
        let scheme = crate::identities::scheme::from_config(&config.identities)?;
        let node_name = EnsName::parse(&config.node.name)
            .ok()
            .filter(|name| name.as_str() == config.node.name)
            .ok_or_else(|| NameServiceError::NodeName(config.node.name.clone()))?;
        let signer_path = config.key_path(&config.identities.gateway_signer_file);
        let (signer, created) = GatewaySigner::open_or_create(&master, &signer_path)?;
        if created {
            tracing::warn!(
                path = %signer_path.display(),
                signer = %checksum(&signer.address()),
                "generated a new gateway signer: register its address on the parent name's OffchainResolver"
            );
        }

        let mut vault = IdentityVault::new(store.clone(), master, scheme.clone(), node_name.clone());
        if let Some(reachable) = crate::identities::on_demand::from_config(config)? {
            vault = vault.with_on_demand(reachable);
        }
        if config.telegram.is_some() {
            vault = vault.with_telegram_aliases();
        }
        match vault.check_master_key().await {
            Ok(_) => {}
            Err(e @ IdentityError::Keys(_)) => return Err(NameServiceError::MasterKey(e)),
            Err(e) => return Err(NameServiceError::Identities(e)),
        }

        let ds_profile = DeliveryServiceProfile::new(
            STANDARD.encode(node_keys.encryption_public_key().as_bytes()),
            STANDARD.encode(node_keys.signing_public_key().as_bytes()),
            config.node.public_url.clone(),
        );
        let local_names = LocalNames::new(vault.clone(), &ds_profile);
        let gateway = Gateway::new(local_names.clone(), Arc::new(signer), config.identities.answer_ttl_secs);
        let info = GatewayView {
            signer: checksum(&gateway.signer_address()),
            url_template: format!(
                "{}/ccip/{{sender}}/{{data}}.json",
                config.node.public_url.trim_end_matches('/')
            ),
            parent: scheme.as_ref().map(|s| s.parent().to_string()),
            node_name: node_name.to_string(),
            sub_names: scheme.as_ref().map(|s| SubNamesView {
                telegram: s.sub_parent(Network::Telegram),
                matrix: s.sub_parent(Network::Matrix),
            }),
            answer_ttl_secs: config.identities.answer_ttl_secs,
        };
        tracing::info!(
            signer = %info.signer,
            url_template = %info.url_template,
            parent = info.parent.as_deref().unwrap_or("(none: identities disabled)"),
            "CCIP-read gateway ready"
        );
        Ok(Self { vault, local_names, gateway, info })
    }

    /// The `/ccip` and `/names/lookup` routes, observed like the others.
    pub fn router(&self) -> Router {
        gateway::http::router(self.gateway.clone())
            .merge(crate::routes::name_lookup::router(self.vault.clone()))
            .layer(axum::middleware::from_fn(crate::routes::observe::observe))
    }
}

/// What an operator needs to set up the resolver of the parent name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    /// The address to register with `setSigner` on the OffchainResolver.
    pub signer: String,
    /// The EIP-3668 URL template to register with `setUrls`.
    pub url_template: String,
    pub parent: Option<String>,
    pub node_name: String,
    /// The sub-name of each network, when a parent is configured.
    pub sub_names: Option<SubNamesView>,
    pub answer_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubNamesView {
    pub telegram: String,
    pub matrix: String,
}
