//! Outbox step 4: a signed message to every delivery service of its recipient.
//!
//! As the messenger does (docs/protocol.md §10.1, P13), not as the spec says: resolve the
//! recipient's verified profile, then each delivery service it names (`deliveryServices`,
//! `network.dm3.deliveryService`), seal one envelope per service (fresh ciphertext each, the
//! delivery information encrypted to that service, current format: `metadata.messageHash`,
//! P1) and post each with `dm3_submitMessage` through a [`DeliveryTarget`]: over HTTP for
//! another node ([`HttpDeliveryTarget`]), in process for this node's own service
//! ([`LocalDeliveryTarget`], chosen by [`RoutedTarget`]).
//!
//! [`deliver`] answers a [`DeliveryReport`], one result per service; [`DeliveryReport::outcome`]
//! turns it into the job's outcome:
//! - every service accepted → done;
//! - some service failed in a way that may pass (unreachable, 5xx, rate-limited, its name did
//!   not resolve for now) → retry, not before the longest `Retry-After`;
//! - otherwise, if at least one accepted → done: the recipient fetches from every service it
//!   lists and has the message; the services that refused for good are in the report for the
//!   log (waiting for them would retry until the message's TTL for nothing);
//! - nothing accepted and nothing to wait for → failed, with every service's reason.
//!
//! On a retry, the services that already accepted are not posted again when the handler passes
//! them in (`already_accepted`: cheap if the handler keeps [`DeliveryReport::accepted`] with
//! the job). If it does not, a re-post is still harmless: the message is the same (same hash,
//! see `convert::to_dm3`), this node deduplicates on (receiver, messageHash), and clients
//! deduplicate by `metadata.messageHash` (§5.2). The reference DS itself stores a second copy.

mod http;
mod local;
mod target;

pub use http::{HttpDeliveryTarget, HttpTargetOptions};
pub use local::{LocalDeliveryTarget, RoutedTarget};
pub use target::{DeliveryTarget, ServiceEndpoint, SubmitError};

use ::dm3::crypto::signing::SigningKeyPair;
use ::dm3::ens::EnsName;
use ::dm3::envelope::Envelope;
use ::dm3::message::{Message, MessageHash};

use super::failure::FailureKind;
use crate::names::ResolveError;
use crate::names::directory::{Directory, DirectoryError};

/// Why a message cannot be delivered to its recipient at all (before any delivery service).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error("the message is not deliverable: {0}")]
    BadMessage(String),
    #[error("{recipient} is not a DM3 user: {reason}")]
    UnknownRecipient { recipient: String, reason: String },
    #[error("the name source did not answer while resolving {name}: {detail}")]
    NameSourceUnavailable { name: String, detail: String },
    #[error("{recipient}'s profile names no delivery service")]
    NoDeliveryService { recipient: String },
    /// Some delivery service may still accept: try again.
    #[error("not yet delivered to every delivery service of {recipient}: {failures}")]
    Incomplete { recipient: String, failures: String, kind: FailureKind },
    /// No delivery service accepted, and none will.
    #[error("no delivery service of {recipient} accepted the message: {failures}")]
    Refused { recipient: String, failures: String },
}

impl DeliverError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::NameSourceUnavailable { .. } => FailureKind::RETRY,
            Self::Incomplete { kind, .. } => *kind,
            _ => FailureKind::Permanent,
        }
    }
}

/// The result at one delivery service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceResult {
    /// The service's name as the recipient's profile lists it (normalized when it parses).
    pub service: String,
    pub result: Result<Delivered, SubmitError>,
}

/// How a service came to hold the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// It accepted the envelope just now.
    Accepted,
    /// It accepted on an earlier attempt; not posted again.
    Earlier,
}

/// What happened at each delivery service of the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub recipient: EnsName,
    pub message_hash: MessageHash,
    pub services: Vec<ServiceResult>,
}

impl DeliveryReport {
    /// The services that hold the message (now or from an earlier attempt): keep them with
    /// the job and pass them back as `already_accepted` on a retry.
    pub fn accepted(&self) -> Vec<String> {
        self.services.iter().filter(|s| s.result.is_ok()).map(|s| s.service.clone()).collect()
    }

    /// The services that refused for good, with why (for the log when the job is done anyway).
    pub fn refused(&self) -> Vec<(&str, &SubmitError)> {
        self.services
            .iter()
            .filter_map(|s| match &s.result {
                Err(e) if !e.kind().is_retryable() => Some((s.service.as_str(), e)),
                _ => None,
            })
            .collect()
    }

