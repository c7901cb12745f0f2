//! Where a sealed envelope goes: the [`DeliveryTarget`] seam and its error.
//!
//! The target only transports: resolving, sealing and deciding the job's outcome happen in
//! `deliver`. Two targets exist: HTTP to any delivery service, and in process for this node's
//! own (the node would otherwise post to itself through its public URL). Errors say whether
//! trying later may help, in the terms of docs/protocol.md §9.1: the reference answers success with
//! `200 OK` and failures with a 4xx and assorted bodies; clients look at the status only (P10).

use std::time::Duration;

use ::dm3::ds_profile::DeliveryServiceProfile;
use ::dm3::ens::EnsName;
use ::dm3::envelope::Envelope;

use dm3_bridge_connector::BoxFuture;

use crate::engine::dm3::failure::FailureKind;

/// A delivery service, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEndpoint {
    pub name: EnsName,
    pub profile: DeliveryServiceProfile,
}

/// Why one delivery service does not hold the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The service's profile is missing or unusable (bad key, bad URL, not a name).
    #[error("unusable delivery service: {0}")]
    BadProfile(String),
    #[error("the name source did not answer: {0}")]
    NameSourceUnavailable(String),
    /// The service refused the envelope (a 4xx, or a JSON-RPC error): it will refuse it again.
    #[error("refused ({}): {message}", describe(*status, *code))]
    Refused { status: Option<u16>, code: Option<i64>, message: String },
    /// The service asked us to slow down (429, or JSON-RPC "limit exceeded").
    #[error("rate-limited{}: {message}", after_text(*retry_after))]
    RateLimited { retry_after: Option<Duration>, message: String },
    /// The service could not take it now (5xx, timeout, connection failure).
    #[error("unavailable{}: {reason}", after_text(*retry_after))]
    Unavailable { retry_after: Option<Duration>, reason: String },
}

impl SubmitError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::BadProfile(_) | Self::Refused { .. } => FailureKind::Permanent,
            Self::NameSourceUnavailable(_) => FailureKind::RETRY,
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                FailureKind::Retryable { after: *retry_after }
            }
        }
    }
}

fn describe(status: Option<u16>, code: Option<i64>) -> String {
    match (status, code) {
        (Some(status), Some(code)) => format!("HTTP {status}, code {code}"),
        (Some(status), None) => format!("HTTP {status}"),
        (None, Some(code)) => format!("code {code}"),
        (None, None) => "in process".to_owned(),
    }
}

fn after_text(after: Option<Duration>) -> String {
    after.map(|after| format!(" (retry after {} s)", after.as_secs())).unwrap_or_default()
}

/// Posts an envelope to a delivery service with `dm3_submitMessage`.
pub trait DeliveryTarget: Send + Sync {
    /// `Ok` once the service accepted `envelope` (sealed for it).
    fn submit<'a>(
        &'a self,
        service: &'a ServiceEndpoint,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), SubmitError>>;
}
