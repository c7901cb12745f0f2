//! The Telegram allow-list: the Bot API calls a bridge makes from a payload.
//!
//! Five methods: `sendMessage` and the media sends with a caption
//! (`sendPhoto`, `sendDocument`, `sendVideo`, `sendAudio`). Files are named by
//! a `file_id` or an http(s) URL only: an upload needs a multipart request,
//! which a JSON payload cannot describe.
//!
//! The bridge decides where a message goes and what it answers, so `chat_id`,
//! the reply and thread fields are refused, not overridden. Keyboards
//! (`reply_markup`) are refused too: a button that looks like the bridge's own
//! is a phishing tool. Telegram has no end-to-end encryption for bots, so a
//! Telegram payload is never marked encrypted (the decoder already refuses it).

use super::TelegramCall;
use super::allow_list::{Fields, Rejection, item_object};
use super::excerpt;

/// Written by the bridge from the conversation and `referenceMessageHash`.
const SET_BY_BRIDGE: [&str; 5] =
    ["chat_id", "reply_parameters", "reply_to_message_id", "message_thread_id", "business_connection_id"];

/// Accepted by every method.
const COMMON: [&str; 2] = ["disable_notification", "protect_content"];

/// Bot API limits on text after entity parsing, in UTF-16 code units.
const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;

/// Markup (`parse_mode`) may be longer than the text it renders; Telegram
/// checks the rendered length, we only bound the raw string.
const MARKUP_FACTOR: usize = 4;

/// Longest file reference: a `file_id` is under 200 bytes, a URL can be long.
const MAX_FILE_REFERENCE_BYTES: usize = 2048;

/// The entity types a payload may use. `text_mention` (needs a Telegram user
/// object a DM3 client does not have) and `custom_emoji` (needs a bot that
/// owns the emoji) are left out.
const ENTITY_TYPES: [&str; 17] = [
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
];

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Uint,
    Text,
}

pub(super) fn validate(call: &TelegramCall) -> Result<(), Rejection> {
    let parameters = Fields::new(&call.parameters, "parameters");
    match call.method.as_str() {
        "sendMessage" => {
            let own = ["text", "parse_mode", "entities", "link_preview_options"];
            parameters.allow(&SET_BY_BRIDGE, &[&COMMON[..], &own].concat())?;
            formatted_text(&parameters, "text", "entities", TEXT_LIMIT, true)?;
            if let Some(options) = parameters.object("link_preview_options")? {
                link_preview_options(&options)?;
            }
        }
        "sendPhoto" => {
            media(
                &parameters,
                "photo",
                &[("show_caption_above_media", Kind::Bool), ("has_spoiler", Kind::Bool)],
            )?;
        }
        "sendDocument" => media(&parameters, "document", &[("disable_content_type_detection", Kind::Bool)])?,
        "sendVideo" => media(
            &parameters,
            "video",
            &[
                ("duration", Kind::Uint),
                ("width", Kind::Uint),
                ("height", Kind::Uint),
                ("supports_streaming", Kind::Bool),
                ("has_spoiler", Kind::Bool),
                ("show_caption_above_media", Kind::Bool),
            ],
        )?,
        "sendAudio" => media(
            &parameters,
            "audio",
            &[("duration", Kind::Uint), ("performer", Kind::Text), ("title", Kind::Text)],
        )?,
        other => return Err(Rejection::Method(excerpt(other))),
    }
    for flag in COMMON {
        parameters.bool(flag)?;
    }
    Ok(())
}

/// A media send: the file, an optional formatted caption, and its own options.
fn media(parameters: &Fields, file: &str, options: &[(&str, Kind)]) -> Result<(), Rejection> {
    let mut allowed = vec![file, "caption", "parse_mode", "caption_entities"];
    allowed.extend(COMMON);
    allowed.extend(options.iter().map(|(name, _)| *name));
    parameters.allow(&SET_BY_BRIDGE, &allowed)?;
    file_reference(parameters, file)?;
    formatted_text(parameters, "caption", "caption_entities", CAPTION_LIMIT, false)?;
    for (name, kind) in options {
        match kind {
            Kind::Bool => parameters.bool(name).map(drop)?,
            Kind::Uint => parameters.uint(name).map(drop)?,
            Kind::Text => parameters.string(name).map(drop)?,
        }
    }
    Ok(())
}

