//! DM3 attachments ↔ neutral attachments, within a byte budget.
//!
//! A DM3 attachment carries its file inside the message as a `data:` URI (the messenger's
//! `readAsDataURL`, docs/protocol.md §5.1); a neutral [`Attachment`] carries bytes inline or a URL of
//! the network's media store. So:
//! - DM3 → network: a `data:` URI becomes an inline attachment with its bytes, media type and
//!   name. Any other URI (https, ipfs: the spec allows them) is *not* fetched (the URL is the
//!   sender's choice, and fetching it would let any DM3 user make the node request it); it is
//!   shown as a link instead ([`Incoming::Link`]).
//! - network → DM3: an inline attachment becomes `{name, data: "data:<mime>;base64,…"}`, the
//!   schema's shape (the messenger derives its `isImage` from the data itself). A file on the
//!   network's media store must be downloaded first (`MediaHandling::download`, bounded by the
//!   same budget); converting one that was not is an error, not a silent drop.
//!
//! Every conversion spends from one [`AttachmentLimits`] budget per message, so a message with
//! many attachments cannot add up to more than one large one.

use ::dm3::message::{Attachment as Dm3Attachment, AttachmentDataError};
use dm3_bridge_connector::{Attachment, AttachmentSource, MimeType};

/// The bounds on the attachments of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// The most attachments one message may carry.
    pub max_count: usize,
    /// The most decoded bytes all attachments of one message may add up to.
    pub max_total_bytes: usize,
}

impl Default for AttachmentLimits {
    /// 10 attachments, 8 MiB in all: more than a delivery service accepts in one envelope by
    /// default (100 000 bytes, §9.1), and well within what the networks take.
    fn default() -> Self {
        Self { max_count: 10, max_total_bytes: 8 * 1024 * 1024 }
    }
}

/// Why an attachment is not carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentConvertError {
    #[error("the message has {count} attachments; at most {max} are carried")]
    TooMany { count: usize, max: usize },
    #[error("attachment {index} does not fit: the attachments of one message may hold at most {max} bytes")]
    TooLarge { index: usize, max: usize },
    #[error("attachment {index} is unreadable: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("attachment {index} is on the network's media store ({url}); download it before converting")]
    NotDownloaded { index: usize, url: String },
}

/// One DM3 attachment as the network will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A file, bytes in hand.
    File(Attachment),
    /// A URI with no bytes inside (https, ipfs, …), to be shown as a link.
    Link { name: Option<String>, uri: String },
}

/// The attachments of a DM3 message, in order, within `limits`.
pub fn from_dm3(
    attachments: &[Dm3Attachment],
    limits: &AttachmentLimits,
) -> Result<Vec<Incoming>, AttachmentConvertError> {
    check_count(attachments.len(), limits)?;
    let mut budget = limits.max_total_bytes;
    attachments
        .iter()
        .enumerate()
        .map(|(index, attachment)| incoming(index, attachment, &mut budget, limits.max_total_bytes))
        .collect()
}

fn incoming(
    index: usize,
    attachment: &Dm3Attachment,
    budget: &mut usize,
    max_total_bytes: usize,
) -> Result<Incoming, AttachmentConvertError> {
    if !attachment.is_inline() {
        return Ok(Incoming::Link {
            name: attachment.name().map(str::to_owned),
            uri: attachment.data().to_owned(),
        });
    }
    let data = attachment.decode_data(*budget).map_err(|e| match e {
        AttachmentDataError::TooLarge { .. } => {
            AttachmentConvertError::TooLarge { index, max: max_total_bytes }
        }
        other => AttachmentConvertError::Malformed { index, reason: other.to_string() },
    })?;
    *budget -= data.bytes.len();
    // An unusable media type is still a file: its bytes are carried as bytes.
    let mime = MimeType::new(&data.mime).unwrap_or_else(|_| MimeType::octet_stream());
    let name = file_name(attachment.name(), index, &mime);
    let file = Attachment::inline(&name, mime, data.bytes)
        .map_err(|e| AttachmentConvertError::Malformed { index, reason: e.to_string() })?;
    Ok(Incoming::File(file))
}

/// The sender's file name when it is usable (no path separator, no control character, at
/// most 255 bytes), else `attachment-<n>.<ext>` from the media type.
fn file_name(given: Option<&str>, index: usize, mime: &MimeType) -> String {
    let usable = |name: &&str| {
        !name.is_empty()
            && name.len() <= dm3_bridge_connector::attachment::MAX_FILE_NAME_BYTES
            && !name.chars().any(|c| c.is_control() || c == '/' || c == '\\')
    };
    match given.filter(usable) {
        Some(name) => name.to_owned(),
        None => format!("attachment-{}.{}", index + 1, extension(mime)),
    }
}

/// A file extension for the common media types the messenger sends.
fn extension(mime: &MimeType) -> &'static str {
    match mime.as_str() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// Neutral attachments as DM3 attachments, in order, within `limits`. Each must be inline.
