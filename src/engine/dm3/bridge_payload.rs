//! Bridge payloads in the engine: network content an SDK-aware DM3 client prepared, and the
//! original network content the bridge hands to DM3 readers (`docs/bridge-payload.md`).
//!
//! The format, the size limits and the allow-lists are the SDK's (`dm3::bridge_payload`); this
//! module only decides what they mean for one message:
//! - DM3 → network ([`payload_for`]): the message's payload for the recipient's network, read
//!   with `find` and checked with `validate`. A valid one becomes [`NativeContent`] that the
//!   converter sends instead of the rendered text. One that is unreadable, ambiguous (two for
//!   the network) or refused by the allow-list is *not* trimmed to what would pass (the doc's
//!   "refuse, don't strip"): the text is rendered instead and the reason goes to the sender.
//!   Payload attachments never reach the network as files ([`without_payloads`]): they are
//!   instructions to bridges, for this network or another.
//! - network → DM3 ([`original_content_attachment`]): the event's content as received
//!   ([`InboundEvent::original`], filled by the connector) as a payload attachment beside the
//!   plain text, not held to the allow-list. If it would exceed the payload size limit it is
//!   left out and the text still goes: the attachment is a nicety, the message is not.

use ::dm3::bridge_payload::{self, BridgePayload, MatrixEvent, TelegramCall};
use ::dm3::message::{Attachment as Dm3Attachment, Message, MessageType};
use dm3_bridge_connector::{EventKind, InboundEvent, NativeContent};

use crate::identities::network::Network;

/// What a DM3 message's bridge payload means for the network it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadUse {
    /// No payload for this network: the text is rendered.
    Absent,
    /// A payload the allow-list accepts: sent verbatim instead of the text.
    Forward(NativeContent),
    /// A payload that cannot be used, and why (for the sender): the text is rendered instead.
    Refused(String),
}

/// The bridge payload of `message` for `network` (docs/bridge-payload.md §5, steps 1–4).
/// Only NEW, REPLY and EDIT use one; other types say everything themselves.
pub fn payload_for(message: &Message, kind: MessageType, network: Network) -> PayloadUse {
    if !matches!(kind, MessageType::New | MessageType::Reply | MessageType::Edit) {
        return PayloadUse::Absent;
    }
    let payload = match bridge_payload::find(message, network) {
        Ok(Some(payload)) => payload,
        Ok(None) => return PayloadUse::Absent,
        Err(error) => return PayloadUse::Refused(error.to_string()),
    };
    if let Err(rejection) = bridge_payload::validate(&payload) {
        return PayloadUse::Refused(rejection.to_string());
    }
    PayloadUse::Forward(match payload {
        BridgePayload::Matrix(event) => NativeContent::new(event.event_type, event.content),
        BridgePayload::Telegram(call) => NativeContent::new(call.method, call.parameters),
    })
}

/// `attachments` without the bridge payloads (for any network), which are never sent as files.
pub fn without_payloads(attachments: &[Dm3Attachment]) -> Vec<Dm3Attachment> {
    attachments.iter().filter(|a| !bridge_payload::is_bridge_payload(a.data())).cloned().collect()
}

/// The original content of `event`, received on `network`, as a bridge payload attachment for
/// the DM3 message built from it (§8): for messages and edits whose connector kept the content,
/// and only if it fits the payload size limit.
pub fn original_content_attachment(event: &InboundEvent, network: Network) -> Option<Dm3Attachment> {
    if !matches!(event.kind, EventKind::Message(_) | EventKind::Edit(_)) {
        return None;
    }
    let original = event.original.as_ref()?;
    let payload = match network {
        Network::Matrix => BridgePayload::Matrix(MatrixEvent {
            event_type: original.kind.clone(),
            content: original.body.clone(),
            encrypted: false,
        }),
        Network::Telegram => BridgePayload::Telegram(TelegramCall {
            method: original.kind.clone(),
            parameters: original.body.clone(),
        }),
    };
    match bridge_payload::attachment(&payload) {
        Ok(attachment) => Some(attachment),
        Err(error) => {
            // Skipped, not failed: the plain text carries the message (docs/bridge-payload.md §8).
            tracing::debug!(%error, event = %event.network_event_id, "original content not attached");
            None
        }
    }
}
