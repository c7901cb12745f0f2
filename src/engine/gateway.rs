//! Gateway mode, network → DM3 (docs/gateway.md section 5): an envelope a network user's own
//! client sealed, forwarded as it is to the DM3 recipient's delivery service.
//!
//! It arrives as an outbox job like a message ([`Inbound::Sealed`]), so it is durable, once per
//! network event, in the conversation's order, retried with backoff and, when it fails for
//! good, reported in the conversation ([`super::outbox`]'s failure report). The checks, in order,
//! each refusal named for the sender:
//! 1. the conversation is a portal whose network user sent it (another member is ignored, as
//!    for messages), live, and that user's identity is **self-custody** and enabled;
//! 2. the gateway document is read with the SDK: a Matrix content as the homeserver sent it; a
//!    Telegram file only if its declared size is within the 1 MiB bound, fetched bounded by it;
//! 3. `metadata.signature` verifies with the signing key of *that identity's* profile, so
//!    nobody sends as another identity through their account;
//! 4. the document's `deliveryService` is one of the recipient's (the portal's DM3 user, as the
//!    node resolves them); when it is this node, the relay's submit opens `deliveryInformation`
//!    and authenticates `from` against its profile as for any envelope.
//!
//! Then the envelope is posted over the DM3 transport through the outbox's delivery target
//! (this node in process, another over HTTP with its retries). The node never opens the
//! message. The DM3 message's hash is the one the envelope carries, recorded in the message
//! map, so a DM3 reply to it finds the network message.

use ::dm3::envelope::Envelope;
use ::dm3::gateway_envelope::{GatewayEnvelope, MatrixGatewayContent, TelegramGatewayDocument, telegram};
use dm3_bridge_connector::{Carried, Connector, SealedEnvelope};
use serde_json::Value;

use super::dm3::deliver::deliver_sealed;
use super::parts::{EngineParts, Failure};
use super::worker::FailureCause;
use crate::identities::network::Network;
use crate::store::NewMapping;
use crate::telemetry::metrics::{GATEWAY_ENVELOPES, GATEWAY_REFUSED};

/// The bound on a gateway document's file (docs/gateway.md 1.3), as the connectors count it.
const MAX_FILE_BYTES: u64 = telegram::MAX_FILE_BYTES as u64;

impl EngineParts {
    /// Checks `sealed` and posts its envelope; what it became, for the message map, or nothing
    /// when it was not the portal's user's to send.
    pub async fn forward_sealed(
        &self,
        connector: &dyn Connector,
        network: Network,
        sealed: &SealedEnvelope,
    ) -> Result<Option<NewMapping>, Failure> {
        let network_id = connector.network();
        let portal = self
            .store
            .portal_by_conversation(network_id, &sealed.conversation)
            .await
            .map_err(Failure::store)?
            .ok_or_else(|| Failure::permanent("this conversation is not bridged to a DM3 user"))?;
        let identity = self.vault.recent(&portal.local_name).await.map_err(Failure::identity)?;
        if identity.user.user_id() != sealed.sender.as_str() {
            tracing::debug!(network = %network_id, "ignoring an envelope from another member of a portal");
            return Ok(None);
        }
        let refused = |reason: &'static str, text: String| {
            metrics::counter!(GATEWAY_REFUSED, "network" => network.as_str(), "reason" => reason)
                .increment(1);
            Failure::permanent(text)
        };
        if let Some(reason) = portal.state.pause_reason() {
            return Err(Failure::permanent(format!("messages here are paused: {reason}"))
                .because(FailureCause::PortalSuspended));
        }
        if identity.disabled_at_ms.is_some() {
            return Err(Failure::permanent(format!("{} is disabled on this bridge", identity.name))
                .because(FailureCause::Identity));
        }
        if !identity.custody.is_self_custody() {
            return Err(refused(
                "custodial",
                format!(
                    "{} is custodial: the bridge holds its keys and seals your messages itself, so send them \
                     in the clear. A sealed envelope is for a name you claimed for your own wallet (claim).",
                    identity.name
                ),
            ));
        }
        let document =
            self.gateway_document(connector, &sealed.carried).await.map_err(|failure| match failure {
                Gateway::Refused(text) => refused("document", text),
                Gateway::Failed(failure) => failure,
            })?;
        let envelope = document.envelope();
        let key = identity.profile.profile().verify_key().map_err(|e| {
            Failure::permanent(format!("the profile of {} has no usable signing key: {e}", identity.name))
        })?;
        if let Err(e) = envelope.verify_metadata(&key) {
            return Err(refused(
                "signature",
                format!(
                    "the envelope is not signed with the key of {}'s profile ({e}): nobody sends as another \
                     DM3 user through this bridge",
                    identity.name
                ),
            ));
        }
        let hash = message_hash(envelope)
            .ok_or_else(|| refused("document", "the envelope carries no message hash".to_owned()))?;
        let report = deliver_sealed(
            envelope,
            hash,
            &portal.remote_name,
            document.delivery_service(),
            &self.directory,
            self.target.as_ref(),
        )
        .await
        .map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        report.outcome().map_err(|e| Failure::from_kind(e.kind(), e.to_string()))?;
        metrics::counter!(GATEWAY_ENVELOPES, "direction" => "network_to_dm3", "network" => network.as_str())
            .increment(1);
        Ok(Some(NewMapping {
            network: network_id.clone(),
            dm3_hash: hash,
            network_message_id: sealed.network_event_id.clone(),
            conversation: sealed.conversation.clone(),
        }))
    }

    /// The gateway document `carried` holds, read with the SDK; a file is fetched only within
    /// its bound.
    async fn gateway_document(
        &self,
        connector: &dyn Connector,
        carried: &Carried,
    ) -> Result<GatewayEnvelope, Gateway> {
        let unreadable = |e: ::dm3::gateway_envelope::GatewayError| {
            Gateway::Refused(format!("the gateway document is not readable: {e}"))
        };
        match carried {
            Carried::Content(content) => MatrixGatewayContent::decode(&Value::Object(content.clone()))
                .map(MatrixGatewayContent::into_envelope)
                .map_err(unreadable),
            Carried::File(file) => {
                if file.size() > MAX_FILE_BYTES {
                    return Err(Gateway::Refused(format!(
                        "the gateway document is {} bytes, more than the {MAX_FILE_BYTES} a gateway document may have",
                        file.size()
                    )));
                }
                let url = match file.source() {
                    dm3_bridge_connector::AttachmentSource::Url(url) => url,
                    dm3_bridge_connector::AttachmentSource::Inline(bytes) => {
                        return TelegramGatewayDocument::decode(bytes)
                            .map(TelegramGatewayDocument::into_envelope)
                            .map_err(unreadable);
                    }
                };
                let media = connector.media().ok_or_else(|| {
                    Gateway::Failed(Failure::permanent("this network's files cannot be fetched"))
                })?;
                let bytes = media
                    .download(url, MAX_FILE_BYTES)
                    .await
                    .map_err(|e| Gateway::Failed(Failure::connector(e)))?;
                TelegramGatewayDocument::decode(&bytes)
                    .map(TelegramGatewayDocument::into_envelope)
                    .map_err(unreadable)
            }
        }
    }
}

/// Why no gateway document was read.
enum Gateway {
    /// The sender's document is at fault: refused with this reason.
    Refused(String),
    /// Fetching it failed (the network), as any send may.
    Failed(Failure),
}

/// The hash the envelope's receiver knows the message by (either format, P1).
fn message_hash(envelope: &Envelope) -> Option<::dm3::message::MessageHash> {
    envelope.message_hash().or_else(|| envelope.encrypted_message_hash())
}
