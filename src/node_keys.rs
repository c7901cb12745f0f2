//! The node's own keys: X25519 to open `deliveryInformation`, Ed25519 to sign postmarks.
//!
//! docs/protocol.md §3.2: a delivery service has one X25519 pair (senders encrypt the delivery
//! information to it) and one Ed25519 pair (it signs the postmark of every stored envelope).
//! The reference DS takes them from environment variables in clear; we generate them at
//! `init` and keep them only sealed under the master key ([`crate::vault`]).
//!
//! Plaintext layout inside the seal, 96 bytes: the X25519 private key (32) followed by the
//! Ed25519 key in libsodium's format, seed ‖ public key (64), which is what the reference
//! libraries call the signing private key. On opening, the public half is checked against the
//! seed, so a blob that decrypts but holds inconsistent keys is refused rather than used.
//!
//! On disk the sealed blob is one line of base64, written with mode 0600.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::vault::{MasterKey, SealError};

/// The seal label: binds the blob to this purpose.
const LABEL: &str = "node-keys";
const X25519_LEN: usize = 32;
const ED25519_KEYPAIR_LEN: usize = 64;

/// The node's X25519 and Ed25519 keys. `Debug` shows the public keys only; the private keys
/// are zeroized on drop by their own types.
pub struct NodeKeys {
    encryption: StaticSecret,
    signing: SigningKey,
}

/// Why the node keys could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeysError {
    #[error(
        "master key does not open the sealed node keys: wrong key file? ({} was sealed under another master key, or modified)",
        path.display()
    )]
    WrongMasterKey { path: PathBuf },
    #[error("the sealed node keys in {} are unusable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the node keys file {} does not exist (run `dm3-bridge init`)", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read the node keys file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the node keys file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot seal the node keys: {0}")]
    Seal(SealError),
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
}

impl NodeKeys {
    /// Fresh random keys.
    pub fn generate() -> Result<Self, NodeKeysError> {
        let mut x = Zeroizing::new([0u8; X25519_LEN]);
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(x.as_mut()).map_err(NodeKeysError::Random)?;
        getrandom::fill(seed.as_mut()).map_err(NodeKeysError::Random)?;
        Ok(Self { encryption: StaticSecret::from(*x), signing: SigningKey::from_bytes(&seed) })
    }

    /// The X25519 secret that opens `deliveryInformation`.
    pub fn encryption_secret(&self) -> &StaticSecret {
        &self.encryption
    }

    /// The X25519 public key, for the delivery-service profile (`publicEncryptionKey`).
    pub fn encryption_public_key(&self) -> PublicKey {
        PublicKey::from(&self.encryption)
    }

    /// The Ed25519 key that signs postmarks.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The Ed25519 public key, for the delivery-service profile (`publicSigningKey`).
    pub fn signing_public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The Ed25519 key in libsodium's 64-byte format (seed ‖ public key).
    pub fn signing_keypair_bytes(&self) -> Zeroizing<[u8; ED25519_KEYPAIR_LEN]> {
        Zeroizing::new(self.signing.to_keypair_bytes())
    }

    /// Seals both keys under `master`.
    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>, NodeKeysError> {
        let mut plain = Zeroizing::new([0u8; X25519_LEN + ED25519_KEYPAIR_LEN]);
        plain[..X25519_LEN].copy_from_slice(self.encryption.as_bytes());
        plain[X25519_LEN..].copy_from_slice(self.signing_keypair_bytes().as_ref());
        master.seal(LABEL, plain.as_ref()).map_err(NodeKeysError::Seal)
    }

