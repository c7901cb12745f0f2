//! A network user's end-to-end encrypted message, opened in its outbox job (docs/engine.md,
//! "Encrypted rooms: plan").
//!
//! The connector stored the event as it came and acknowledged it once durable; the key that
//! opens it travels on its own path and may come after it. So the job asks the connector to
//! open it ([`DecryptionHandling`]), and:
//! - opened, it is handled exactly as the same event in the clear ([`OutboxHandler::opened`]);
//! - its key missing, the job is retried with the worker's backoff, holding the messages after
//!   it in its conversation (order is kept); after the first miss the stand-in asks the
//!   sender's devices for the key; once the connector's patience has passed since the event
//!   arrived, the job fails and its sender is told in the conversation (the failure report of
//!   every outbox job) that the message could not be decrypted, never silence;
//! - refused (a key from someone else, another room, a replayed ciphertext), it fails at once:
//!   never bridged, the reason logged and told to the sender.
//!
//! Nothing accepted is lost: a job ends only bridged, or failed and reported.

use dm3_bridge_connector::{DecryptFailure, EncryptedEvent, NetworkId, RemoteIdentity};

use super::outbox::OutboxHandler;
use super::parts::Failure;
use crate::clock::now_ms;
use crate::store::{ClaimedJob, NewMapping};
use crate::telemetry::metrics::NETWORK_DECRYPTIONS;

impl OutboxHandler {
    /// Opens `event`, the payload of `job`, and bridges what it holds.
    pub(super) async fn encrypted(
        &self,
        network_id: &NetworkId,
        event: &EncryptedEvent,
        job: &ClaimedJob,
    ) -> Result<Option<NewMapping>, Failure> {
        let connector = self.parts.connector(self.network(network_id)?)?;
        let decryption = connector
            .decryption()
            .ok_or_else(|| Failure::permanent("encrypted messages are not read by this bridge"))?;
        let portal = self
            .parts
            .store
            .portal_by_conversation(network_id, &event.conversation)
            .await
            .map_err(Failure::store)?
            .ok_or_else(|| Failure::permanent("this conversation is not bridged to a DM3 user"))?;
        let remote = RemoteIdentity::new(portal.remote_name.to_string()).map_err(Failure::permanent)?;
        let count = |outcome: &'static str| {
            metrics::counter!(NETWORK_DECRYPTIONS, "network" => network_id.to_string(), "outcome" => outcome)
                .increment(1);
        };
        match decryption.decrypt(event, &remote).await {
            Ok(Some(item)) => {
                count("decrypted");
                self.opened(network_id, item).await
            }
            Ok(None) => {
                count("decrypted");
                Ok(None)
            }
            Err(DecryptFailure::MissingKey(why)) => {
                let patience = decryption.patience();
                let waited_ms = now_ms().saturating_sub(job.created_at_ms);
                if u128::try_from(waited_ms).unwrap_or(0) >= patience.as_millis() {
                    count("gave_up");
                    tracing::warn!(job = %job.id, event = %event.network_event_id, %why, "an encrypted message's key never came");
                    return Err(Failure::permanent(format!(
                        "the bridge could not decrypt your message: its key did not reach the bridge within {} \
                         seconds (your client may not have shared it with the bridge's device); please send it again",
                        patience.as_secs()
                    )));
                }
                count("missing_key");
                if job.attempt <= 1
                    && let Err(error) = decryption.request_key(event, &remote).await
                {
                    // The key may still come on its own; the request is tried again on no schedule.
                    tracing::warn!(job = %job.id, %error, "asking for a missing room key failed");
                }
                Err(Failure::retry(why))
            }
            Err(DecryptFailure::Refused(why)) => {
                count("refused");
                tracing::warn!(job = %job.id, event = %event.network_event_id, sender = %event.sender, %why,
                    "an encrypted message was refused");
                Err(Failure::permanent(format!("the bridge refused your encrypted message: {why}")))
            }
            Err(DecryptFailure::Failed(error)) => {
                count("failed");
                Err(Failure::connector(error))
            }
        }
    }
}
