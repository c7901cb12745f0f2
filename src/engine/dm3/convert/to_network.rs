//! Inbox step 2: an opened DM3 message as the events a connector sends.
//!
//! One DM3 message may become several network messages: DM3 carries text and any number of
//! files in one message, a neutral `Message` one content. The text goes with the first file as
//! its caption (or alone when there is none), every further file is a message of its own, and
//! links that are not inline files are listed under the text. The *first* event is the DM3
//! message's counterpart: its network id goes into the message map, and a reply goes on it.
//! The handler sends the events in order, each with its own idempotency key
//! ([`ToNetwork::idempotency_suffix`]).
//!
//! Text is rendered (Markdown → sanitized HTML, [`crate::engine::dm3::markdown`]) with the
//! text itself as the plain body.
//!
//! A NEW, REPLY or EDIT that carries a valid bridge payload for the recipient's network is not
//! rendered: the payload is the whole message, one [`NativeMessage`] whose reply or replacement
//! relation the bridge sets from `referenceMessageHash` (docs/bridge-payload.md §5). A payload
//! that cannot be used is never trimmed: the text is rendered as if there were none, and
//! [`ToNetwork::Rendered`] carries the reason so the sender is told; with no text to fall back
//! on, the message fails with that reason.

use ::dm3::message::MessageType;
use dm3_bridge_connector::{
    Content, ConversationId, Delete, Edit, EventKind, Message, NativeContent, NativeMessage,
    NetworkMessageId, Reaction, ReactionKey, ReadReceipt, Text,
};

use super::ConvertError;
use crate::engine::dm3::attachments::{AttachmentLimits, Incoming, from_dm3};
use crate::engine::dm3::bridge_payload::{PayloadUse, payload_for, without_payloads};
use crate::engine::dm3::markdown::render_text;
use crate::engine::dm3::open::OpenedMessage;
use crate::engine::dm3::references::{MessageReferences, network_target};
use crate::identities::network::Network;

/// What to send for one DM3 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNetwork {
    /// These events, in order; the first is the DM3 message's counterpart.
    Send(Vec<EventKind>),
    /// These events, rendered from the text because the message's bridge payload could not be
    /// used; `payload_refused` is why, for a report to the sender.
    Rendered { events: Vec<EventKind>, payload_refused: String },
    /// Nothing: the message has no network counterpart (the reason is for the log).
    Skip(&'static str),
}

impl ToNetwork {
    /// The suffix of the idempotency key of the `index`-th event: none for the first (its key
    /// is the message hash alone), `.2`, `.3`, … for the others, so each send is deduplicated
    /// on its own.
    pub fn idempotency_suffix(index: usize) -> String {
        if index == 0 { String::new() } else { format!(".{}", index + 1) }
    }
}

