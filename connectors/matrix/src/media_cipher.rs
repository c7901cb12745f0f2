//! Files in end-to-end encrypted rooms: Matrix's attachment encryption, version 2 (client-server
//! API, "Sending encrypted attachments"). A Megolm-encrypted event carries only a file's
//! address and key; the bytes on the media repository are AES-256-CTR ciphertext, so the
//! homeserver stores nothing readable.
//!
//! - **Sealing** makes a fresh random key and counter block per file (the counter's low 64
//!   bits zero, as the specification asks, so it cannot wrap) and hashes the *ciphertext*
//!   with SHA-256, the hash every client checks before it decrypts.
//! - **Opening** refuses before decrypting anything that is not version 2 with a SHA-256
//!   hash, and any ciphertext whose hash differs (compared in constant time): a file swapped
//!   on the media repository, or cut short by a bounded download, is an error, never
//!   plaintext that merely looks wrong.
//! - The counter runs over the low 64 bits (`Ctr64BE`), as WebCrypto's `length: 64` does in
//!   Element and the other web clients, so a sender's odd counter block decrypts as they
//!   encrypted it.
//!
//! The key never leaves [`V2EncryptedFileInfo`], whose `Debug` hides it and whose `Drop`
//! wipes it.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use ruma::OwnedMxcUri;
use ruma::events::room::{
    EncryptedFile, EncryptedFileHash, EncryptedFileHashAlgorithm, EncryptedFileHashes, EncryptedFileInfo,
    V2EncryptedFileInfo,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Aes256Ctr64 = ctr::Ctr64BE<Aes256>;

/// Why an encrypted file could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaCipherError {
    /// The operating system gave no randomness for a key.
    #[error("no randomness for a file key: {0}")]
    Random(String),
    /// The sender used a version of attachment encryption other than `v2`.
    #[error("the file is encrypted with attachment encryption `{0}`; only `v2` is supported")]
    UnsupportedVersion(String),
    /// The event names no SHA-256 hash of the ciphertext, so the file cannot be checked.
    #[error("the encrypted file carries no SHA-256 hash to check it against")]
    NoHash,
    /// The downloaded bytes are not the file the event describes.
    #[error("the encrypted file's bytes do not match its hash")]
    HashMismatch,
}

/// A file sealed for upload: its ciphertext, and what the event must carry to open it.
pub struct SealedFile {
    /// The bytes to upload, as `application/octet-stream`: the real type travels encrypted.
    pub ciphertext: Vec<u8>,
    info: V2EncryptedFileInfo,
    sha256: [u8; 32],
}

impl SealedFile {
    /// The event's `file` object, once the ciphertext is on the homeserver at `url`.
    pub fn into_encrypted_file(self, url: OwnedMxcUri) -> EncryptedFile {
        EncryptedFile::new(url, self.info.into(), EncryptedFileHashes::with_sha256(self.sha256))
    }
}

/// Encrypts `plaintext` under a new random key and counter block.
pub fn seal(mut plaintext: Vec<u8>) -> Result<SealedFile, MediaCipherError> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    getrandom::fill(key.as_mut()).map_err(|e| MediaCipherError::Random(e.to_string()))?;
    getrandom::fill(&mut iv[..8]).map_err(|e| MediaCipherError::Random(e.to_string()))?;
    Aes256Ctr64::new(&(*key).into(), &iv.into()).apply_keystream(&mut plaintext);
    let sha256: [u8; 32] = Sha256::digest(&plaintext).into();
    Ok(SealedFile { ciphertext: plaintext, info: V2EncryptedFileInfo::encode(*key, iv), sha256 })
}

