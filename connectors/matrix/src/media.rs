//! Files between the neutral model and Matrix: `m.image`/`m.file`/`m.audio`/`m.video` both
//! ways, as pure conversions. The connector's `MediaHandling` (upload and download through the
//! homeserver's media repository) is in [`crate::connector`], which calls these; this module
//! knows nothing of the connector, so the two do not lean on each other.
//!
//! - **Inbound.** A media message becomes [`Content::Attachment`] with a *URL* source (the
//!   `mxc://` URI): the bytes stay on the homeserver until the engine needs them and fetches
//!   them through `MediaHandling::download`, bounded by the limit it chooses. The declared
//!   size and type are the sender's claims, kept as such; a missing size is 0, which the bounded
//!   download makes harmless. An encrypted file (`file` instead of `url`, end-to-end encrypted
//!   rooms) keeps its `file` object, key included, in the URL's fragment
//!   ([`sealed_file_of`]): the neutral model has one URL per remote file, a fragment is never
//!   sent to a server, and the download opens the ciphertext with it
//!   ([`crate::media_cipher`]).
//! - **Outbound.** An inline attachment is uploaded first (as the sending ghost), then sent as
//!   the message type its media type calls for, by URL or, in an encrypted room, sealed first
//!   ([`MediaSource::Encrypted`]). The caption follows Matrix 1.10: `filename`
//!   holds the file name and `body` the caption, so clients that know captions show both.
//! - **Limits.** The largest file is the smaller of the configured limit and the homeserver's
//!   `m.upload.size` (read at start); the engine checks it through [`crate::MatrixConnector`]'s
//!   capabilities before moving a byte.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dm3_bridge_connector::{Attachment, ConnectorError, Content, MimeType, Text};
use ruma::events::room::EncryptedFile;
use ruma::events::room::message::{
    AudioInfo, AudioMessageEventContent, FileInfo, FileMessageEventContent, FormattedBody, MessageFormat,
    MessageType, RoomMessageEventContent, VideoInfo, VideoMessageEventContent,
};
use ruma::events::room::{ImageInfo, MediaSource};
use ruma::{MxcUri, OwnedMxcUri, UInt};
use url::Url;

/// How an attachment URL's fragment starts when it carries an encrypted file's `file` object
/// (base64url of its JSON).
const SEALED_FRAGMENT: &str = "dm3-sealed-file=";

/// The attachment a media message carries, `None` if `msgtype` is not a media message, and the
/// reason for the sender if the file cannot be bridged.
pub fn inbound_attachment(msgtype: &MessageType) -> Option<Result<Content, String>> {
    let (body, formatted, filename, source, mimetype, size) = match msgtype {
        MessageType::Image(c) => {
            let info = c.info.as_deref();
            (
                &c.body,
                &c.formatted,
                &c.filename,
                &c.source,
                info.and_then(|i| i.mimetype.clone()),
                info.and_then(|i| i.size),
            )
        }
        MessageType::File(c) => {
            let info = c.info.as_deref();
            (
                &c.body,
                &c.formatted,
                &c.filename,
                &c.source,
                info.and_then(|i| i.mimetype.clone()),
                info.and_then(|i| i.size),
            )
        }
        MessageType::Audio(c) => {
            let info = c.info.as_deref();
            (
                &c.body,
                &c.formatted,
                &c.filename,
                &c.source,
                info.and_then(|i| i.mimetype.clone()),
                info.and_then(|i| i.size),
            )
        }
        MessageType::Video(c) => {
            let info = c.info.as_deref();
            (
                &c.body,
                &c.formatted,
                &c.filename,
                &c.source,
                info.and_then(|i| i.mimetype.clone()),
                info.and_then(|i| i.size),
            )
        }
        _ => return None,
    };
    Some(attachment_of(body, formatted.as_ref(), filename.as_deref(), source, mimetype, size))
}

