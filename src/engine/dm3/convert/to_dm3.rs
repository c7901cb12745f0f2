//! Outbox step 3: a network event as a DM3 message signed by the sender's virtual identity.
//!
//! The message is built with the SDK's builders, so it hashes exactly as the reference
//! builders' output would (docs/protocol.md §5.2: absent and empty fields are different bytes), and
//! signed with the identity's Ed25519 key (§5.3).
//!
//! **Deterministic on purpose.** The timestamp is the network's timestamp of the event, not
//! the clock, and Ed25519 signatures are deterministic: converting the same event again (a
//! retried outbox job) gives the same message, hence the same message hash, so the recipient's
//! delivery services and clients deduplicate a re-post instead of showing it twice (§5.2:
//! clients dedup by `messageHash`). The message map must not change under a retried job for
//! this to hold, which per-conversation ordering gives.

use ::dm3::crypto::signing::SigningKeyPair;
use ::dm3::ens::EnsName;
use ::dm3::message::{Attachment as Dm3Attachment, Message, MessageBuilder, MessageHash};
use dm3_bridge_connector::{Content, EventKind, InboundEvent, NetworkMessageId};

use super::ConvertError;
use crate::engine::dm3::attachments::{AttachmentLimits, to_dm3 as attachments_to_dm3};
use crate::engine::dm3::bridge_payload::original_content_attachment;
use crate::engine::dm3::references::{MessageReferences, dm3_target};
use crate::identities::network::Network;

/// A signed DM3 message and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltMessage {
    pub message: Message,
    pub hash: MessageHash,
}

impl BuiltMessage {
    fn signed(message: Message, key: &SigningKeyPair) -> Self {
        let message = message.sign(key);
        let hash = message.hash();
        Self { message, hash }
    }
}

/// What to post for one network event.
#[derive(Debug, Clone, PartialEq)]
pub enum ToDm3 {
    Send(BuiltMessage),
    /// Nothing: the event has no DM3 counterpart (the reason is for the log).
    Skip(&'static str),
}

/// `event`, received on `network`, as a DM3 message from `from` (the sender's virtual identity,
/// whose signing key is `signing`) to `to` (the DM3 user of the portal). Messages and edits
/// carry the event's original content as a bridge payload attachment where the connector kept
/// it (docs/bridge-payload.md §8).
pub async fn to_dm3(
    event: &InboundEvent,
    network: Network,
    from: &EnsName,
    to: &EnsName,
    signing: &SigningKeyPair,
    references: &dyn MessageReferences,
    limits: &AttachmentLimits,
) -> Result<ToDm3, ConvertError> {
    let builder = MessageBuilder::new(to.as_str(), from.as_str(), event.timestamp_ms);
    let conversation = &event.conversation;
    let lookup = async |target: &NetworkMessageId| dm3_target(references, conversation, target).await;
    let unknown = |kind: &'static str, target: &NetworkMessageId| ConvertError::UnknownNetworkTarget {
        kind,
        target: target.to_string(),
    };
    let message = match &event.kind {
        EventKind::Message(message) => {
            let (text, mut attachments) = content(&message.content, limits)?;
            attachments.extend(original_content_attachment(event, network));
            let attachments = (!attachments.is_empty()).then_some(attachments);
            let replied = match &message.reply_to {
                Some(target) => lookup(target).await?,
                None => None,
            };
            match replied {
                Some(hash) => builder.reply(&text, &hash, attachments),
                // A reply to something DM3 never had is still a whole message.
                None => builder.text(&text, attachments),
            }
        }
        EventKind::Edit(edit) => {
            let original = lookup(&edit.target).await?.ok_or_else(|| unknown("edit", &edit.target))?;
            let attachments: Vec<Dm3Attachment> =
                original_content_attachment(event, network).into_iter().collect();
            builder.edit(&edit.text.body, &original, (!attachments.is_empty()).then_some(attachments))
        }
        EventKind::Reaction(reaction) => {
            let target =
                lookup(&reaction.target).await?.ok_or_else(|| unknown("reaction", &reaction.target))?;
            builder.reaction(reaction.key.as_str(), &target)
        }
        EventKind::Delete(delete) => match lookup(&delete.target).await? {
            Some(target) => builder.delete_request(&target),
            None => return Ok(ToDm3::Skip("the deleted message was never bridged")),
        },
        EventKind::ReadReceipt(receipt) => match lookup(&receipt.up_to).await? {
            Some(target) => builder.read_opened(&target),
            None => return Ok(ToDm3::Skip("the read message was never bridged")),
        },
        // Connectors report what they received in the neutral vocabulary (with the raw content
        // beside it, `InboundEvent::original`); native content only goes out.
        EventKind::Native(_) => return Ok(ToDm3::Skip("native content is outbound only")),
    };
    Ok(ToDm3::Send(BuiltMessage::signed(message, signing)))
}

/// The text and attachments of a neutral message.
fn content(
    content: &Content,
    limits: &AttachmentLimits,
) -> Result<(String, Vec<Dm3Attachment>), ConvertError> {
    match content {
        Content::Text(text) | Content::Notice(text) => {
            if text.body.is_empty() {
                return Err(ConvertError::Empty);
            }
            Ok((text.body.clone(), Vec::new()))
        }
        Content::Attachment { attachment, caption } => {
            let text = caption.as_ref().map(|c| c.body.clone()).unwrap_or_default();
            Ok((text, attachments_to_dm3(&[attachment], limits)?))
        }
    }
}

/// READ_RECEIVED from `from` to `to` for `received`: what the messenger sends when a message
/// reached the receiver's client; the engine sends it once a network accepted a DM3 message.
/// `timestamp_ms` should be fixed per received message (e.g. the time the network accepted
/// it, stored with the job) so that a retry builds the same receipt.
pub fn delivery_receipt(
    from: &EnsName,
    to: &EnsName,
    signing: &SigningKeyPair,
    received: &MessageHash,
    timestamp_ms: u64,
) -> BuiltMessage {
    let message = MessageBuilder::new(to.as_str(), from.as_str(), timestamp_ms).read_received(received);
    BuiltMessage::signed(message, signing)
}
