//! This node's own delivery service, called in process.
//!
//! A recipient that lists this node among its delivery services (a DM3 user with an account
//! here, or another virtual identity) would otherwise get the envelope through the node's own
//! public URL: a round trip through the network, TLS and the body limits for nothing, and a
//! dependency on the public URL being reachable from inside. [`LocalDeliveryTarget`] hands the
//! sealed envelope as it is to the relay's typed entry ([`LocalSubmit`]), which checks it
//! exactly as a remote sender's (size, hash, sender authentication, postmark, dedup) without
//! turning it into JSON-RPC text and back. [`RoutedTarget`] picks it for the node's own name and
//! HTTP for every other.

use std::sync::Arc;

use ::dm3::ens::EnsName;
use ::dm3::envelope::Envelope;
use dm3_bridge_connector::BoxFuture;

use super::target::{DeliveryTarget, ServiceEndpoint, SubmitError};
use crate::protocol::{DeliveryError, LocalSubmit};

/// The node's own delivery service, in process.
#[derive(Clone)]
pub struct LocalDeliveryTarget {
    relay: Arc<dyn LocalSubmit>,
}

impl LocalDeliveryTarget {
    /// Posts to `relay` (the node's `DeliveryProtocol`, which is a [`LocalSubmit`]).
    pub fn new(relay: Arc<dyn LocalSubmit>) -> Self {
        Self { relay }
    }
}

impl DeliveryTarget for LocalDeliveryTarget {
    fn submit<'a>(
        &'a self,
        _service: &'a ServiceEndpoint,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), SubmitError>> {
        Box::pin(async move { self.relay.submit_envelope(envelope).await.map_err(submit_error) })
    }
}

/// The relay's answer in the terms of a remote service's: refusals are permanent, an
/// unavailable store or name source may pass, and so may an internal error (most are the
/// database failing; the message's TTL bounds the retries of one that is not).
fn submit_error(error: DeliveryError) -> SubmitError {
    match error {
        DeliveryError::Unavailable => SubmitError::Unavailable {
            retry_after: None,
            reason: "this node's delivery service is unavailable".into(),
        },
        // Another sender's flood filled the receiver's queue: later, as from a remote service.
        DeliveryError::Backlogged(message) => SubmitError::RateLimited { retry_after: None, message },
        // A bridged user of this node written to faster than its rate limit: later, likewise.
        DeliveryError::SpamLimited(message) => SubmitError::RateLimited { retry_after: None, message },
        DeliveryError::Internal(detail) => {
            // The detail may name tables or files: logged here, not carried into a reason that
            // may reach the sender.
            tracing::warn!(%detail, "this node's delivery service failed on an outgoing envelope");
            SubmitError::Unavailable {
                retry_after: None,
                reason: "this node's delivery service failed internally".to_owned(),
            }
        }
        refused @ (DeliveryError::InvalidRequest(_)
        | DeliveryError::TooLarge
        | DeliveryError::Rejected { .. }
        | DeliveryError::Unauthorized(_)
        | DeliveryError::NotFound(_)) => {
            SubmitError::Refused { status: None, code: None, message: refused.to_string() }
        }
    }
}

/// Sends to this node's own delivery service in process and to every other through `remote`.
pub struct RoutedTarget<L, R> {
    own_name: EnsName,
    local: L,
    remote: R,
}

impl<L: DeliveryTarget, R: DeliveryTarget> RoutedTarget<L, R> {
    /// `own_name` is the node's delivery-service name (`node.name`).
    pub fn new(own_name: EnsName, local: L, remote: R) -> Self {
        Self { own_name, local, remote }
    }
}

impl<L: DeliveryTarget, R: DeliveryTarget> DeliveryTarget for RoutedTarget<L, R> {
    fn submit<'a>(
        &'a self,
        service: &'a ServiceEndpoint,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), SubmitError>> {
        if service.name == self.own_name {
            self.local.submit(service, envelope)
        } else {
            self.remote.submit(service, envelope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dm3::FailureKind;
    use crate::protocol::Rejection;

    #[test]
    fn the_relays_refusals_are_final_and_its_outages_are_not() {
        let refusals = [
            DeliveryError::InvalidRequest("invalid schema".into()),
            DeliveryError::TooLarge,
            DeliveryError::rejected(Rejection::UnknownAccount, "unknown account"),
            DeliveryError::rejected(Rejection::BadSignature, "bad signature"),
            DeliveryError::NotFound("no such account".into()),
        ];
        for error in refusals {
            let text = error.to_string();
            let mapped = submit_error(error);
            assert_eq!(mapped.kind(), FailureKind::Permanent, "{text}");
            assert!(mapped.to_string().contains(&text), "{mapped}");
        }
        for error in [DeliveryError::Unavailable, DeliveryError::Internal("database is locked".into())] {
            assert!(submit_error(error).kind().is_retryable());
        }
    }
}
