//! The Matrix allow-list: the room events a bridge forwards from a payload.
//!
//! Two event types: `m.room.message` with the text and media msgtypes, and
//! `m.room.encrypted` (Megolm ciphertext a client prepared, which the bridge
//! cannot read and so checks only for shape). Reactions and redactions are not
//! payloads: a DM3 REACTION or DELETE_REQUEST already says everything they
//! would, and a second, possibly conflicting statement helps no one.
//!
//! `m.relates_to` and `m.new_content` are refused: a DM3 client knows the
//! message it answers or edits by its DM3 hash, never by a Matrix event id,
//! so the bridge writes the relation from `referenceMessageHash` through its
//! message map (and, for an edit, wraps the content in `m.new_content`).

use super::MatrixEvent;
use super::allow_list::{Fields, Rejection};
use super::excerpt;

const MESSAGE: &str = "m.room.message";
const ENCRYPTED: &str = "m.room.encrypted";
const MEGOLM: &str = "m.megolm.v1.aes-sha2";
const HTML_FORMAT: &str = "org.matrix.custom.html";

/// Written by the bridge from the DM3 message's type and `referenceMessageHash`.
const SET_BY_BRIDGE: [&str; 2] = ["m.relates_to", "m.new_content"];

const TEXT_FIELDS: [&str; 5] = ["msgtype", "body", "format", "formatted_body", "m.mentions"];
const MEDIA_FIELDS: [&str; 9] =
    ["msgtype", "body", "filename", "format", "formatted_body", "url", "file", "info", "m.mentions"];

pub(super) fn validate(event: &MatrixEvent) -> Result<(), Rejection> {
    let content = Fields::new(&event.content, "content");
    let is_encrypted_type = match event.event_type.as_str() {
        MESSAGE => false,
        ENCRYPTED => true,
        other => return Err(Rejection::EventType(excerpt(other))),
    };
    if event.encrypted != is_encrypted_type {
        return Err(Rejection::EncryptedMismatch);
    }
    if is_encrypted_type { encrypted(&content) } else { message(&content) }
}

fn message(content: &Fields) -> Result<(), Rejection> {
    let msgtype = content.required_string("msgtype")?;
    match msgtype {
        "m.text" | "m.notice" | "m.emote" => content.allow(&SET_BY_BRIDGE, &TEXT_FIELDS)?,
        "m.image" | "m.file" | "m.audio" | "m.video" => {
            content.allow(&SET_BY_BRIDGE, &MEDIA_FIELDS)?;
            media_source(content)?;
            content.string("filename")?;
            if let Some(info) = content.object("info")? {
                media_info(&info, msgtype)?;
            }
        }
        other => return Err(Rejection::Msgtype(excerpt(other))),
    }
    content.required_string("body")?;
    formatting(content)?;
    if let Some(mentions) = content.object("m.mentions")? {
        self::mentions(&mentions)?;
    }
    Ok(())
}

/// `format` and `formatted_body` come together, and the format is HTML.
fn formatting(content: &Fields) -> Result<(), Rejection> {
    match (content.string("format")?, content.string("formatted_body")?) {
        (None, None) | (Some(HTML_FORMAT), Some(_)) => Ok(()),
        (Some(HTML_FORMAT), None) => Err(Rejection::Missing(content.path("formatted_body"))),
        (Some(_), _) => Err(Rejection::invalid(content.path("format"), format!("\"{HTML_FORMAT}\""))),
        (None, Some(_)) => Err(Rejection::Missing(content.path("format"))),
    }
}

fn mentions(mentions: &Fields) -> Result<(), Rejection> {
    mentions.allow(&[], &["user_ids", "room"])?;
    mentions.bool("room")?;
    for (path, item) in mentions.array("user_ids")?.unwrap_or_default() {
        if !item.as_str().is_some_and(is_user_id) {
            return Err(Rejection::invalid(path, "a Matrix user id (@localpart:server)"));
        }
    }
    Ok(())
}

