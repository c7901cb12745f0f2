//! The node's [`IdentityPins`]: Matrix senders' master keys pinned in the database
//! ([`crate::store::cross_signing_pins`]), so that a restart keeps them and replicas on one
//! PostgreSQL agree; an admin drops one with `DELETE /admin/matrix/cross-signing/{userId}`
//! ([`crate::admin::cross_signing`]).
//!
//! Counts each refusal under `sender_trust = "cross-signed"` by its reason
//! ([`MATRIX_SENDER_TRUST_REFUSALS`]), which the connector reports here since it keeps no
//! metrics of its own.

use dm3_bridge_connector::BoxFuture;
use dm3_bridge_matrix::crypto::{IdentityPins, OlmStoreError, TrustRefusal};
use ruma::UserId;

use super::olm_store::{SealedOlmStore, failed};
use crate::telemetry::metrics::MATRIX_SENDER_TRUST_REFUSALS;

impl IdentityPins for SealedOlmStore {
    fn pin<'a>(&'a self, user: &'a UserId, master: &'a str) -> BoxFuture<'a, Result<String, OlmStoreError>> {
        Box::pin(async move {
            let pinned = self
                .store()
                .pin_cross_signing(user.as_str(), master, crate::clock::now_ms())
                .await
                .map_err(failed)?;
            if pinned == master {
                tracing::debug!(%user, master, "a sender's master key is pinned");
            }
            Ok(pinned)
        })
    }

    fn refused(&self, reason: TrustRefusal) {
        metrics::counter!(MATRIX_SENDER_TRUST_REFUSALS, "reason" => reason.as_str()).increment(1);
    }
}
