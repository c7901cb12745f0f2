//! The Telegram form of a gateway document: a document whose file is the gateway document's
//! canonical JSON, captioned with the fallback line (`docs/gateway.md` section 1.3).
//!
//! A reader looks at the file's bytes only: the file name and MIME type are the sender's to
//! choose and prove nothing. The bound is checked on the byte count before anything is parsed,
//! and the connector can check Telegram's `file_size` against [`MAX_FILE_BYTES`] before it
//! downloads at all.

use serde_json::Value;

use super::{FALLBACK_TEXT, GatewayEnvelope, GatewayError, MAX_ENVELOPE_BYTES, bounded};

/// The file name the document is sent under.
pub const FILE_NAME: &str = "dm3-envelope.json";
/// The MIME type the document is sent with.
pub const MIME_TYPE: &str = "application/vnd.dm3.gateway+json";
/// The largest file read or written: the envelope bound and room for the document around it.
pub const MAX_FILE_BYTES: usize = MAX_ENVELOPE_BYTES;

/// A Telegram document that carries one gateway document.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramGatewayDocument(GatewayEnvelope);

impl TelegramGatewayDocument {
    /// The document for `envelope`, refused when its file would be over [`MAX_FILE_BYTES`].
    pub fn encode(envelope: GatewayEnvelope) -> Result<Self, GatewayError> {
        let document = Self(envelope);
        bounded("Telegram document", document.file().len(), MAX_FILE_BYTES)?;
        Ok(document)
    }

    /// Reads a document's file.
    pub fn decode(file: &[u8]) -> Result<Self, GatewayError> {
        bounded("Telegram document", file.len(), MAX_FILE_BYTES)?;
        // serde_json refuses a byte-order mark and any text around the value but whitespace.
        let document: Value = serde_json::from_slice(file).map_err(|_| GatewayError::NotJson)?;
        GatewayEnvelope::from_document(&document, MAX_ENVELOPE_BYTES).map(Self)
    }

    /// The file's content: the gateway document as canonical JSON.
    pub fn file(&self) -> Vec<u8> {
        self.0.to_document_text().into_bytes()
    }

    pub fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    pub fn mime_type(&self) -> &'static str {
        MIME_TYPE
    }

    /// What a client without DM3 support shows under the file.
    pub fn caption(&self) -> &'static str {
        FALLBACK_TEXT
    }

    pub fn envelope(&self) -> &GatewayEnvelope {
        &self.0
    }

    pub fn into_envelope(self) -> GatewayEnvelope {
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::gateway_envelope::tests::sealed;

    #[test]
    fn the_file_round_trips() {
        let (envelope, ds) = sealed();
        let carried = GatewayEnvelope::from_envelope(&envelope, ds).unwrap();
        let document = TelegramGatewayDocument::encode(carried.clone()).unwrap();
        assert!(document.caption().encode_utf16().count() <= 1024);
        assert_eq!(TelegramGatewayDocument::decode(&document.file()).unwrap().into_envelope(), carried);
    }

    #[test]
    fn what_is_not_a_document_file_is_refused() {
        let (envelope, ds) = sealed();
        let file = TelegramGatewayDocument::encode(GatewayEnvelope::from_envelope(&envelope, ds).unwrap())
            .unwrap()
            .file();
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(&file);
        assert_eq!(TelegramGatewayDocument::decode(&with_bom), Err(GatewayError::NotJson));
        assert_eq!(TelegramGatewayDocument::decode(b"\xff"), Err(GatewayError::NotJson));
        let envelope_alone = envelope.to_json();
        assert_eq!(
            TelegramGatewayDocument::decode(envelope_alone.as_bytes()),
            Err(GatewayError::Field("version"))
        );
        let huge = json!({"version": 1, "x": "y".repeat(MAX_FILE_BYTES)}).to_string();
        assert!(matches!(
            TelegramGatewayDocument::decode(huge.as_bytes()),
            Err(GatewayError::TooLarge { what: "Telegram document", .. })
        ));
    }
}
