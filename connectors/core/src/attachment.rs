//! Attachments: a file with a name, a media type and a size, carried inline or by URL.
//!
//! Both sources exist because the two sides differ: a DM3 attachment is a `data:` URI inside
//! the message (bytes in hand), while a Matrix or Telegram file lives on the network's media
//! store and is referred to by URL (`mxc://…`, a Bot API file path). A connector that needs
//! bytes downloads them through [`crate::MediaHandling`]; one that needs a URL uploads them.
//!
//! The size is part of the model, not computed late, so the engine can refuse an oversized
//! file against [`crate::MediaLimits`] before moving a byte of it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// Longest file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Why an attachment or a media type is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// The media type is not `type/subtype` of RFC 6838 restricted names.
    #[error("`{0}` is not a media type of the form type/subtype")]
    BadMimeType(String),
    /// The file name is empty, too long, or holds a control character or a path separator.
    #[error("`{0}` is not a usable file name")]
    BadFileName(String),
}

/// A media type, `type/subtype`, lowercased (parameters such as `; charset=` are not kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MimeType(String);

impl MimeType {
    /// Validates and lowercases `mime`.
    pub fn new(mime: &str) -> Result<Self, AttachmentError> {
        let bad = || AttachmentError::BadMimeType(mime.to_owned());
        let (kind, subtype) = mime.split_once('/').ok_or_else(bad)?;
        if !restricted_name(kind) || !restricted_name(subtype) {
            return Err(bad());
        }
        Ok(Self(mime.to_ascii_lowercase()))
    }

    /// `application/octet-stream`, for bytes of unknown kind.
    pub fn octet_stream() -> Self {
        Self("application/octet-stream".to_owned())
    }

    /// The media type, lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an `image/*` type (networks show those inline).
    pub fn is_image(&self) -> bool {
        self.0.starts_with("image/")
    }
}

/// RFC 6838 §4.2 `restricted-name`.
fn restricted_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

impl TryFrom<String> for MimeType {
    type Error = AttachmentError;
    fn try_from(mime: String) -> Result<Self, AttachmentError> {
        Self::new(&mime)
    }
}

impl From<MimeType> for String {
    fn from(mime: MimeType) -> String {
        mime.0
    }
}

impl fmt::Display for MimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the bytes of an attachment are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentSource {
    /// In hand (serialized as standard base64).
    Inline(#[serde(serialize_with = "to_base64", deserialize_with = "from_base64")] Vec<u8>),
    /// On a media store, to be fetched by whoever needs the bytes.
    Url(Url),
}

fn to_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

/// A file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    name: String,
    mime: MimeType,
    size: u64,
    source: AttachmentSource,
}

impl Attachment {
    /// A file whose bytes are in hand; its size is their length.
    pub fn inline(name: &str, mime: MimeType, bytes: Vec<u8>) -> Result<Self, AttachmentError> {
        check_file_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            mime,
            size: bytes.len() as u64,
            source: AttachmentSource::Inline(bytes),
        })
    }

    /// A file on a media store, of the size the network declared.
    pub fn remote(name: &str, mime: MimeType, url: Url, size: u64) -> Result<Self, AttachmentError> {
        check_file_name(name)?;
        Ok(Self { name: name.to_owned(), mime, size, source: AttachmentSource::Url(url) })
    }

    /// The file name shown to users.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The media type.
    pub fn mime(&self) -> &MimeType {
        &self.mime
    }

    /// The size in bytes (exact when inline, as declared when remote).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the bytes are.
    pub fn source(&self) -> &AttachmentSource {
        &self.source
    }
}

fn check_file_name(name: &str) -> Result<(), AttachmentError> {
    let bad = name.is_empty()
        || name.len() > MAX_FILE_NAME_BYTES
        || name.chars().any(|c| c.is_control() || c == '/' || c == '\\');
    if bad { Err(AttachmentError::BadFileName(name.to_owned())) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn mime_types() {
        assert_eq!(MimeType::new("Image/PNG").unwrap().as_str(), "image/png");
        assert!(MimeType::new("image/svg+xml").unwrap().is_image());
        assert!(MimeType::new("text").is_err());
        assert!(MimeType::new("text/").is_err());
        assert!(MimeType::new("text/plain; charset=utf-8").is_err());
        assert!(MimeType::new("/plain").is_err());
    }

    #[test]
    fn inline_size_is_the_byte_count_and_serde_round_trips() {
        let a = Attachment::inline("a.txt", MimeType::new("text/plain").unwrap(), b"hello".to_vec()).unwrap();
        assert_eq!(a.size(), 5);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["source"]["inline"], "aGVsbG8=");
        assert_eq!(serde_json::from_value::<Attachment>(json).unwrap(), a);
    }

    #[test]
    fn file_names_are_checked() {
        let mime = MimeType::octet_stream();
        assert!(Attachment::inline("", mime.clone(), vec![]).is_err());
        assert!(Attachment::inline("../etc/passwd", mime.clone(), vec![]).is_err());
        assert!(Attachment::inline("a\nb", mime.clone(), vec![]).is_err());
        let url = Url::parse("mxc://example.org/abc").unwrap();
        assert_eq!(Attachment::remote("photo.jpg", mime, url, 10).unwrap().size(), 10);
    }

    proptest! {
        #[test]
        fn mime_parser_never_accepts_without_a_slash(s in "[^/]{0,40}") {
            prop_assert!(MimeType::new(&s).is_err());
        }

        #[test]
        fn mime_parser_accepts_restricted_names(t in "[a-z0-9][a-z0-9.+-]{0,20}", st in "[a-zA-Z0-9][a-zA-Z0-9.+_-]{0,20}") {
            let mime = MimeType::new(&format!("{t}/{st}")).unwrap();
            prop_assert_eq!(mime.as_str(), format!("{t}/{st}").to_ascii_lowercase());
        }
    }
}
