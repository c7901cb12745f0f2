//! Native content (a DM3 client's bridge payload): a Bot API call sent with the client's own
//! parameters.
//!
//! The engine has checked the call against the Telegram allow-list (`docs/bridge-payload.md`
//! §4: five send methods, no chat, no reply, no keyboard, no upload). The connector adds what
//! only the bridge knows (§5):
//! - `chat_id` of the conversation's bot chat, and `reply_parameters` for a reply;
//! - the **sender's name**, framed by the operator's template as on every relayed message: one
//!   bot chat carries several DM3 contacts, and a payload's text must not be able to pass for
//!   another contact's. The name goes into `text` or `caption` in the payload's own markup
//!   (HTML, MarkdownV2, or plain text with a bold entity, shifting the payload's entities);
//! - an edit becomes `editMessageText` (text, parse mode, entities, link preview of a
//!   `sendMessage`) or `editMessageCaption` (caption, parse mode, caption entities of a media
//!   call) on the replaced message.
//!
//! The call is posted as JSON through the bot's HTTP client (teloxide has typed requests only)
//! and its answer read as teloxide reads it, so errors, 429s and the rate limiter work as for
//! every other send. A repeated send is answered from the `sent_cache`, like `send_message`.

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, NativeHandling, NativeMessage, NetworkMessageId, Outbound,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use teloxide_core::types::Seconds;
use teloxide_core::{ApiError, RequestError};

use crate::connector::TelegramConnector;
use crate::format::{FramePart, SenderFormat};
use crate::html::escape;
use crate::ids;
use crate::outbound::{reply_target, target};

/// The methods a payload may call (the allow-list's; checked again so that the bot never makes
/// a call it was not meant to).
const METHODS: [&str; 5] = ["sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio"];

/// Longest answer read from Telegram (a message object is a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The call to make for `native` in `chat`, sent by `sender`: method and parameters.
pub fn call(
    native: &NativeMessage,
    chat: i64,
    sender: &str,
    format: &SenderFormat,
    replaced: Option<i32>,
) -> Result<(&'static str, Map<String, Value>), ConnectorError> {
    let method = METHODS.iter().find(|m| **m == native.content.kind).ok_or_else(|| {
        ConnectorError::Permanent(format!(
            "`{}` calls are not sent from bridge payloads; only {}",
            native.content.kind,
            METHODS.join(", ")
        ))
    })?;
    let is_text = *method == "sendMessage";
    let mut parameters = native.content.body.clone();
    attribute(&mut parameters, is_text, sender, format)?;
    let mut parameters = match replaced {
        None => parameters,
        Some(message) => {
            let kept: &[&str] = if is_text {
                &["text", "parse_mode", "entities", "link_preview_options"]
            } else {
                &["caption", "parse_mode", "caption_entities"]
            };
            let mut edit: Map<String, Value> =
                parameters.into_iter().filter(|(key, _)| kept.contains(&key.as_str())).collect();
            edit.insert("message_id".to_owned(), message.into());
            edit
        }
    };
    parameters.insert("chat_id".to_owned(), chat.into());
    let method = match (replaced, is_text) {
        (None, _) => *method,
        (Some(_), true) => "editMessageText",
        (Some(_), false) => "editMessageCaption",
    };
    Ok((method, parameters))
}

/// Puts the sender's name around `text` (or `caption`), in the payload's markup.
fn attribute(
    parameters: &mut Map<String, Value>,
    is_text: bool,
    sender: &str,
    format: &SenderFormat,
) -> Result<(), ConnectorError> {
    let (field, entities_field) =
        if is_text { ("text", "entities") } else { ("caption", "caption_entities") };
    let body = parameters.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let parse_mode = parameters.get("parse_mode").and_then(Value::as_str).map(str::to_owned);
    let (before, after) = if body.is_empty() {
        // A file without a caption: the caption is the sender's name alone.
        parameters.remove("parse_mode");
        (vec![FramePart::Sender], vec![])
    } else {
        format.frame()
    };
    let framed = match parse_mode.as_deref().filter(|_| !body.is_empty()) {
        Some("HTML") => {
            let html = |parts: &[FramePart]| markup(parts, sender, escape, "<b>", "</b>");
            format!("{}{body}{}", html(&before), html(&after))
        }
        Some("MarkdownV2") => {
            let markdown = |parts: &[FramePart]| markup(parts, sender, escape_markdown_v2, "*", "*");
            format!("{}{body}{}", markdown(&before), markdown(&after))
        }
        Some(other) => {
            return Err(ConnectorError::Permanent(format!(
                "parse mode `{other}` is not sent from bridge payloads"
            )));
        }
        None => {
            let (head, mut entities) = plain(&before, sender, 0);
            let shift = utf16_len(&head);
            let given = match parameters.remove(entities_field) {
                Some(Value::Array(given)) => given,
                _ => Vec::new(),
            };
            for mut entity in given {
                if let Some(offset) = entity.get("offset").and_then(Value::as_u64) {
                    entity["offset"] = (offset + shift as u64).into();
                }
                entities.push(entity);
            }
            let (tail, tail_entities) = plain(&after, sender, shift + utf16_len(&body));
            entities.extend(tail_entities);
            parameters.insert(entities_field.to_owned(), Value::Array(entities));
            format!("{head}{body}{tail}")
        }
    };
    parameters.insert(field.to_owned(), framed.into());
    Ok(())
}