/// Decrypts `ciphertext`, the bytes downloaded from `file.url`, after checking its hash.
pub fn open(file: &EncryptedFile, mut ciphertext: Vec<u8>) -> Result<Vec<u8>, MediaCipherError> {
    let EncryptedFileInfo::V2(info) = &file.info else {
        return Err(MediaCipherError::UnsupportedVersion(file.info.version().to_owned()));
    };
    let expected = file
        .hashes
        .get(&EncryptedFileHashAlgorithm::Sha256)
        .and_then(|hash| match hash {
            EncryptedFileHash::Sha256(bytes) => Some(bytes.as_bytes()),
            _ => None,
        })
        .ok_or(MediaCipherError::NoHash)?;
    let actual: [u8; 32] = Sha256::digest(&ciphertext).into();
    if !bool::from(actual.ct_eq(expected)) {
        return Err(MediaCipherError::HashMismatch);
    }
    // The types hold exactly 32 and 16 bytes (ruma refuses other lengths when it parses).
    let cipher = Aes256Ctr64::new_from_slices(info.k.as_bytes(), info.iv.as_bytes())
        .map_err(|_| MediaCipherError::UnsupportedVersion("v2 with a malformed key".to_owned()))?;
    let mut cipher = cipher;
    cipher.apply_keystream(&mut ciphertext);
    Ok(ciphertext)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use base64::Engine as _;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn url() -> OwnedMxcUri {
        OwnedMxcUri::from("mxc://localhost/sealed")
    }

    fn file(json: serde_json::Value) -> EncryptedFile {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_sealed_file_is_written_as_the_specification_shows_and_opens_again() {
        let sealed = seal(b"the quarterly report".to_vec()).unwrap();
        let ciphertext = sealed.ciphertext.clone();
        assert_ne!(ciphertext, b"the quarterly report", "the homeserver gets ciphertext");
        let file = sealed.into_encrypted_file(url());
        let written = serde_json::to_value(&file).unwrap();
        assert_eq!(written["v"], "v2");
        assert_eq!(written["url"], "mxc://localhost/sealed");
        assert_eq!(written["key"]["alg"], "A256CTR");
        assert_eq!(written["key"]["kty"], "oct");
        assert_eq!(written["key"]["ext"], true);
        let mut key_ops: Vec<&str> =
            written["key"]["key_ops"].as_array().unwrap().iter().map(|op| op.as_str().unwrap()).collect();
        key_ops.sort_unstable();
        assert_eq!(key_ops, ["decrypt", "encrypt"]);
        assert_eq!(written["key"]["k"].as_str().unwrap().len(), 43, "32 bytes, unpadded base64url");
        let iv = written["iv"].as_str().unwrap();
        assert!(iv.ends_with("AAAAAAAAAAA"), "the counter's low 64 bits are zero: {iv}");
        assert_eq!(written["hashes"]["sha256"].as_str().unwrap().len(), 43);
        // What a client receives parses back and opens.
        let received = self::file(written);
        assert_eq!(open(&received, ciphertext).unwrap(), b"the quarterly report");
    }

    #[test]
    fn each_file_gets_its_own_key_and_counter() {
        let a = serde_json::to_value(seal(vec![0; 16]).unwrap().into_encrypted_file(url())).unwrap();
        let b = serde_json::to_value(seal(vec![0; 16]).unwrap().into_encrypted_file(url())).unwrap();
        assert_ne!(a["key"]["k"], b["key"]["k"]);
        assert_ne!(a["iv"], b["iv"]);
    }

    #[test]
    fn a_file_sealed_by_an_independent_aes_ctr_opens() {
        // Made with Python's `cryptography` (the Synapse venv's), AES-256 in CTR mode with a
        // 128-bit counter; key 00..1f, counter block 1032547698badcfe followed by 8 zero bytes.
        let sealed = file(json!({
            "url": "mxc://localhost/vector", "v": "v2",
            "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR",
                    "k": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "ext": true},
            "iv": "EDJUdpi63P4AAAAAAAAAAA",
            "hashes": {"sha256": "gxObvpFcg5a45mMN0XzEbWTOYOZRZu6tdl5J2ubz2po"},
        }));
        let ciphertext = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode("FkyBAmK5QkBelNtUIRe+1IGbXNcgI8NqOXGREL/jsUTTeDCpBFmZ1SCRonf4AN7oKiiJeVeWy/GXZhRzNw")
            .unwrap();
        assert_eq!(
            open(&sealed, ciphertext).unwrap(),
            b"Hello from an independent AES-CTR: the bridge must open this."
        );
    }

    #[test]
    fn an_empty_file_opens_against_the_hash_of_no_bytes() {
        // The empty file with an all-ones key: its hash is SHA-256 of no bytes.
        let empty = file(json!({
            "url": "mxc://localhost/empty", "v": "v2",
            "key": {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR",
                    "k": "__________________________________________8", "ext": true},
            "iv": "/////////////////////w",
            "hashes": {"sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
        }));
        assert_eq!(open(&empty, vec![]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn altered_cut_or_unchecked_files_are_refused() {
        let sealed = seal(b"pay 10 to alice".to_vec()).unwrap();
        let mut ciphertext = sealed.ciphertext.clone();
        let file = sealed.into_encrypted_file(url());
        ciphertext[0] ^= 1;
        assert_eq!(open(&file, ciphertext.clone()), Err(MediaCipherError::HashMismatch));
        ciphertext[0] ^= 1;
        ciphertext.pop();
        assert_eq!(open(&file, ciphertext), Err(MediaCipherError::HashMismatch), "a download cut short");
        let mut written = serde_json::to_value(&file).unwrap();
        written["hashes"] = json!({"sha512": "AAAA"});
        assert_eq!(open(&self::file(written.clone()), vec![]), Err(MediaCipherError::NoHash));
        written["v"] = json!("v1");
        assert!(matches!(
            open(&self::file(written), vec![]),
            Err(MediaCipherError::UnsupportedVersion(v)) if v == "v1"
        ));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let file = seal(vec![1, 2, 3]).unwrap().into_encrypted_file(url());
        let k = serde_json::to_value(&file).unwrap()["key"]["k"].as_str().unwrap().to_owned();
        assert!(!format!("{file:?}").contains(&k));
    }

    proptest! {
        #[test]
        fn any_file_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let sealed = seal(bytes.clone()).unwrap();
            let ciphertext = sealed.ciphertext.clone();
            prop_assert_eq!(ciphertext.len(), bytes.len());
            let file = sealed.into_encrypted_file(url());
            prop_assert_eq!(open(&file, ciphertext).unwrap(), bytes);
        }
    }
}
