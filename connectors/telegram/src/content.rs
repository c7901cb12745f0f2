//! What a Telegram message says, as neutral [`Content`]: text with formatting, or a file.
//!
//! Files stay on Telegram's servers: the attachment's URL is `telegram-file:<file_id>` (never the
//! download URL, which holds the bot token and would end up in the database), and the engine
//! fetches the bytes through [`crate::TelegramConnector`]'s `MediaHandling::download` when it
//! needs them. A bot can fetch at most 20 MB, so a larger file is refused here with that reason,
//! before anything is queued. Message kinds DM3 has no form for (polls, locations, contacts,
//! dice, …) are refused the same way, by name.
//!
//! [`original_call`] keeps the message in Telegram's own terms as well: the Bot API call that
//! would reproduce it (`sendMessage` with `text` and `entities`, or the media method with the
//! `file_id`, `caption` and `caption_entities`), which the engine hands to DM3 readers as a
//! bridge payload (`docs/bridge-payload.md` §8).

use dm3_bridge_connector::{Attachment, Content, MimeType, NativeContent};
use serde_json::{Map, Value};
use teloxide_core::types::{FileMeta, Message};
use url::Url;

use crate::entities;

/// Largest file a bot can download through the public Bot API.
pub const MAX_DOWNLOAD_BYTES: u64 = 20 * 1024 * 1024;
/// Largest file a bot can upload through the public Bot API.
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
/// The URL scheme of a file on Telegram's servers, by file id.
pub const FILE_URL_SCHEME: &str = "telegram-file";

/// The content of `message`, or why it cannot be bridged (in words for its sender).
pub fn of_message(message: &Message) -> Result<Content, String> {
    if let Some(text) = message.text() {
        return Ok(Content::Text(entities::to_text(text, message.entities().unwrap_or_default())));
    }
    let file = file_of(message).ok_or_else(|| unsupported_kind(message))?;
    let caption = message
        .caption()
        .filter(|c| !c.is_empty())
        .map(|c| entities::to_text(c, message.caption_entities().unwrap_or_default()));
    let attachment = file.into_attachment()?;
    Ok(Content::Attachment { attachment, caption })
}

/// The Bot API call that would reproduce `message`, if it is text or a file.
pub fn original_call(message: &Message) -> Option<NativeContent> {
    let mut parameters = Map::new();
    let entities = |entities: Option<&[teloxide_core::types::MessageEntity]>| {
        entities.filter(|e| !e.is_empty()).and_then(|e| serde_json::to_value(e).ok())
    };
    if let Some(text) = message.text() {
        parameters.insert("text".to_owned(), text.into());
        if let Some(entities) = entities(message.entities()) {
            parameters.insert("entities".to_owned(), entities);
        }
        return Some(NativeContent::new("sendMessage", parameters));
    }
    let (method, field, file_id) = if let Some(photo) = message.photo() {
        let largest = photo.iter().max_by_key(|p| (p.width * p.height, p.file.size))?;
        ("sendPhoto", "photo", &largest.file.id.0)
    } else if let Some(d) = message.document() {
        ("sendDocument", "document", &d.file.id.0)
    } else if let Some(v) = message.video() {
        ("sendVideo", "video", &v.file.id.0)
    } else if let Some(a) = message.animation() {
        ("sendAnimation", "animation", &a.file.id.0)
    } else if let Some(a) = message.audio() {
        ("sendAudio", "audio", &a.file.id.0)
    } else if let Some(v) = message.voice() {
        ("sendVoice", "voice", &v.file.id.0)
    } else if let Some(v) = message.video_note() {
        ("sendVideoNote", "video_note", &v.file.id.0)
    } else if let Some(s) = message.sticker() {
        ("sendSticker", "sticker", &s.file.id.0)
    } else {
        return None;
    };
    parameters.insert(field.to_owned(), Value::String(file_id.clone()));
    if let Some(caption) = message.caption().filter(|c| !c.is_empty()) {
        parameters.insert("caption".to_owned(), caption.into());
        if let Some(entities) = entities(message.caption_entities()) {
            parameters.insert("caption_entities".to_owned(), entities);
        }
    }
    Some(NativeContent::new(method, parameters))
}

/// The file of a media message: its metadata, a name and a media type.
struct File<'a> {
    meta: &'a FileMeta,
    name: Option<&'a str>,
    mime: Option<&'a str>,
    default_name: &'static str,
    default_mime: &'static str,
}

/// The file name and MIME type of a gateway document (docs/gateway.md 1.3). They only route
/// the file to the gateway's checks; what it holds is checked, never taken on its name.
pub const GATEWAY_FILE_NAME: &str = "dm3-envelope.json";
pub const GATEWAY_MIME_TYPE: &str = "application/vnd.dm3.gateway+json";

/// The gateway document `message` carries (a DM3 envelope its sender's client sealed), by
/// reference and with its declared size, if it is one.
pub fn gateway_document(message: &Message) -> Option<Result<Attachment, String>> {
    let document = message.document()?;
    let mime = document.mime_type.as_ref().map(|m| m.essence_str());
    let named = document.file_name.as_deref() == Some(GATEWAY_FILE_NAME);
    if !named && mime != Some(GATEWAY_MIME_TYPE) {
        return None;
    }
    let file = File {
        meta: &document.file,
        name: Some(GATEWAY_FILE_NAME),
        mime: Some(GATEWAY_MIME_TYPE),
        default_name: GATEWAY_FILE_NAME,
        default_mime: GATEWAY_MIME_TYPE,
    };
    Some(file.into_attachment())
}

