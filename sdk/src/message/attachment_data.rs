//! The bytes inside an attachment's `data:` URI (RFC 2397), and attachments made from bytes.
//!
//! The messenger attaches files as `FileReader.readAsDataURL` writes them,
//! `data:<mime>;base64,<bytes>` (docs/protocol.md §5.1); the spec also allows other URIs (https,
//! ipfs), which have no bytes inside and are not decoded here. Reading is bounded by the
//! caller's limit, checked on the encoded length before anything is decoded and on the exact
//! decoded length after; the media type is reported as written (lowercased, parameters
//! dropped; `text/plain` when absent, as RFC 2397 says) and validated by whoever uses it.

use super::Attachment;
use crate::data_uri::{decode_base64, is_data_uri, percent_decode};
use crate::encoding::b64_encode;

/// The media type a `data:` URI without one has (RFC 2397 §2).
pub const DEFAULT_MIME: &str = "text/plain";

/// Why an attachment has no bytes to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentDataError {
    #[error("the attachment is a link, not a data: URI")]
    NotInline,
    #[error("the attachment's data: URI has no `,` before its payload")]
    MissingComma,
    #[error("the attachment is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("the attachment's base64 payload is invalid")]
    Base64,
    #[error("the attachment's percent-encoded payload is invalid")]
    PercentEncoding,
}

/// The decoded content of a `data:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentData {
    /// `type/subtype` as written, lowercased, without parameters.
    pub mime: String,
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// `{name, data: "data:<mime>;base64,<bytes>"}`, the shape the schema describes.
    pub fn inline(name: impl Into<String>, mime: &str, bytes: &[u8]) -> Self {
        Self::named(name, format!("data:{mime};base64,{}", b64_encode(bytes)))
    }

    /// Whether the attachment carries its bytes (a `data:` URI) rather than a link.
    pub fn is_inline(&self) -> bool {
        is_data_uri(self.data())
    }

    /// The bytes of a `data:` attachment, at most `max_bytes` of them.
    pub fn decode_data(&self, max_bytes: usize) -> Result<AttachmentData, AttachmentDataError> {
        decode_data_uri(self.data(), max_bytes)
    }
}

/// Decodes `data:[<mime>][;params][;base64],<payload>` into at most `max_bytes` bytes.
pub fn decode_data_uri(uri: &str, max_bytes: usize) -> Result<AttachmentData, AttachmentDataError> {
    if !is_data_uri(uri) {
        return Err(AttachmentDataError::NotInline);
    }
    let rest = uri.get(5..).ok_or(AttachmentDataError::NotInline)?;
    let (header, payload) = rest.split_once(',').ok_or(AttachmentDataError::MissingComma)?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or_default().trim().to_ascii_lowercase();
    let base64 = params.any(|param| param.trim().eq_ignore_ascii_case("base64"));
    let too_large = AttachmentDataError::TooLarge { max: max_bytes };
    // Lower bounds of the decoded size, so a huge payload is refused before decoding it:
    // base64 gives 3 bytes per 4 characters (less a little padding or whitespace), a
    // percent-encoded payload at least 1 byte per 3 characters.
    let smallest = if base64 { (payload.len() / 4 * 3).saturating_sub(4) } else { payload.len() / 3 };
    if smallest > max_bytes {
        return Err(too_large);
    }
    let bytes = if base64 {
        decode_base64(payload).map_err(|_| AttachmentDataError::Base64)?
    } else {
        percent_decode(payload).ok_or(AttachmentDataError::PercentEncoding)?
    };
    if bytes.len() > max_bytes {
        return Err(too_large);
    }
    let mime = if mime.is_empty() { DEFAULT_MIME.to_owned() } else { mime };
    Ok(AttachmentData { mime, bytes })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn inline_attachments_round_trip() {
        let attachment = Attachment::inline("pic.png", "image/png", &[0x89, b'P', b'N', b'G', 0]);
        assert_eq!(attachment.name(), Some("pic.png"));
        assert_eq!(attachment.data(), "data:image/png;base64,iVBORwA=");
        assert!(attachment.is_inline());
        let data = attachment.decode_data(5).unwrap();
        assert_eq!(data, AttachmentData { mime: "image/png".into(), bytes: vec![0x89, b'P', b'N', b'G', 0] });
        assert_eq!(attachment.decode_data(4), Err(AttachmentDataError::TooLarge { max: 4 }));
    }

    #[test]
    fn the_forms_of_rfc_2397() {
        let read = |uri: &str| decode_data_uri(uri, 100).unwrap();
        assert_eq!(
            read("data:,A%20brief%20note"),
            AttachmentData { mime: "text/plain".into(), bytes: b"A brief note".to_vec() }
        );
        assert_eq!(read("data:Text/HTML;charset=utf-8,<b>x</b>").mime, "text/html");
        assert_eq!(read("DATA:image/gif;name=a.gif;BASE64,R0lG").bytes, b"GIF".to_vec());
        assert_eq!(read("data:application/octet-stream;base64,R0l%0AG").bytes, b"GIF".to_vec());
        assert_eq!(decode_data_uri("https://example.org/a.png", 100), Err(AttachmentDataError::NotInline));
        assert_eq!(decode_data_uri("data:image/png;base64", 100), Err(AttachmentDataError::MissingComma));
        assert_eq!(decode_data_uri("data:;base64,***", 100), Err(AttachmentDataError::Base64));
        assert_eq!(decode_data_uri("data:,%zz", 100), Err(AttachmentDataError::PercentEncoding));
        assert!(!Attachment::new("ipfs://cid").is_inline());
    }

    #[test]
    fn oversized_payloads_are_refused_before_decoding() {
        let uri = format!("data:;base64,{}", "A".repeat(4_000));
        assert_eq!(decode_data_uri(&uri, 1_000), Err(AttachmentDataError::TooLarge { max: 1_000 }));
        let uri = format!("data:,{}", "%41".repeat(400));
        assert_eq!(decode_data_uri(&uri, 100), Err(AttachmentDataError::TooLarge { max: 100 }));
    }

    proptest! {
        #[test]
        fn bytes_survive_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let attachment = Attachment::inline("f", "application/octet-stream", &bytes);
            prop_assert_eq!(attachment.decode_data(bytes.len()).unwrap().bytes, bytes);
        }

        #[test]
        fn never_panics_and_respects_the_limit(uri in "data:[a-z/;=,%A-Za-z0-9+]{0,60}", max in 0usize..40) {
            if let Ok(data) = decode_data_uri(&uri, max) {
                prop_assert!(data.bytes.len() <= max);
            }
        }
    }
}