pub fn to_dm3(
    attachments: &[&Attachment],
    limits: &AttachmentLimits,
) -> Result<Vec<Dm3Attachment>, AttachmentConvertError> {
    check_count(attachments.len(), limits)?;
    let mut budget = limits.max_total_bytes;
    attachments
        .iter()
        .enumerate()
        .map(|(index, attachment)| match attachment.source() {
            AttachmentSource::Inline(bytes) => {
                if bytes.len() > budget {
                    return Err(AttachmentConvertError::TooLarge { index, max: limits.max_total_bytes });
                }
                budget -= bytes.len();
                Ok(Dm3Attachment::inline(attachment.name(), attachment.mime().as_str(), bytes))
            }
            AttachmentSource::Url(url) => {
                Err(AttachmentConvertError::NotDownloaded { index, url: url.to_string() })
            }
        })
        .collect()
}

fn check_count(count: usize, limits: &AttachmentLimits) -> Result<(), AttachmentConvertError> {
    if count > limits.max_count {
        return Err(AttachmentConvertError::TooMany { count, max: limits.max_count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    fn limits(max_count: usize, max_total_bytes: usize) -> AttachmentLimits {
        AttachmentLimits { max_count, max_total_bytes }
    }

    fn file(incoming: &Incoming) -> &Attachment {
        match incoming {
            Incoming::File(file) => file,
            Incoming::Link { .. } => panic!("expected a file, got {incoming:?}"),
        }
    }

    #[test]
    fn messenger_attachments_become_files() {
        // The messenger's UI object (P17): extra fields are ignored, the data is decoded.
        let widget = Dm3Attachment::from_value(&json!({
            "id": "x1", "name": "cat.png", "data": "data:image/png;base64,iVBORw==", "isImage": true
        }))
        .unwrap();
        let legacy = Dm3Attachment::from_value(&json!("data:text/plain,hello%20there")).unwrap();
        let converted = from_dm3(&[widget, legacy], &AttachmentLimits::default()).unwrap();
        let png = file(&converted[0]);
        assert_eq!((png.name(), png.mime().as_str(), png.size()), ("cat.png", "image/png", 4));
        let text = file(&converted[1]);
        assert_eq!((text.name(), text.mime().as_str()), ("attachment-2.txt", "text/plain"));
        assert_eq!(text.source(), &AttachmentSource::Inline(b"hello there".to_vec()));
    }

    #[test]
    fn links_are_not_fetched_and_odd_names_or_types_are_replaced() {
        let link = Dm3Attachment::named("doc", "https://example.org/doc.pdf");
        let odd = Dm3Attachment::named("../../etc/passwd", "data:not a type;base64,AA==");
        let converted = from_dm3(&[link, odd], &AttachmentLimits::default()).unwrap();
        assert_eq!(
            converted[0],
            Incoming::Link { name: Some("doc".into()), uri: "https://example.org/doc.pdf".into() }
        );
        let odd = file(&converted[1]);
        assert_eq!((odd.name(), odd.mime().as_str()), ("attachment-2.bin", "application/octet-stream"));
    }

    #[test]
    fn the_budget_covers_all_attachments_of_a_message() {
        let three_bytes = Dm3Attachment::inline("a", "application/octet-stream", b"abc");
        let two = [three_bytes.clone(), three_bytes.clone()];
        assert!(from_dm3(&two, &limits(2, 6)).is_ok());
        assert_eq!(from_dm3(&two, &limits(2, 5)), Err(AttachmentConvertError::TooLarge { index: 1, max: 5 }));
        assert_eq!(
            from_dm3(&two, &limits(1, 100)),
            Err(AttachmentConvertError::TooMany { count: 2, max: 1 })
        );
        let broken = Dm3Attachment::new("data:;base64,***");
        assert!(matches!(
            from_dm3(&[broken], &AttachmentLimits::default()),
            Err(AttachmentConvertError::Malformed { index: 0, .. })
        ));
    }

    #[test]
    fn neutral_files_become_data_uris_and_back() {
        let mime = MimeType::new("image/gif").unwrap();
        let gif = Attachment::inline("a.gif", mime, b"GIF89a".to_vec()).unwrap();
        let dm3 = to_dm3(&[&gif], &AttachmentLimits::default()).unwrap();
        assert_eq!(dm3[0].to_value(), json!({"name": "a.gif", "data": "data:image/gif;base64,R0lGODlh"}));
        let back = from_dm3(&dm3, &AttachmentLimits::default()).unwrap();
        assert_eq!(file(&back[0]), &gif);
        assert_eq!(
            to_dm3(&[&gif], &limits(1, 5)),
            Err(AttachmentConvertError::TooLarge { index: 0, max: 5 })
        );
        let remote = Attachment::remote(
            "b.gif",
            MimeType::new("image/gif").unwrap(),
            url::Url::parse("mxc://example.org/abc").unwrap(),
            6,
        )
        .unwrap();
        assert!(matches!(
            to_dm3(&[&remote], &AttachmentLimits::default()),
            Err(AttachmentConvertError::NotDownloaded { index: 0, .. })
        ));
    }
}