    /// Opens keys sealed by [`NodeKeys::seal`]; `path` only names the source in errors.
    pub fn open(master: &MasterKey, sealed: &[u8], path: &Path) -> Result<Self, NodeKeysError> {
        let corrupt = |reason: String| NodeKeysError::Corrupt { path: path.to_owned(), reason };
        let plain = master.open(LABEL, sealed).map_err(|e| match e {
            SealError::WrongKeyOrTampered | SealError::KeyVersion { .. } => {
                NodeKeysError::WrongMasterKey { path: path.to_owned() }
            }
            other => corrupt(other.to_string()),
        })?;
        let bytes = plain.expose();
        if bytes.len() != X25519_LEN + ED25519_KEYPAIR_LEN {
            return Err(corrupt(format!("{} bytes instead of 96", bytes.len())));
        }
        let mut x = Zeroizing::new([0u8; X25519_LEN]);
        x.copy_from_slice(&bytes[..X25519_LEN]);
        let mut pair = Zeroizing::new([0u8; ED25519_KEYPAIR_LEN]);
        pair.copy_from_slice(&bytes[X25519_LEN..]);
        // from_keypair_bytes checks that the public half belongs to the seed.
        let signing = SigningKey::from_keypair_bytes(&pair)
            .map_err(|_| corrupt("the Ed25519 public key does not match its seed".to_owned()))?;
        Ok(Self { encryption: StaticSecret::from(*x), signing })
    }

    /// Writes the sealed keys to a new file (mode 0600); never replaces an existing file.
    pub fn write_new_file(&self, master: &MasterKey, path: &Path) -> Result<(), NodeKeysError> {
        let mut line = STANDARD.encode(self.seal(master)?);
        line.push('\n');
        crate::new_file::write_new_file(path, line.as_bytes(), 0o600)
            .map_err(|source| NodeKeysError::Write { path: path.to_owned(), source })
    }

    /// Reads and opens a file written by [`NodeKeys::write_new_file`].
    pub fn read_file(master: &MasterKey, path: &Path) -> Result<Self, NodeKeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NodeKeysError::Missing { path: path.to_owned() }
            } else {
                NodeKeysError::Read { path: path.to_owned(), source }
            }
        })?;
        let sealed = STANDARD
            .decode(text.trim())
            .map_err(|_| NodeKeysError::Corrupt { path: path.to_owned(), reason: "not base64".to_owned() })?;
        Self::open(master, &sealed, path)
    }
}

impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKeys")
            .field("encryption_public_key", &STANDARD.encode(self.encryption_public_key().as_bytes()))
            .field("signing_public_key", &STANDARD.encode(self.signing_public_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seal_round_trip_keeps_both_keys() {
        let master = MasterKey::generate().unwrap();
        let keys = NodeKeys::generate().unwrap();
        let sealed = keys.seal(&master).unwrap();
        let again = NodeKeys::open(&master, &sealed, Path::new("x")).unwrap();
        assert_eq!(again.encryption_public_key().as_bytes(), keys.encryption_public_key().as_bytes());
        assert_eq!(*again.signing_keypair_bytes(), *keys.signing_keypair_bytes());
    }

    #[test]
    fn libsodium_format_is_seed_then_public_key() {
        let keys = NodeKeys::generate().unwrap();
        let pair = keys.signing_keypair_bytes();
        assert_eq!(&pair[32..], keys.signing_public_key().as_bytes());
    }

    #[test]
    fn wrong_master_key_names_the_problem() {
        let keys = NodeKeys::generate().unwrap();
        let sealed = keys.seal(&MasterKey::generate().unwrap()).unwrap();
        let err = NodeKeys::open(&MasterKey::generate().unwrap(), &sealed, Path::new("k")).unwrap_err();
        assert!(
            err.to_string().starts_with("master key does not open the sealed node keys: wrong key file?"),
            "{err}"
        );
    }

    #[test]
    fn debug_shows_public_keys_only() {
        let keys = NodeKeys::generate().unwrap();
        let shown = format!("{keys:?}");
        let secret = STANDARD.encode(keys.encryption_secret().as_bytes());
        assert!(!shown.contains(&secret));
        assert!(shown.contains(&STANDARD.encode(keys.encryption_public_key().as_bytes())));
    }
}