/// Plain media has `url`, encrypted media has `file`; never both, never neither.
fn media_source(content: &Fields) -> Result<(), Rejection> {
    match (content.has("url"), content.has("file")) {
        (true, false) => mxc(content, "url"),
        (false, true) => encrypted_file(&content.required_object("file")?),
        _ => Err(Rejection::Conflict {
            field: content.path("url"),
            rule: "give exactly one of `url` (plain media) and `file` (encrypted media)",
        }),
    }
}

fn media_info(info: &Fields, msgtype: &str) -> Result<(), Rejection> {
    let mut allowed = vec!["mimetype", "size"];
    if matches!(msgtype, "m.image" | "m.video") {
        allowed.extend(["w", "h"]);
    }
    if matches!(msgtype, "m.audio" | "m.video") {
        allowed.push("duration");
    }
    if msgtype != "m.audio" {
        allowed.extend(["thumbnail_url", "thumbnail_file", "thumbnail_info"]);
    }
    info.allow(&[], &allowed)?;
    info.string("mimetype")?;
    for key in ["size", "w", "h", "duration"] {
        info.uint(key)?;
    }
    match (info.has("thumbnail_url"), info.has("thumbnail_file")) {
        (true, true) => {
            return Err(Rejection::Conflict {
                field: info.path("thumbnail_url"),
                rule: "give at most one of `thumbnail_url` and `thumbnail_file`",
            });
        }
        (true, false) => mxc(info, "thumbnail_url")?,
        (false, true) => encrypted_file(&info.required_object("thumbnail_file")?)?,
        (false, false) => {}
    }
    if let Some(thumbnail) = info.object("thumbnail_info")? {
        thumbnail.allow(&[], &["mimetype", "size", "w", "h"])?;
        thumbnail.string("mimetype")?;
        for key in ["size", "w", "h"] {
            thumbnail.uint(key)?;
        }
    }
    Ok(())
}

/// The spec's `EncryptedFile`: every field required, the key an AES-CTR JWK.
fn encrypted_file(file: &Fields) -> Result<(), Rejection> {
    file.allow(&[], &["url", "key", "iv", "hashes", "v"])?;
    mxc(file, "url")?;
    file.required_string("iv")?;
    file.constant("v", "v2")?;
    let key = file.required_object("key")?;
    key.allow(&[], &["kty", "key_ops", "alg", "k", "ext"])?;
    key.constant("kty", "oct")?;
    key.constant("alg", "A256CTR")?;
    key.required_string("k")?;
    if key.bool("ext")? != Some(true) {
        return Err(Rejection::invalid(key.path("ext"), "true"));
    }
    let operations = key.array("key_ops")?.ok_or_else(|| Rejection::Missing(key.path("key_ops")))?;
    for (path, operation) in operations {
        if !operation.is_string() {
            return Err(Rejection::invalid(path, "a string"));
        }
    }
    let hashes = file.required_object("hashes")?;
    hashes.required_string("sha256")?;
    for (path, hash) in hashes.values() {
        if !hash.is_string() {
            return Err(Rejection::invalid(path, "a string"));
        }
    }
    Ok(())
}

/// Megolm ciphertext: the bridge checks the shape, the room's devices decrypt.
fn encrypted(content: &Fields) -> Result<(), Rejection> {
    content.allow(&SET_BY_BRIDGE, &["algorithm", "ciphertext", "session_id", "sender_key", "device_id"])?;
    content.constant("algorithm", MEGOLM)?;
    content.required_string("ciphertext")?;
    content.required_string("session_id")?;
    // Deprecated since Matrix 1.3 but still sent by older clients.
    content.string("sender_key")?;
    content.string("device_id")?;
    Ok(())
}

fn mxc(fields: &Fields, key: &str) -> Result<(), Rejection> {
    if is_mxc(fields.required_string(key)?) {
        Ok(())
    } else {
        Err(Rejection::invalid(fields.path(key), "an mxc://server/media-id URI"))
    }
}

/// `mxc://<server name>/<media id>`; the media id is `[A-Za-z0-9_-]+` (spec).
fn is_mxc(uri: &str) -> bool {
    let Some((server, media_id)) = uri.strip_prefix("mxc://").and_then(|rest| rest.split_once('/')) else {
        return false;
    };
    is_server_name(server)
        && !media_id.is_empty()
        && media_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// `@localpart:server`, at most 255 bytes (spec user id grammar, loosely).
fn is_user_id(id: &str) -> bool {
    id.len() <= 255
        && id
            .strip_prefix('@')
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(localpart, server)| !localpart.is_empty() && is_server_name(server))
}

