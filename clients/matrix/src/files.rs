//! Files as an encrypting client sends them: sealed with matrix-sdk's own attachment
//! encryption (matrix-sdk-crypto's `AttachmentEncryptor`) before the upload, and opened after
//! the download. The `file` object crosses this crate's seam as JSON, so a test can hand what
//! matrix-sdk made to the bridge's code and the other way round without either side's ruma.

use std::io::Cursor;

use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::events::room::{EncryptedFile, MediaSource};
use serde_json::Value;

use crate::error::ClientError;
use crate::user::MatrixUser;

impl MatrixUser {
    /// Encrypts `bytes` as this client does for an encrypted room, uploads the ciphertext and
    /// answers the event's `file` object (url, key, counter block, hash).
    pub async fn upload_sealed_file(&self, bytes: &[u8]) -> Result<Value, ClientError> {
        let mut reader = Cursor::new(bytes);
        let file = self.client().upload_encrypted_file(&mut reader).await?;
        serde_json::to_value(&file).map_err(|e| ClientError::FileObject(e.to_string()))
    }

    /// Downloads the file a `file` object names and opens it as this client does: its hash
    /// checked, then decrypted.
    pub async fn open_sealed_file(&self, file: &Value) -> Result<Vec<u8>, ClientError> {
        let file: EncryptedFile =
            serde_json::from_value(file.clone()).map_err(|e| ClientError::FileObject(e.to_string()))?;
        let request = MediaRequestParameters {
            source: MediaSource::Encrypted(Box::new(file)),
            format: MediaFormat::File,
        };
        Ok(self.client().media().get_media_content(&request, false).await?)
    }
}