/// A text or caption with either `parse_mode` markup or explicit entities.
fn formatted_text(
    parameters: &Fields,
    text_key: &str,
    entities_key: &str,
    limit: usize,
    required: bool,
) -> Result<(), Rejection> {
    let text =
        if required { Some(parameters.required_string(text_key)?) } else { parameters.string(text_key)? };
    let parse_mode = parameters.string("parse_mode")?;
    if parse_mode.is_some_and(|mode| !matches!(mode, "HTML" | "MarkdownV2")) {
        return Err(Rejection::invalid(parameters.path("parse_mode"), "\"HTML\" or \"MarkdownV2\""));
    }
    let entities = parameters.array(entities_key)?;
    if parse_mode.is_some() && entities.is_some() {
        return Err(Rejection::Conflict {
            field: parameters.path(entities_key),
            rule: "give `parse_mode` markup or explicit entities, not both",
        });
    }
    let Some(text) = text else {
        return match entities {
            Some(_) => Err(Rejection::Missing(parameters.path(text_key))),
            None => Ok(()),
        };
    };
    let units = text.encode_utf16().count();
    let max = if parse_mode.is_some() { limit * MARKUP_FACTOR } else { limit };
    if (required && units == 0) || units > max {
        let lower = if required { 1 } else { 0 };
        return Err(Rejection::invalid(
            parameters.path(text_key),
            format!("{lower} to {max} UTF-16 code units long"),
        ));
    }
    for (path, entity) in entities.unwrap_or_default() {
        self::entity(&item_object(path, entity)?, units)?;
    }
    Ok(())
}

/// One `MessageEntity`, inside the text it formats.
fn entity(entity: &Fields, text_units: usize) -> Result<(), Rejection> {
    let kind = entity.required_string("type")?;
    if !ENTITY_TYPES.contains(&kind) {
        return Err(Rejection::invalid(entity.path("type"), format!("one of {}", ENTITY_TYPES.join(", "))));
    }
    let mut allowed = vec!["type", "offset", "length"];
    match kind {
        "text_link" => allowed.push("url"),
        "pre" => allowed.push("language"),
        _ => {}
    }
    entity.allow(&[], &allowed)?;
    let offset = entity.required_uint("offset")?;
    let length = entity.required_uint("length")?;
    if length == 0 || offset.saturating_add(length) > text_units as u64 {
        return Err(Rejection::Conflict {
            field: entity.path("length"),
            rule: "an entity must cover at least one UTF-16 code unit inside its text",
        });
    }
    if kind == "text_link" && !is_link(entity.required_string("url")?) {
        return Err(Rejection::invalid(entity.path("url"), "an http(s):// or tg:// URL"));
    }
    entity.string("language")?;
    Ok(())
}

fn link_preview_options(options: &Fields) -> Result<(), Rejection> {
    let flags = ["is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text"];
    options.allow(&[], &[&flags[..], &["url"]].concat())?;
    for flag in flags {
        options.bool(flag)?;
    }
    if let Some(url) = options.string("url")?
        && !is_web_url(url)
    {
        return Err(Rejection::invalid(options.path("url"), "an http(s):// URL"));
    }
    Ok(())
}

/// A `file_id` the bot can send again, or an http(s) URL Telegram fetches.
fn file_reference(parameters: &Fields, key: &str) -> Result<(), Rejection> {
    let reference = parameters.required_string(key)?;
    let is_file_id = !reference.is_empty()
        && reference.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if reference.len() <= MAX_FILE_REFERENCE_BYTES && (is_file_id || is_web_url(reference)) {
        Ok(())
    } else {
        Err(Rejection::invalid(
            parameters.path(key),
            "a Telegram file_id or an http(s):// URL (a payload cannot upload a file)",
        ))
    }
}

fn is_web_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && starts_with_ignore_case(url, scheme))
}

