//! Putting the engine together at start-up from the config: its directory, its delivery
//! target, and the connectors the node's networks ([`crate::bridges`]) built.

use std::sync::Arc;
use std::time::Duration;

use super::connectors::Connectors;
use super::dm3::attachments::AttachmentLimits;
use super::dm3::deliver::{HttpDeliveryTarget, HttpTargetOptions, LocalDeliveryTarget, RoutedTarget};
use super::parts::EngineParts;
use super::runtime::Engine;
use super::worker::WorkerOptions;
use super::{InboundQueue, Queue};
use crate::config::Config;
use crate::name_service::NameService;
use crate::names::chain::{NamesSetupError, build_directory};
use crate::names::directory::Directory;
use crate::protocol::DeliveryProtocol;
use crate::store::Store;

/// Why the engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineSetupError {
    #[error("setting up name resolution for the bridge: {0}")]
    Names(#[from] NamesSetupError),
    #[error("the bridge's delivery client: {0}")]
    Http(String),
    #[error("the node name {0:?} is not a valid ENS name")]
    NodeName(String),
}

/// The engine's view of names: the node's own identities first, without a chain round trip
/// (as for the relay), then `[names]`.
pub fn engine_directory(config: &Config, names: &NameService) -> Result<Directory, EngineSetupError> {
    let base = build_directory(&config.names)?;
    let resolver = names.local_names.clone().with_fallback(base.resolver().clone());
    Ok(base.with_resolver(Arc::new(resolver)))
}

/// The connectors' sink into `queue`: what they hand in and is not bridged within the relay's
/// message TTL fails (and is reported) instead of waiting for ever.
pub fn inbound_queue(config: &Config, queue: &Queue) -> InboundQueue {
    let sink = InboundQueue::new(queue.clone());
    match config.relay.message_ttl_ms() {
        0 => sink,
        ttl => sink.with_ttl(Duration::from_millis(ttl)),
    }
}

/// Starts the engine over `queue` for a node whose delivery service is `protocol`, delivering
/// through `connectors` (built by the caller: they take the queue as their sink).
pub fn assemble(
    config: &Config,
    queue: Queue,
    store: Store,
    names: &NameService,
    directory: Directory,
    protocol: Arc<dyn DeliveryProtocol>,
    connectors: Connectors,
) -> Result<Engine, EngineSetupError> {
    let own_name = dm3::ens::EnsName::parse(&config.node.name)
        .map_err(|_| EngineSetupError::NodeName(config.node.name.clone()))?;
    let remote = HttpDeliveryTarget::new(HttpTargetOptions {
        allow_private_addresses: config.names.allow_private_addresses,
        ..HttpTargetOptions::default()
    })
    .map_err(|e| EngineSetupError::Http(e.to_string()))?;
    let target = RoutedTarget::new(own_name, LocalDeliveryTarget::new(protocol), remote);
    let ttl = config.relay.message_ttl_ms();
    let parts = EngineParts {
        store,
        queue,
        vault: names.vault.clone(),
        directory,
        connectors,
        target: Box::new(target),
        attachment_limits: AttachmentLimits::default(),
        report_ttl: (ttl > 0).then(|| Duration::from_millis(ttl)),
        max_held_until_consent: config.engine.max_held_until_consent,
    };
    let options =
        WorkerOptions { concurrency: config.engine.concurrency as usize, ..WorkerOptions::default() };
    Ok(Engine::start(parts, options))
}