fn attachment_of(
    body: &str,
    formatted: Option<&FormattedBody>,
    filename: Option<&str>,
    source: &MediaSource,
    mimetype: Option<String>,
    size: Option<UInt>,
) -> Result<Content, String> {
    let uri = match source {
        MediaSource::Plain(uri) => uri,
        MediaSource::Encrypted(file) => &file.url,
    };
    if !usable(uri) {
        return Err(format!("the file's address `{uri}` is not a valid mxc URI"));
    }
    let mut url = Url::parse(uri.as_str()).map_err(|_| format!("the file's address `{uri}` is unusable"))?;
    if let MediaSource::Encrypted(file) = source {
        let json = serde_json::to_vec(file).map_err(|e| format!("the encrypted file is unusable: {e}"))?;
        url.set_fragment(Some(&format!("{SEALED_FRAGMENT}{}", URL_SAFE_NO_PAD.encode(json))));
    }
    // Matrix 1.10: with a `filename` that differs from `body`, `body` is a caption.
    let (name, caption) = match filename {
        Some(name) if name != body => {
            let html = formatted.filter(|f| f.format == MessageFormat::Html).map(|f| f.body.clone());
            (name, Some(Text { body: body.to_owned(), html }))
        }
        _ => (body, None),
    };
    let mime = mimetype.as_deref().and_then(|m| MimeType::new(m).ok()).unwrap_or_else(MimeType::octet_stream);
    let attachment = Attachment::remote(&file_name(name), mime, url, size.map_or(0, u64::from))
        .map_err(|e| e.to_string())?;
    Ok(Content::Attachment { attachment, caption })
}