/// `opened` as network events for `conversation` (the portal it is delivered to) on `network`.
pub async fn to_network(
    opened: &OpenedMessage,
    network: Network,
    conversation: &ConversationId,
    references: &dyn MessageReferences,
    limits: &AttachmentLimits,
) -> Result<ToNetwork, ConvertError> {
    let kind = opened.kind.as_str();
    let target = async |required: bool| -> Result<Option<NetworkMessageId>, ConvertError> {
        match &opened.reference {
            Some(hash) => Ok(network_target(references, conversation, hash).await?),
            None if required => Err(ConvertError::MissingReference { kind }),
            None => Ok(None),
        }
    };
    let unknown = || ConvertError::UnknownDm3Target {
        kind,
        reference: opened.reference.map(|h| h.to_string()).unwrap_or_default(),
    };
    let refused = match payload_for(&opened.message, opened.kind, network) {
        PayloadUse::Forward(content) => {
            let native = match opened.kind {
                MessageType::Edit => native(content, None, Some(target(true).await?.ok_or_else(unknown)?)),
                // A reply to something this conversation never had is still a whole message.
                MessageType::Reply => native(content, target(false).await?, None),
                _ => native(content, None, None),
            };
            return Ok(ToNetwork::Send(vec![native]));
        }
        PayloadUse::Refused(reason) => Some(reason),
        PayloadUse::Absent => None,
    };
    let no_text = || match &refused {
        Some(reason) => ConvertError::PayloadRefused(reason.clone()),
        None => ConvertError::Empty,
    };
    let events = match opened.kind {
        MessageType::New => messages(opened, None, limits).map_err(|e| or_refused(e, no_text))?,
        // A reply to something this conversation never had is still a whole message.
        MessageType::Reply => {
            messages(opened, target(false).await?, limits).map_err(|e| or_refused(e, no_text))?
        }
        MessageType::Edit => {
            let target = target(true).await?.ok_or_else(unknown)?;
            let source = opened.text.as_deref().unwrap_or_default();
            if refused.is_some() && source.trim().is_empty() {
                return Err(no_text());
            }
            vec![EventKind::Edit(Edit { target, text: render_text(source) })]
        }
        MessageType::Reaction => {
            let emoji = opened.text.as_deref().unwrap_or_default();
            let key = ReactionKey::new(emoji).map_err(|_| ConvertError::BadReaction(emoji.to_owned()))?;
            let target = target(true).await?.ok_or_else(unknown)?;
            vec![EventKind::Reaction(Reaction { target, key })]
        }
        MessageType::DeleteRequest => match target(true).await? {
            Some(target) => vec![EventKind::Delete(Delete { target, reason: None })],
            None => return Ok(ToNetwork::Skip("the deleted message was never bridged")),
        },
        MessageType::ReadOpened => match target(true).await? {
            Some(up_to) => vec![EventKind::ReadReceipt(ReadReceipt { up_to })],
            None => return Ok(ToNetwork::Skip("the read message was never bridged")),
        },
        MessageType::ReadReceived => {
            return Ok(ToNetwork::Skip("delivery receipts have no network counterpart"));
        }
        MessageType::ResendRequest => return Ok(ToNetwork::Skip("resend requests are not bridged")),
    };
    Ok(match refused {
        Some(payload_refused) => ToNetwork::Rendered { events, payload_refused },
        None => ToNetwork::Send(events),
    })
}

fn native(
    content: NativeContent,
    reply_to: Option<NetworkMessageId>,
    replaces: Option<NetworkMessageId>,
) -> EventKind {
    EventKind::Native(Box::new(NativeMessage { content, reply_to, replaces }))
}

/// An empty message whose payload was refused fails with the payload's reason, which says
/// more than "no text".
fn or_refused(error: ConvertError, no_text: impl Fn() -> ConvertError) -> ConvertError {
    if error == ConvertError::Empty { no_text() } else { error }
}

/// NEW and REPLY: the text and files as messages, the first replying to `reply_to`.
fn messages(
    opened: &OpenedMessage,
    reply_to: Option<NetworkMessageId>,
    limits: &AttachmentLimits,
) -> Result<Vec<EventKind>, ConvertError> {
    let attachments = without_payloads(&opened.attachments);
    let mut files = Vec::new();
    let mut links = Vec::new();
    for incoming in from_dm3(&attachments, limits)? {
        match incoming {
            Incoming::File(file) => files.push(file),
            Incoming::Link { name, uri } => links.push(match name {
                Some(name) => format!("{name}: {uri}"),
                None => uri,
            }),
        }
    }
    let text = caption(opened.text.as_deref(), &links);
    let mut contents: Vec<Content> = Vec::new();
    let mut files = files.into_iter();
    match (files.next(), text) {
        (Some(first), caption) => contents.push(Content::Attachment { attachment: first, caption }),
        (None, Some(text)) => contents.push(Content::Text(text)),
        (None, None) => return Err(ConvertError::Empty),
    }
    contents.extend(files.map(|attachment| Content::Attachment { attachment, caption: None }));
    let mut events: Vec<EventKind> =
        contents.into_iter().map(|c| EventKind::Message(Message::new(c))).collect();
    if let (Some(target), Some(EventKind::Message(first))) = (reply_to, events.first_mut()) {
        first.reply_to = Some(target);
    }
    Ok(events)
}

/// The message text with the links listed under it; `None` when both are empty.
fn caption(text: Option<&str>, links: &[String]) -> Option<Text> {
    let mut lines: Vec<&str> = Vec::new();
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        lines.push(text);
    }
    lines.extend(links.iter().map(String::as_str));
    if lines.is_empty() {
        return None;
    }
    // Two line breaks: the links are paragraphs of their own in the rendering.
    Some(render_text(&lines.join("\n\n")))
}