fn is_link(url: &str) -> bool {
    is_web_url(url) || (url.len() > 5 && starts_with_ignore_case(url, "tg://"))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{Value, json};

    use super::*;

    fn check(method: &str, parameters: Value) -> Result<(), Rejection> {
        validate(&TelegramCall { method: method.into(), parameters: parameters.as_object().unwrap().clone() })
    }

    fn reason(method: &str, parameters: Value) -> String {
        check(method, parameters).unwrap_err().to_string()
    }

    #[test]
    fn allows_text_with_markup_or_entities() {
        assert_eq!(check("sendMessage", json!({"text": "<b>hi</b>", "parse_mode": "HTML"})), Ok(()));
        let entities = json!({
            "text": "hi 👋 there, docs",
            "entities": [
                {"type": "bold", "offset": 0, "length": 2},
                {"type": "italic", "offset": 3, "length": 2},
                {"type": "text_link", "offset": 13, "length": 4, "url": "https://example.org/docs"},
            ],
            "link_preview_options": {"is_disabled": true},
            "disable_notification": true,
            "protect_content": false,
        });
        assert_eq!(check("sendMessage", entities), Ok(()));
        let code = json!({"text": "let x;", "entities": [{"type": "pre", "offset": 0, "length": 6, "language": "rust"}]});
        assert_eq!(check("sendMessage", code), Ok(()));
    }

    #[test]
    fn allows_media_with_captions() {
        assert_eq!(
            check(
                "sendPhoto",
                json!({"photo": "AgACAgIAAxkBAAIB", "caption": "*cat*", "parse_mode": "MarkdownV2", "has_spoiler": true})
            ),
            Ok(())
        );
        assert_eq!(
            check("sendDocument", json!({"document": "https://example.org/a.pdf", "caption": "report"})),
            Ok(())
        );
        assert_eq!(
            check("sendVideo", json!({"video": "BAACAgIAAx", "duration": 3, "width": 640, "height": 480})),
            Ok(())
        );
        assert_eq!(
            check("sendAudio", json!({"audio": "CQACAgIAAx", "title": "song", "performer": "band"})),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_the_bridge_decides_and_what_is_not_listed() {
        assert_eq!(
            check("sendMessage", json!({"text": "x", "chat_id": 1})),
            Err(Rejection::SetByBridge("parameters.chat_id".into()))
        );
        assert_eq!(
            check("sendPhoto", json!({"photo": "x", "reply_parameters": {"message_id": 1}})),
            Err(Rejection::SetByBridge("parameters.reply_parameters".into()))
        );
        assert_eq!(
            check("sendMessage", json!({"text": "x", "reply_markup": {"inline_keyboard": []}})),
            Err(Rejection::FieldNotAllowed("parameters.reply_markup".into()))
        );
        assert_eq!(check("forwardMessage", json!({})), Err(Rejection::Method("forwardMessage".into())));
        assert_eq!(
            check("sendPhoto", json!({"photo": "x", "duration": 1})),
            Err(Rejection::FieldNotAllowed("parameters.duration".into()))
        );
    }

    #[test]
    fn refuses_malformed_text_entities_and_files_with_their_path() {
        let cases = [
            ("sendMessage", json!({}), "`parameters.text` is missing"),
            (
                "sendMessage",
                json!({"text": ""}),
                "`parameters.text` must be 1 to 4096 UTF-16 code units long",
            ),
            (
                "sendMessage",
                json!({"text": "x".repeat(4097)}),
                "`parameters.text` must be 1 to 4096 UTF-16 code units long",
            ),
            (
                "sendMessage",
                json!({"text": "x", "parse_mode": "Markdown"}),
                "`parameters.parse_mode` must be \"HTML\" or \"MarkdownV2\"",
            ),
            (
                "sendMessage",
                json!({"text": "x", "parse_mode": "HTML", "entities": []}),
                "`parameters.entities`: give `parse_mode` markup or explicit entities, not both",
            ),
            (
                "sendMessage",
                json!({"text": "👋", "entities": [{"type": "bold", "offset": 1, "length": 2}]}),
                "`parameters.entities[0].length`: an entity must cover at least one UTF-16 code unit inside its text",
            ),
            (
                "sendMessage",
                json!({"text": "x", "entities": [{"type": "text_mention", "offset": 0, "length": 1}]}),
                "`parameters.entities[0].type` must be one of mention, hashtag, cashtag, bot_command, url, email, phone_number, bold, italic, underline, strikethrough, spoiler, blockquote, expandable_blockquote, code, pre, text_link",
            ),
            (
                "sendMessage",
                json!({"text": "x", "entities": [{"type": "bold", "offset": 0, "length": 1, "url": "https://a"}]}),
                "`parameters.entities[0].url` is not an allowed field",
            ),
            (
                "sendMessage",
                json!({"text": "x", "entities": [{"type": "text_link", "offset": 0, "length": 1, "url": "javascript:alert(1)"}]}),
                "`parameters.entities[0].url` must be an http(s):// or tg:// URL",
            ),
            (
                "sendMessage",
                json!({"text": "x", "entities": [1]}),
                "`parameters.entities[0]` must be a JSON object",
            ),
            (
                "sendMessage",
                json!({"text": "x", "link_preview_options": {"url": "file:///etc/passwd"}}),
                "`parameters.link_preview_options.url` must be an http(s):// URL",
            ),
            (
                "sendPhoto",
                json!({"photo": "attach://photo"}),
                "`parameters.photo` must be a Telegram file_id or an http(s):// URL (a payload cannot upload a file)",
            ),
            (
                "sendPhoto",
                json!({"photo": "x", "caption": "x".repeat(1025)}),
                "`parameters.caption` must be 0 to 1024 UTF-16 code units long",
            ),
            ("sendPhoto", json!({"photo": "x", "caption_entities": []}), "`parameters.caption` is missing"),
            (
                "sendVideo",
                json!({"video": "x", "width": 1.5}),
                "`parameters.width` must be a non-negative integer below 2^53",
            ),
            (
                "sendAudio",
                json!({"audio": "x", "disable_notification": "yes"}),
                "`parameters.disable_notification` must be a boolean",
            ),
        ];
        for (method, parameters, expected) in cases {
            assert_eq!(reason(method, parameters.clone()), expected, "{method} {parameters}");
        }
    }

    #[test]
    fn markup_may_be_longer_than_the_text_limit() {
        let markup = format!("<b>{}</b>", "x".repeat(4090));
        assert_eq!(check("sendMessage", json!({"text": markup, "parse_mode": "HTML"})), Ok(()));
    }
}