/// A file name the neutral model accepts: path separators and control characters replaced,
/// cut to 255 bytes, never empty.
pub fn file_name(name: &str) -> String {
    let mut out =
        String::with_capacity(name.len().min(dm3_bridge_connector::attachment::MAX_FILE_NAME_BYTES));
    for c in name.chars() {
        let c = if c.is_control() || c == '/' || c == '\\' { '_' } else { c };
        if out.len() + c.len_utf8() > dm3_bridge_connector::attachment::MAX_FILE_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() { "file".to_owned() } else { out }
}

/// The `file` object an inbound encrypted file's attachment URL carries, `None` for a plain
/// file's URL.
pub fn sealed_file_of(url: &Url) -> Result<Option<EncryptedFile>, ConnectorError> {
    let Some(encoded) = url.fragment().and_then(|f| f.strip_prefix(SEALED_FRAGMENT)) else {
        return Ok(None);
    };
    // Not the URL in the message: its fragment holds the key.
    let unusable = |e: &dyn std::fmt::Display| {
        ConnectorError::Permanent(format!("the encrypted file's description is unusable: {e}"))
    };
    let json = URL_SAFE_NO_PAD.decode(encoded).map_err(|e| unusable(&e))?;
    serde_json::from_slice(&json).map(Some).map_err(|e| unusable(&e))
}

/// The message for a file already on the homeserver (`source`: by URL, or sealed for an
/// encrypted room), typed by its media type.
pub fn media_message(
    attachment: &Attachment,
    caption: Option<&Text>,
    source: MediaSource,
) -> RoomMessageEventContent {
    let name = attachment.name().to_owned();
    let (body, formatted) = match caption {
        Some(text) => (text.body.clone(), text.html.as_ref().map(|html| FormattedBody::html(html.clone()))),
        None => (name.clone(), None),
    };
    let mime = attachment.mime().as_str();
    let mimetype = Some(mime.to_owned());
    let size = UInt::new(attachment.size());
    let msgtype = match mime.split_once('/').map(|(kind, _)| kind) {
        Some("image") => {
            let mut info = ImageInfo::new();
            (info.mimetype, info.size) = (mimetype, size);
            let mut content =
                ruma::events::room::message::ImageMessageEventContent::new(body, source).info(Box::new(info));
            (content.formatted, content.filename) = (formatted, Some(name));
            MessageType::Image(content)
        }
        Some("video") => {
            let mut info = VideoInfo::new();
            (info.mimetype, info.size) = (mimetype, size);
            let mut content = VideoMessageEventContent::new(body, source).info(Box::new(info));
            (content.formatted, content.filename) = (formatted, Some(name));
            MessageType::Video(content)
        }
        Some("audio") => {
            let mut info = AudioInfo::new();
            (info.mimetype, info.size) = (mimetype, size);
            let mut content = AudioMessageEventContent::new(body, source).info(Box::new(info));
            (content.formatted, content.filename) = (formatted, Some(name));
            MessageType::Audio(content)
        }
        _ => {
            let mut info = FileInfo::new();
            (info.mimetype, info.size) = (mimetype, size);
            let mut content = FileMessageEventContent::new(body, source).info(Box::new(info));
            (content.formatted, content.filename) = (formatted, Some(name));
            MessageType::File(content)
        }
    };
    RoomMessageEventContent::new(msgtype)
}

/// `mxc://server/id` as ruma's type, without any fragment; a permanent error for any other URL.
pub fn mxc_uri(url: &Url) -> Result<OwnedMxcUri, ConnectorError> {
    let mut url = url.clone();
    url.set_fragment(None);
    let uri = OwnedMxcUri::from(url.as_str());
    if usable(&uri) {
        Ok(uri)
    } else {
        Err(ConnectorError::Permanent(format!("`{url}` is not a Matrix media (mxc://) URL")))
    }
}

/// A valid `mxc://server/id` with a media id (ruma accepts an empty one).
fn usable(uri: &MxcUri) -> bool {
    uri.parts().is_ok_and(|(_, id)| !id.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use dm3_bridge_connector::AttachmentSource;
    use proptest::prelude::*;
    use ruma::events::room::message::RoomMessageEventContent;
    use serde_json::json;

    use super::*;

    fn content(json: serde_json::Value) -> RoomMessageEventContent {
        serde_json::from_value(json).unwrap()
    }

    fn attachment(json: serde_json::Value) -> (Attachment, Option<Text>) {
        match inbound_attachment(&content(json).msgtype) {
            Some(Ok(Content::Attachment { attachment, caption })) => (attachment, caption),
            other => panic!("not an attachment: {other:?}"),
        }
    }

    #[test]
    fn media_messages_become_attachments_by_url() {
        // As Element sends an image: body is the file name, info has type and size.
        let (image, caption) = attachment(json!({
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/AbCdEf",
            "info": {"mimetype": "image/png", "size": 2048, "w": 10, "h": 10},
        }));
        assert_eq!((image.name(), image.mime().as_str(), image.size()), ("cat.png", "image/png", 2048));
        assert_eq!(image.source(), &AttachmentSource::Url(Url::parse("mxc://localhost/AbCdEf").unwrap()));
        assert_eq!(caption, None);
        // Matrix 1.10 caption: filename differs from body.
        let (file, caption) = attachment(json!({
            "msgtype": "m.file", "body": "the **report**", "format": "org.matrix.custom.html",
            "formatted_body": "the <b>report</b>", "filename": "report.pdf", "url": "mxc://localhost/x",
        }));
        assert_eq!(
            (file.name(), file.mime().as_str(), file.size()),
            ("report.pdf", "application/octet-stream", 0)
        );
        assert_eq!(caption, Some(Text::formatted("the **report**", "the <b>report</b>")));
        let (audio, _) =
            attachment(json!({"msgtype": "m.audio", "body": "a/b\u{7}.ogg", "url": "mxc://localhost/a",
            "info": {"mimetype": "audio/ogg; codecs=opus"}}));
        assert_eq!(audio.name(), "a_b_.ogg");
        assert_eq!(audio.mime().as_str(), "application/octet-stream", "a type with parameters is not kept");
        let (video, _) =
            attachment(json!({"msgtype": "m.video", "body": "v.mp4", "url": "mxc://localhost/v",
            "info": {"mimetype": "video/mp4", "size": 9}}));
        assert_eq!(video.mime().as_str(), "video/mp4");
    }

    #[test]
    fn encrypted_files_keep_their_key_in_the_urls_fragment_and_text_is_no_file() {
        let file = json!({"url": "mxc://localhost/enc", "key": {"kty": "oct", "key_ops": ["decrypt", "encrypt"], "alg": "A256CTR", "k": "qcHVMSgYg-71CauWBezXI5qkaRb0LuIy-Wx5kIaHMIA", "ext": true},
                          "iv": "X85+XgHN+HEAAAAAAAAAAA", "hashes": {"sha256": "5qG4fFnbbVdlAB1Q72JDKwCagV6Dbkx9uds4rSak37c"}, "v": "v2"});
        let (secret, caption) = attachment(json!({
            "msgtype": "m.file", "body": "secret.txt", "file": file.clone(),
            "info": {"mimetype": "text/plain", "size": 12},
        }));
        assert_eq!((secret.name(), secret.mime().as_str(), secret.size()), ("secret.txt", "text/plain", 12));
        assert_eq!(caption, None);
        let AttachmentSource::Url(url) = secret.source() else { panic!("not by URL") };
        assert_eq!(
            mxc_uri(url).unwrap().as_str(),
            "mxc://localhost/enc",
            "the download ignores the fragment"
        );
        let carried = sealed_file_of(url).unwrap().expect("the file object rides along");
        assert_eq!(serde_json::to_value(carried).unwrap(), file, "key, counter and hash unchanged");
        let plain = Url::parse("mxc://localhost/plain").unwrap();
        assert!(sealed_file_of(&plain).unwrap().is_none());
        let garbled = Url::parse("mxc://localhost/enc#dm3-sealed-file=!!").unwrap();
        assert!(matches!(sealed_file_of(&garbled), Err(ConnectorError::Permanent(_))));
        assert_eq!(inbound_attachment(&content(json!({"msgtype": "m.text", "body": "hi"})).msgtype), None);
    }

    #[test]
    fn outbound_files_in_encrypted_rooms_carry_the_file_object_instead_of_a_url() {
        let a = Attachment::inline("f.txt", MimeType::new("text/plain").unwrap(), vec![0; 7]).unwrap();
        let sealed = crate::media_cipher::seal(vec![0; 7]).unwrap();
        let file = sealed.into_encrypted_file(OwnedMxcUri::from("mxc://localhost/sealed"));
        let sent =
            serde_json::to_value(media_message(&a, None, MediaSource::Encrypted(Box::new(file)))).unwrap();
        assert_eq!(sent["msgtype"], "m.file");
        assert_eq!(sent.get("url"), None, "no plain URL beside the encrypted file");
        assert_eq!(sent["file"]["url"], "mxc://localhost/sealed");
        assert_eq!(sent["file"]["v"], "v2");
        assert_eq!(
            sent["info"],
            json!({"mimetype": "text/plain", "size": 7}),
            "type and size travel encrypted"
        );
    }

    #[test]
    fn outbound_files_get_the_message_type_of_their_media_type() {
        let uri = OwnedMxcUri::from("mxc://localhost/up");
        let sent = |mime: &str, caption: Option<&Text>| {
            let a = Attachment::inline("f.bin", MimeType::new(mime).unwrap(), vec![0; 7]).unwrap();
            serde_json::to_value(media_message(&a, caption, MediaSource::Plain(uri.clone()))).unwrap()
        };
        let image = sent("image/jpeg", None);
        assert_eq!(image["msgtype"], "m.image");
        assert_eq!((image["body"].as_str(), image["filename"].as_str()), (Some("f.bin"), Some("f.bin")));
        assert_eq!(image["url"], "mxc://localhost/up");
        assert_eq!(image["info"], json!({"mimetype": "image/jpeg", "size": 7}));
        assert_eq!(sent("video/mp4", None)["msgtype"], "m.video");
        assert_eq!(sent("audio/ogg", None)["msgtype"], "m.audio");
        let file = sent("application/pdf", Some(&Text::formatted("see *this*", "see <i>this</i>")));
        assert_eq!(file["msgtype"], "m.file");
        assert_eq!((file["body"].as_str(), file["filename"].as_str()), (Some("see *this*"), Some("f.bin")));
        assert_eq!(file["formatted_body"], "see <i>this</i>");
        // What is sent converts back to the same attachment and caption.
        let back = content(file);
        let Some(Ok(Content::Attachment { attachment, caption })) = inbound_attachment(&back.msgtype) else {
            panic!()
        };
        assert_eq!((attachment.name(), attachment.size()), ("f.bin", 7));
        assert_eq!(caption, Some(Text::formatted("see *this*", "see <i>this</i>")));
    }

    #[test]
    fn only_mxc_urls_are_matrix_media() {
        assert!(mxc_uri(&Url::parse("mxc://example.org:8448/abc").unwrap()).is_ok());
        assert!(mxc_uri(&Url::parse("https://example.org/abc").unwrap()).is_err());
        assert!(mxc_uri(&Url::parse("mxc://example.org/").unwrap()).is_err());
    }

    proptest! {
        #[test]
        fn file_names_are_always_accepted(name in "\\PC{0,300}") {
            let cleaned = file_name(&name);
            prop_assert!(Attachment::inline(&cleaned, MimeType::octet_stream(), vec![]).is_ok(), "{:?}", cleaned);
        }
    }
}