    /// The job's outcome (see the module documentation): `Ok` when it is done.
    pub fn outcome(&self) -> Result<(), DeliverError> {
        let recipient = self.recipient.to_string();
        let failures = |retryable_only: bool| {
            self.services
                .iter()
                .filter_map(|s| match &s.result {
                    Err(e) if !retryable_only || e.kind().is_retryable() => {
                        Some(format!("{}: {e}", s.service))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let retry = self
            .services
            .iter()
            .filter_map(|s| s.result.as_ref().err().map(SubmitError::kind))
            .filter(|kind| kind.is_retryable())
            .reduce(FailureKind::combine);
        if let Some(kind) = retry {
            return Err(DeliverError::Incomplete { recipient, failures: failures(true), kind });
        }
        if self.services.iter().any(|s| s.result.is_ok()) {
            return Ok(());
        }
        Err(DeliverError::Refused { recipient, failures: failures(false) })
    }
}

/// Seals `message` (signed by `signing`) for every delivery service of its recipient
/// (`metadata.to`) and posts each through `target`, skipping those in `already_accepted`.
pub async fn deliver(
    message: &Message,
    signing: &SigningKeyPair,
    directory: &Directory,
    target: &dyn DeliveryTarget,
    already_accepted: &[String],
) -> Result<DeliveryReport, DeliverError> {
    let recipient = EnsName::parse(message.to()).map_err(|e| {
        DeliverError::BadMessage(format!("metadata.to `{}` is not a name: {e}", message.to()))
    })?;
    if message.signature().is_none() {
        return Err(DeliverError::BadMessage("the message is not signed".to_owned()));
    }
    let (recipient_key, services) = recipient_profile(directory, &recipient).await?;
    let mut results = Vec::with_capacity(services.len());
    for service in services {
        let result = if already_accepted.contains(&service) {
            Ok(Delivered::Earlier)
        } else {
            submit_to(message, signing, &recipient_key, &service, directory, target).await
        };
        results.push(ServiceResult { service, result });
    }
    Ok(DeliveryReport { recipient, message_hash: message.hash(), services: results })
}

/// Posts `envelope`, sealed by a gateway user's own client for the delivery service `service`,
/// to that service of `recipient` as it is (docs/gateway.md section 5): refused unless the
/// recipient's verified profile names `service`. The report has that one service.
pub async fn deliver_sealed(
    envelope: &Envelope,
    message_hash: MessageHash,
    recipient: &EnsName,
    service: &EnsName,
    directory: &Directory,
    target: &dyn DeliveryTarget,
) -> Result<DeliveryReport, DeliverError> {
    let (_, services) = recipient_profile(directory, recipient).await?;
    if !services.iter().any(|listed| listed == service.as_str()) {
        return Err(DeliverError::BadMessage(format!(
            "the envelope is sealed for {service}, which is not a delivery service of {recipient} ({})",
            services.join(", ")
        )));
    }
    let result = match resolve_service(directory, service.as_str()).await {
        Ok(endpoint) => target.submit(&endpoint, envelope).await.map(|()| Delivered::Accepted),
        Err(error) => Err(error),
    };
    let services = vec![ServiceResult { service: service.to_string(), result }];
    Ok(DeliveryReport { recipient: recipient.clone(), message_hash, services })
}

/// The recipient's encryption key and its delivery services (normalized, each once, in the
/// profile's order).
async fn recipient_profile(
    directory: &Directory,
    recipient: &EnsName,
) -> Result<([u8; 32], Vec<String>), DeliverError> {
    let unknown =
        |reason: String| DeliverError::UnknownRecipient { recipient: recipient.to_string(), reason };
    let verified = match directory.user_profile(recipient).await {
        Ok(Some(verified)) => verified,
        Ok(None) => return Err(unknown("the name has no DM3 profile".to_owned())),
        Err(DirectoryError::Resolve(ResolveError::Unavailable(detail))) => {
            return Err(DeliverError::NameSourceUnavailable { name: recipient.to_string(), detail });
        }
        Err(other) => return Err(unknown(other.to_string())),
    };
    let profile = verified.profile.profile();
    let key =
        profile.encryption_key().map_err(|e| unknown(format!("its encryption key is unusable: {e}")))?;
    let mut services: Vec<String> = Vec::new();
    for name in profile.delivery_services() {
        let name = EnsName::parse(name).map(|n| n.to_string()).unwrap_or_else(|_| name.to_owned());
        if !services.contains(&name) {
            services.push(name);
        }
    }
    if services.is_empty() {
        return Err(DeliverError::NoDeliveryService { recipient: recipient.to_string() });
    }
    Ok((key, services))
}

/// Resolves one delivery service, seals for it and posts.
async fn submit_to(
    message: &Message,
    signing: &SigningKeyPair,
    recipient_key: &[u8; 32],
    service: &str,
    directory: &Directory,
    target: &dyn DeliveryTarget,
) -> Result<Delivered, SubmitError> {
    let endpoint = resolve_service(directory, service).await?;
    let ds_key = endpoint
        .profile
        .encryption_key()
        .map_err(|e| SubmitError::BadProfile(format!("encryption key: {e}")))?;
    let envelope = Envelope::seal(message, signing, recipient_key, &ds_key)
        .map_err(|e| SubmitError::BadProfile(e.to_string()))?;
    target.submit(&endpoint, &envelope).await.map(|()| Delivered::Accepted)
}

async fn resolve_service(directory: &Directory, service: &str) -> Result<ServiceEndpoint, SubmitError> {
    let name = EnsName::parse(service).map_err(|e| SubmitError::BadProfile(format!("not a name: {e}")))?;
    match directory.delivery_service(&name).await {
        Ok(Some(profile)) => Ok(ServiceEndpoint { name, profile }),
        Ok(None) => Err(SubmitError::BadProfile("the name has no delivery-service profile".to_owned())),
        Err(DirectoryError::Resolve(ResolveError::Unavailable(detail))) => {
            Err(SubmitError::NameSourceUnavailable(detail))
        }
        Err(other) => Err(SubmitError::BadProfile(other.to_string())),
    }
}

#[cfg(test)]
mod tests;
