//! The hook for bridge payloads: network content that an SDK-aware DM3 client prepared.
//!
//! A DM3 client that knows the bridge can attach the message already encoded for the target
//! network (and encrypted where the network can), which the bridge forwards verbatim instead of
//! rendering the text (DESIGN.md, bridge mode). In the other direction the bridge keeps the
//! original network content as such an attachment. The format is specified separately
//! (`docs/bridge-payload.md`, `dm3::bridge_payload` in the SDK) and does not exist yet, so this
//! module holds only the two seams, and neither pretends to understand a payload:
//! - [`ForwardedPayload`] has no variant, so [`find_forwarded_payload`] cannot return one and
//!   every converter branch that would forward it is statically unreachable until the format
//!   lands;
//! - [`original_content_attachment`] adds nothing to outgoing messages yet.
//!
//! To wire the format in: give [`ForwardedPayload`] its variant(s) (what the connector needs to
//! send it), decode in [`find_forwarded_payload`] (return `None` for no or an invalid payload:
//! the text is rendered instead), handle it in `convert::to_network`, and encode in
//! [`original_content_attachment`].

use ::dm3::message::Attachment as Dm3Attachment;
use dm3_bridge_connector::InboundEvent;

/// Network content forwarded verbatim from a bridge payload attachment. Uninhabited until the
/// bridge payload format exists (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardedPayload {}

/// The bridge payload among a DM3 message's attachments, if one is there and valid, and the
/// index of the attachment that carried it (which is then not converted as a file).
pub fn find_forwarded_payload(_attachments: &[Dm3Attachment]) -> Option<(usize, ForwardedPayload)> {
    None
}

/// The original network content of `event` as a bridge payload attachment for the DM3 message
/// built from it; `None` until the format exists.
pub fn original_content_attachment(_event: &InboundEvent) -> Option<Dm3Attachment> {
    None
}