/// The parts in a markup: text escaped, the sender escaped and wrapped in `open`/`close`.
fn markup(parts: &[FramePart], sender: &str, escape: fn(&str) -> String, open: &str, close: &str) -> String {
    parts
        .iter()
        .map(|part| match part {
            FramePart::Text(text) => escape(text),
            FramePart::Sender => format!("{open}{}{close}", escape(sender)),
        })
        .collect()
}

/// The parts as plain text starting at UTF-16 offset `start`, with a bold entity for the sender.
fn plain(parts: &[FramePart], sender: &str, start: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut entities = Vec::new();
    for part in parts {
        match part {
            FramePart::Text(piece) => text.push_str(piece),
            FramePart::Sender => {
                let offset = start + utf16_len(&text);
                entities.push(json!({"type": "bold", "offset": offset, "length": utf16_len(sender)}));
                text.push_str(sender);
            }
        }
    }
    (text, entities)
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// MarkdownV2 outside entities: every special character escaped with `\`.
fn escape_markdown_v2(text: &str) -> String {
    const SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Bot API answer.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: Option<AnswerParameters>,
}

#[derive(Deserialize)]
struct AnswerParameters {
    retry_after: Option<u32>,
}

impl TelegramConnector {
    /// Posts `method` with `parameters`; the `result` of the answer, or the error as teloxide
    /// would have classified it.
    async fn post(&self, method: &str, parameters: &Map<String, Value>) -> Result<Value, RequestError> {
        let mut url = self.bot.api_url();
        url.path_segments_mut()
            .map_err(|()| RequestError::Api(ApiError::Unknown("the Bot API URL cannot take a path".into())))?
            .push(&format!("bot{}", self.bot.token()))
            .push(method);
        let mut response = self
            .bot
            .client()
            .post(url)
            .json(parameters)
            .send()
            .await
            .map_err(|e| RequestError::Network(std::sync::Arc::new(e.without_url())))?;
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| RequestError::Network(std::sync::Arc::new(e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(RequestError::Api(ApiError::Unknown(format!(
                    "an answer larger than {MAX_ANSWER_BYTES} bytes"
                ))));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| RequestError::InvalidJson {
            source: std::sync::Arc::new(e),
            raw: String::new().into_boxed_str(),
        })?;
        if answer.ok {
            return Ok(answer.result);
        }
        if let Some(seconds) = answer.parameters.and_then(|p| p.retry_after) {
            return Err(RequestError::RetryAfter(Seconds::from_seconds(seconds)));
        }
        let api = serde_json::from_value::<ApiError>(Value::String(answer.description.clone()))
            .unwrap_or(ApiError::Unknown(answer.description));
        Err(RequestError::Api(api))
    }
}

impl NativeHandling for TelegramConnector {
    fn send_native<'a>(
        &'a self,
        native: &'a Outbound<NativeMessage>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (chat, _) = target(&native.conversation)?;
            if let Some(id) = self.sent.get(&native.idempotency_key) {
                tracing::debug!(key = %native.idempotency_key, "sent before by this process; not sent again");
                return Ok(id);
            }
            let replaced = match &native.payload.replaces {
                Some(target) => {
                    let (message, _) = ids::parse_message_id(target)
                        .map_err(|e| ConnectorError::Permanent(e.to_string()))?;
                    if message.chat != chat {
                        return Err(ConnectorError::Permanent(format!(
                            "message {target} is not in this conversation's chat"
                        )));
                    }
                    Some(message)
                }
                None => None,
            };
            let (method, mut parameters) = call(
                &native.payload,
                chat,
                native.sender.as_str(),
                &self.sender_format,
                replaced.map(|m| m.message),
            )?;
            if replaced.is_none()
                && let Some(reply) = native.payload.reply_to.as_ref().and_then(|t| reply_target(chat, t))
            {
                parameters.insert(
                    "reply_parameters".to_owned(),
                    json!({"message_id": reply, "allow_sending_without_reply": true}),
                );
            }
            let result = {
                // The chat's next send waits for this call, not for the bookkeeping after it.
                let _turn = self.sends.turn(chat).await?;
                self.post(method, &parameters).await
            };
            let id = match (replaced, result) {
                (Some(message), Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified))) => {
                    ids::derived_id(message, &format!("edit-{}", native.idempotency_key))
                        .map_err(|e| ConnectorError::Permanent(e.to_string()))?
                }
                (None, Ok(message)) => {
                    let sent = message.get("message_id").and_then(Value::as_i64).ok_or_else(|| {
                        ConnectorError::Transient("Telegram's answer names no message_id".to_owned())
                    })?;
                    let sent = i32::try_from(sent).map_err(|_| {
                        ConnectorError::Transient(format!("Telegram answered message id {sent}"))
                    })?;
                    ids::message_id(chat, sent)
                }
                (_, Err(error)) => return Err(self.failed(chat, error)),
            };
            self.sent.insert(&native.idempotency_key, &id);
            if replaced.is_none() {
                self.remember_route(&id, &native.conversation).await;
            }
            Ok(id)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use dm3_bridge_connector::NativeContent;

    use super::*;

    fn native(method: &str, parameters: Value) -> NativeMessage {
        NativeMessage::new(NativeContent::new(method, parameters.as_object().unwrap().clone()))
    }

    #[test]
    fn plain_text_gets_the_sender_as_a_bold_entity_and_shifted_entities() {
        let message = native(
            "sendMessage",
            json!({"text": "héllo 👋 you", "entities": [{"type": "italic", "offset": 9, "length": 3}], "disable_notification": true}),
        );
        let (method, parameters) = call(&message, 42, "alice.eth", &SenderFormat::default(), None).unwrap();
        assert_eq!(method, "sendMessage");
        assert_eq!(
            Value::Object(parameters),
            json!({
                "chat_id": 42,
                "text": "alice.eth: héllo 👋 you",
                "entities": [
                    {"type": "bold", "offset": 0, "length": 9},
                    {"type": "italic", "offset": 20, "length": 3},
                ],
                "disable_notification": true,
            })
        );
    }

    #[test]
    fn markup_modes_frame_the_sender_in_their_own_syntax() {
        let html = native("sendMessage", json!({"text": "<b>hi</b>", "parse_mode": "HTML"}));
        let (_, p) = call(&html, 1, "a<b.eth", &SenderFormat::default(), None).unwrap();
        assert_eq!(p["text"], "<b>a&lt;b.eth</b>: <b>hi</b>");
        let markdown = native("sendMessage", json!({"text": "*hi*", "parse_mode": "MarkdownV2"}));
        let (_, p) = call(&markdown, 1, "alice.eth", &SenderFormat::new("{body} ({sender})"), None).unwrap();
        assert_eq!(p["text"], "*hi* \\(*alice\\.eth*\\)");
    }

    #[test]
    fn a_file_without_caption_is_captioned_with_the_sender_and_edits_keep_only_their_fields() {
        let photo = native("sendPhoto", json!({"photo": "https://example.org/a.jpg", "has_spoiler": true}));
        let (method, p) = call(&photo, 7, "alice.eth", &SenderFormat::default(), None).unwrap();
        assert_eq!(method, "sendPhoto");
        assert_eq!(p["caption"], "alice.eth");
        assert_eq!(p["caption_entities"], json!([{"type": "bold", "offset": 0, "length": 9}]));

        let captioned = native("sendPhoto", json!({"photo": "AgAD", "caption": "new", "parse_mode": "HTML"}));
        let (method, p) = call(&captioned, 7, "alice.eth", &SenderFormat::default(), Some(99)).unwrap();
        assert_eq!(method, "editMessageCaption");
        assert_eq!(
            Value::Object(p),
            json!({"chat_id": 7, "message_id": 99, "caption": "<b>alice.eth</b>: new", "parse_mode": "HTML"})
        );
        let text = native("sendMessage", json!({"text": "fixed", "protect_content": true}));
        let (method, p) = call(&text, 7, "alice.eth", &SenderFormat::default(), Some(99)).unwrap();
        assert_eq!(method, "editMessageText");
        assert!(p.get("protect_content").is_none(), "{p:?}");
        assert_eq!(p["message_id"], 99);
    }

    #[test]
    fn other_methods_are_refused() {
        let forward = native("forwardMessage", json!({"from_chat_id": 1, "message_id": 2}));
        assert!(matches!(
            call(&forward, 1, "a", &SenderFormat::default(), None),
            Err(ConnectorError::Permanent(r)) if r.contains("forwardMessage")
        ));
    }
}