fn file_of(message: &Message) -> Option<File<'_>> {
    let file =
        |meta, name, mime, default_name, default_mime| File { meta, name, mime, default_name, default_mime };
    if let Some(photo) = message.photo() {
        // Telegram lists the sizes smallest first; the last is the original.
        let largest = photo.iter().max_by_key(|p| (p.width * p.height, p.file.size))?;
        return Some(file(&largest.file, None, None, "photo.jpg", "image/jpeg"));
    }
    if let Some(d) = message.document() {
        let mime = d.mime_type.as_ref().map(|m| m.essence_str());
        return Some(file(&d.file, d.file_name.as_deref(), mime, "file", "application/octet-stream"));
    }
    if let Some(v) = message.video() {
        let mime = v.mime_type.as_ref().map(|m| m.essence_str());
        return Some(file(&v.file, v.file_name.as_deref(), mime, "video.mp4", "video/mp4"));
    }
    if let Some(a) = message.animation() {
        let mime = a.mime_type.as_ref().map(|m| m.essence_str());
        return Some(file(&a.file, a.file_name.as_deref(), mime, "animation.mp4", "video/mp4"));
    }
    if let Some(a) = message.audio() {
        let mime = a.mime_type.as_ref().map(|m| m.essence_str());
        return Some(file(&a.file, a.file_name.as_deref(), mime, "audio.mp3", "audio/mpeg"));
    }
    if let Some(v) = message.voice() {
        let mime = v.mime_type.as_ref().map(|m| m.essence_str());
        return Some(file(&v.file, None, mime, "voice.ogg", "audio/ogg"));
    }
    if let Some(v) = message.video_note() {
        return Some(file(&v.file, None, None, "video-note.mp4", "video/mp4"));
    }
    if let Some(s) = message.sticker() {
        let (name, mime) = if s.is_animated() {
            ("sticker.tgs", "application/x-tgsticker")
        } else if s.is_video() {
            ("sticker.webm", "video/webm")
        } else {
            ("sticker.webp", "image/webp")
        };
        return Some(file(&s.file, None, None, name, mime));
    }
    None
}

impl File<'_> {
    fn into_attachment(self) -> Result<Attachment, String> {
        let size = u64::from(self.meta.size);
        if size > MAX_DOWNLOAD_BYTES {
            return Err(format!(
                "the file is {}; a Telegram bot can fetch at most {}, so it was not sent",
                megabytes(size),
                megabytes(MAX_DOWNLOAD_BYTES)
            ));
        }
        let url = file_url(&self.meta.id.0)
            .ok_or_else(|| "Telegram sent a file id the bridge cannot use".to_owned())?;
        let mime = self
            .mime
            .and_then(|m| MimeType::new(m).ok())
            .unwrap_or_else(|| MimeType::new(self.default_mime).unwrap_or_else(|_| MimeType::octet_stream()));
        let name = self.name.unwrap_or(self.default_name);
        Attachment::remote(name, mime.clone(), url.clone(), size)
            .or_else(|_| Attachment::remote(self.default_name, mime, url, size))
            .map_err(|e| e.to_string())
    }
}

/// `telegram-file:<file_id>`; file ids are URL-safe base64, anything else is refused.
pub fn file_url(file_id: &str) -> Option<Url> {
    let safe = !file_id.is_empty()
        && file_id.len() <= 512
        && file_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    safe.then(|| Url::parse(&format!("{FILE_URL_SCHEME}:{file_id}")).ok()).flatten()
}

/// The file id of a `telegram-file:` URL.
pub fn file_id_of(url: &Url) -> Option<&str> {
    (url.scheme() == FILE_URL_SCHEME).then(|| url.path()).filter(|id| file_url(id).is_some())
}

/// A size for people: `20.0 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

fn unsupported_kind(message: &Message) -> String {
    let kind = if message.poll().is_some() {
        "polls"
    } else if message.location().is_some() || message.venue().is_some() {
        "locations"
    } else if message.contact().is_some() {
        "contacts"
    } else if message.dice().is_some() {
        "dice"
    } else if message.game().is_some() {
        "games"
    } else if message.story().is_some() {
        "stories"
    } else {
        "messages of this kind"
    };
    format!("{kind} cannot be sent to DM3 users; send text or a file")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn file_urls_round_trip_and_refuse_odd_ids() {
        let url = file_url("AgAD-x_1").unwrap();
        assert_eq!(url.as_str(), "telegram-file:AgAD-x_1");
        assert_eq!(file_id_of(&url), Some("AgAD-x_1"));
        assert!(file_url("a/b").is_none() && file_url("").is_none());
        assert_eq!(file_id_of(&Url::parse("https://x/AgAD").unwrap()), None);
        assert_eq!(megabytes(MAX_DOWNLOAD_BYTES), "20.0 MB");
    }
}