/// A host name, IPv4 or `[IPv6]` literal with an optional port.
fn is_server_name(server: &str) -> bool {
    !server.is_empty() && server.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-.:[]".contains(&byte))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{Value, json};

    use super::*;

    fn event(event_type: &str, content: Value) -> MatrixEvent {
        MatrixEvent {
            event_type: event_type.into(),
            content: content.as_object().unwrap().clone(),
            encrypted: event_type == ENCRYPTED,
        }
    }

    fn check(content: Value) -> Result<(), Rejection> {
        validate(&event(MESSAGE, content))
    }

    fn encrypted_file_json() -> Value {
        json!({
            "url": "mxc://example.org/FHyPlCeYUSFFxlgbQYZmoEoe",
            "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR", "k": "aWF6LW9rZS1mb3IteW91", "ext": true},
            "iv": "X85+XgHN+HEAAAAAAAAAAA",
            "hashes": {"sha256": "Fq/+yL8GmK9ZsWBvm2FfbqAPA0HMuRTuVQdqxjmOuFI"},
            "v": "v2"
        })
    }

    #[test]
    fn allows_text_notices_emotes_with_html_and_mentions() {
        for msgtype in ["m.text", "m.notice", "m.emote"] {
            let content = json!({
                "msgtype": msgtype, "body": "hi @bob", "format": "org.matrix.custom.html",
                "formatted_body": "hi <a href=\"https://matrix.to/#/@bob:example.org\">bob</a>",
                "m.mentions": {"user_ids": ["@bob:example.org"], "room": false}
            });
            assert_eq!(check(content), Ok(()), "{msgtype}");
        }
    }

    #[test]
    fn allows_plain_and_encrypted_media_with_their_info() {
        let image = json!({
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/abc_DEF-1",
            "info": {"mimetype": "image/png", "size": 1024, "w": 64, "h": 48,
                     "thumbnail_url": "mxc://example.org/thumb", "thumbnail_info": {"mimetype": "image/png", "w": 8, "h": 6}}
        });
        assert_eq!(check(image), Ok(()));
        let file = json!({"msgtype": "m.file", "body": "report", "filename": "report.pdf", "file": encrypted_file_json(),
                          "format": "org.matrix.custom.html", "formatted_body": "<b>report</b>"});
        assert_eq!(check(file), Ok(()));
        let audio = json!({"msgtype": "m.audio", "body": "a.ogg", "url": "mxc://[::1]:8448/a", "info": {"duration": 1200}});
        assert_eq!(check(audio), Ok(()));
        let video = json!({"msgtype": "m.video", "body": "v.mp4", "url": "mxc://example.org/v",
                           "info": {"duration": 1, "w": 1, "h": 1, "thumbnail_file": encrypted_file_json()}});
        assert_eq!(check(video), Ok(()));
    }

    #[test]
    fn allows_megolm_ciphertext_marked_encrypted() {
        let content = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
                             "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA", "device_id": "RJYKSTBOIE"});
        assert_eq!(validate(&event(ENCRYPTED, content.clone())), Ok(()));
        let mut unmarked = event(ENCRYPTED, content);
        unmarked.encrypted = false;
        assert_eq!(validate(&unmarked), Err(Rejection::EncryptedMismatch));
        let mut marked_plain = event(MESSAGE, json!({"msgtype": "m.text", "body": "hi"}));
        marked_plain.encrypted = true;
        assert_eq!(validate(&marked_plain), Err(Rejection::EncryptedMismatch));
        let olm = json!({"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": "x", "session_id": "s"});
        assert!(
            matches!(validate(&event(ENCRYPTED, olm)), Err(Rejection::Invalid { field, .. }) if field == "content.algorithm")
        );
    }

    #[test]
    fn refuses_other_event_types_and_msgtypes() {
        let reaction = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}});
        assert_eq!(validate(&event("m.reaction", reaction)), Err(Rejection::EventType("m.reaction".into())));
        assert_eq!(
            validate(&event("m.room.member", json!({}))),
            Err(Rejection::EventType("m.room.member".into()))
        );
        assert_eq!(
            check(json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:0,0"})),
            Err(Rejection::Msgtype("m.location".into()))
        );
        assert_eq!(check(json!({"body": "x"})), Err(Rejection::Missing("content.msgtype".into())));
    }

    #[test]
    fn refuses_relations_because_the_bridge_writes_them() {
        let reply =
            json!({"msgtype": "m.text", "body": "x", "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}});
        assert_eq!(check(reply), Err(Rejection::SetByBridge("content.m.relates_to".into())));
        let edit =
            json!({"msgtype": "m.text", "body": "* x", "m.new_content": {"msgtype": "m.text", "body": "x"}});
        assert_eq!(check(edit), Err(Rejection::SetByBridge("content.m.new_content".into())));
        let encrypted_reply =
            json!({"algorithm": MEGOLM, "ciphertext": "c", "session_id": "s", "m.relates_to": {}});
        assert_eq!(
            validate(&event(ENCRYPTED, encrypted_reply)),
            Err(Rejection::SetByBridge("content.m.relates_to".into()))
        );
    }

    #[test]
    fn refuses_unknown_or_malformed_fields_with_their_path() {
        let cases = [
            (
                json!({"msgtype": "m.text", "body": "x", "url": "mxc://a/b"}),
                "`content.url` is not an allowed field",
            ),
            (json!({"msgtype": "m.text", "body": 3}), "`content.body` must be a string"),
            (
                json!({"msgtype": "m.text", "body": "x", "format": "markdown", "formatted_body": "x"}),
                "`content.format` must be \"org.matrix.custom.html\"",
            ),
            (
                json!({"msgtype": "m.text", "body": "x", "formatted_body": "<b>x</b>"}),
                "`content.format` is missing",
            ),
            (
                json!({"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": ["bob"]}}),
                "`content.m.mentions.user_ids[0]` must be a Matrix user id (@localpart:server)",
            ),
            (
                json!({"msgtype": "m.image", "body": "x", "url": "https://example.org/x.png"}),
                "`content.url` must be an mxc://server/media-id URI",
            ),
            (
                json!({"msgtype": "m.image", "body": "x"}),
                "`content.url`: give exactly one of `url` (plain media) and `file` (encrypted media)",
            ),
            (
                json!({"msgtype": "m.image", "body": "x", "url": "mxc://a/b", "info": {"duration": 3}}),
                "`content.info.duration` is not an allowed field",
            ),
            (
                json!({"msgtype": "m.audio", "body": "x", "url": "mxc://a/b", "info": {"size": -1}}),
                "`content.info.size` must be a non-negative integer below 2^53",
            ),
            (
                json!({"msgtype": "m.file", "body": "x", "file": {"url": "mxc://a/b"}}),
                "`content.file.iv` is missing",
            ),
        ];
        for (content, reason) in cases {
            assert_eq!(check(content.clone()).unwrap_err().to_string(), reason, "{content}");
        }
        let mut file = encrypted_file_json();
        file["key"]["alg"] = json!("A128CBC");
        let content = json!({"msgtype": "m.file", "body": "x", "file": file});
        assert_eq!(check(content).unwrap_err().to_string(), "`content.file.key.alg` must be \"A256CTR\"");
    }

    #[test]
    fn recognizes_mxc_uris_and_user_ids() {
        assert!(is_mxc("mxc://matrix.org/aBc-_1"));
        assert!(is_mxc("mxc://1.2.3.4:8448/x"));
        for bad in [
            "mxc://",
            "mxc://server",
            "mxc:///id",
            "mxc://server/",
            "mxc://ser ver/id",
            "mxc://s/i/d",
            "http://s/i",
        ] {
            assert!(!is_mxc(bad), "{bad}");
        }
        assert!(is_user_id("@bob:example.org"));
        for bad in ["bob:example.org", "@:example.org", "@bob", "@bob:", "@bob:exa mple"] {
            assert!(!is_user_id(bad), "{bad}");
        }
    }
}
