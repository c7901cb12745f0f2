//! What both job handlers share: the engine's collaborators, how a step's failure becomes a
//! job outcome, and the queueing of failure reports ([`Report`]). Portals are in
//! [`super::portals`].

use std::time::Duration;

use dm3_bridge_connector::{Connector, ConnectorError};

use super::Queue;
use super::connectors::Connectors;
use super::dm3::FailureKind;
use super::dm3::attachments::AttachmentLimits;
use super::dm3::deliver::DeliveryTarget;
use super::job::{JobPayload, Report};
use super::worker::{FailureCause, Outcome};
use crate::clock::now_ms;
use crate::identities::IdentityError;
use crate::identities::network::Network;
use crate::identities::vault::IdentityVault;
use crate::names::directory::Directory;
use crate::store::{NewJob, QueueName, Store, StoreError};

/// The engine's collaborators, shared by its handlers.
pub struct EngineParts {
    pub store: Store,
    pub queue: Queue,
    pub vault: IdentityVault,
    /// Verified profiles of senders and recipients, the node's own identities first.
    pub directory: Directory,
    pub connectors: Connectors,
    /// Where DM3 messages are posted: this node in process, other delivery services over HTTP.
    pub target: Box<dyn DeliveryTarget>,
    pub attachment_limits: AttachmentLimits,
    /// The relay's message TTL: how long a report may take to deliver.
    pub report_ttl: Option<Duration>,
    /// Most messages held for a network user who has not accepted a first contact.
    pub max_held_until_consent: u32,
}

/// A step that did not succeed, classified for the worker.
#[derive(Debug)]
pub struct Failure {
    kind: FailureKind,
    reason: String,
    cause: FailureCause,
}

impl Failure {
    pub fn permanent(reason: impl ToString) -> Self {
        Self { kind: FailureKind::Permanent, reason: reason.to_string(), cause: FailureCause::Other }
    }

    pub fn retry(reason: impl ToString) -> Self {
        Self { kind: FailureKind::RETRY, reason: reason.to_string(), cause: FailureCause::Other }
    }

    /// A failure of a DM3 step (opening, converting, delivering), classified by the step.
    pub fn from_kind(kind: FailureKind, reason: String) -> Self {
        Self { kind, reason, cause: FailureCause::Dm3 }
    }

    /// The same failure, counted under `cause` should it end the job.
    pub fn because(self, cause: FailureCause) -> Self {
        Self { cause, ..self }
    }

    /// The database is down or shutting down: it will pass.
    pub fn store(error: StoreError) -> Self {
        Self::retry(format!("database: {error}"))
    }

    pub fn identity(error: IdentityError) -> Self {
        match error {
            IdentityError::Store(error) => Self::store(error),
            IdentityError::Conflict(_) => Self::retry(error),
            other => Self::permanent(other).because(FailureCause::Identity),
        }
    }

    pub fn connector(error: ConnectorError) -> Self {
        let reason = error.to_string();
        let failure = match error {
            ConnectorError::RetryAfter(after) => {
                Self { kind: FailureKind::Retryable { after }, reason, cause: FailureCause::Other }
            }
            ConnectorError::Transient(_) => Self::retry(reason),
            ConnectorError::Permanent(_) | ConnectorError::Unsupported(_) => Self::permanent(reason),
        };
        failure.because(FailureCause::Network)
    }

    pub fn into_outcome(self) -> Outcome {
        match self.kind {
            FailureKind::Retryable { after } => Outcome::Retry { after, reason: self.reason },
            FailureKind::Permanent => Outcome::Failed { reason: self.reason, cause: self.cause },
        }
    }
}

/// The outbox job of `report` about the job keyed `job_key` in `conversation`, queued at `now`
/// and kept for `ttl`: keyed after that job, so that reporting it twice queues one report.
pub fn report_job(
    job_key: &str,
    conversation: &str,
    report: &Report,
    now: i64,
    ttl: Option<Duration>,
) -> Result<NewJob, serde_json::Error> {
    let ttl = ttl.map(|ttl| i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    Ok(NewJob {
        queue: QueueName::Outbox,
        idempotency_key: format!("report:{job_key}"),
        conversation: format!("report:{conversation}"),
        payload: JobPayload::Report { report: report.clone() }.to_json()?,
        expires_at_ms: ttl.map(|ttl| now.saturating_add(ttl)),
    })
}

impl EngineParts {
    /// The running connector of `network`; without one the job waits.
    pub fn connector(&self, network: Network) -> Result<std::sync::Arc<dyn Connector>, Failure> {
        self.connectors
            .get(network)
            .cloned()
            .ok_or_else(|| Failure::retry(format!("no {network} connector is running on this node")))
    }

    /// Queues `report` for the job keyed `job_key`, in the job's conversation.
    pub async fn queue_report(
        &self,
        job_key: &str,
        conversation: &str,
        report: &Report,
    ) -> Result<(), String> {
        let now = now_ms();
        let job =
            report_job(job_key, conversation, report, now, self.report_ttl).map_err(|e| e.to_string())?;
        self.queue.enqueue(&job, now).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
