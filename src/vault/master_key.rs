//! The master key: 32 random bytes that seal every other secret of the node.
//!
//! It comes from exactly one place, in this order:
//! 1. `DM3_BRIDGE_MASTER_KEY` (base64), for deployments that inject secrets through the
//!    environment (systemd credentials, Kubernetes secrets);
//! 2. the file `keys.master_key_file` (default `master.key` in the data directory), one line
//!    of base64, written by `init` with mode 0600.
//!
//! If the variable is set but malformed we stop: silently falling back to the file could open
//! the data with a key the operator did not mean. A key file readable by group or others is
//! accepted but logged as a warning (containers often mount secrets 0644).
//!
//! The key carries a version, stored in every sealed blob, so that keys can be rotated later
//! (old blobs name the key that opens them). Today there is one key, version 1.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::config::Config;
use crate::config::env::MASTER_KEY_VAR;

/// The sealing key. `Debug` shows only the version.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    key: [u8; MasterKey::LEN],
    #[zeroize(skip)]
    version: u32,
}

/// Where the master key was found; safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Environment,
    File(PathBuf),
}

impl fmt::Display for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeySource::Environment => write!(f, "environment variable {MASTER_KEY_VAR}"),
            MasterKeySource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// Why no usable master key was found.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "no master key: {MASTER_KEY_VAR} is not set and {} does not exist (run `dm3-bridge init`, or set {MASTER_KEY_VAR})",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read the master key file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("the master key from the {source_name} is not base64 of exactly 32 bytes")]
    Malformed { source_name: String },
    #[error("cannot write the master key file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
}

impl MasterKey {
    /// Key length in bytes (ChaCha20-Poly1305).
    pub const LEN: usize = 32;
    /// The version given to keys from a file or the environment.
    pub const CURRENT_VERSION: u32 = 1;

    /// A fresh random key.
    pub fn generate() -> Result<Self, MasterKeyError> {
        let mut key = [0u8; Self::LEN];
        getrandom::fill(&mut key).map_err(MasterKeyError::Random)?;
        Ok(Self { key, version: Self::CURRENT_VERSION })
    }

    /// Parses base64 of 32 bytes; surrounding whitespace (a trailing newline) is ignored.
    /// `source_name` only goes into the error message.
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, MasterKeyError> {
        let malformed = || MasterKeyError::Malformed { source_name: source_name.to_owned() };
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| malformed())?);
        let key: [u8; Self::LEN] = bytes.as_slice().try_into().map_err(|_| malformed())?;
        Ok(Self { key, version: Self::CURRENT_VERSION })
    }

    /// The key as base64, the format of the file and of the environment variable.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key))
    }

    /// The version stored in blobs sealed with this key.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn bytes(&self) -> &[u8; Self::LEN] {
        &self.key
    }

    /// Reads a key file written by [`MasterKey::write_new_file`].
    pub fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MasterKeyError::Missing { path: path.to_owned() });
            }
            Err(source) => {
                return Err(MasterKeyError::Unreadable { path: path.to_owned(), source });
            }
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the master key file is readable by group or others; chmod 600 it"
            );
        }
        Self::from_base64(&text, &format!("file {}", path.display()))
    }

    /// Writes the key to a new file with mode 0600; never replaces an existing file.
    pub fn write_new_file(&self, path: &Path) -> Result<(), MasterKeyError> {
        let mut line = self.to_base64();
        line.push('\n');
        crate::new_file::write_new_file(path, line.as_bytes(), 0o600)
            .map_err(|source| MasterKeyError::Write { path: path.to_owned(), source })
    }

    /// The key the node runs with: `DM3_BRIDGE_MASTER_KEY` from `env` if set, else the file
    /// named by `keys.master_key_file`.
    pub fn resolve(
        config: &Config,
        env: &[(String, String)],
    ) -> Result<(Self, MasterKeySource), MasterKeyError> {
        if let Some(value) = env_value(env) {
            let key = Self::from_base64(value, &format!("environment variable {MASTER_KEY_VAR}"))?;
            return Ok((key, MasterKeySource::Environment));
        }
        let path = config.key_path(&config.keys.master_key_file);
        let key = Self::read_file(&path)?;
        Ok((key, MasterKeySource::File(path)))
    }
}

/// The value of `DM3_BRIDGE_MASTER_KEY` in `env`, if set and not empty.
pub fn env_value(env: &[(String, String)]) -> Option<&str> {
    env.iter().find(|(k, v)| k == MASTER_KEY_VAR && !v.trim().is_empty()).map(|(_, v)| v.as_str())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(version {}, [redacted])", self.version)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn base64_round_trip_and_length_check() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&format!("{}\n", *key.to_base64()), "test").unwrap();
        assert_eq!(key.bytes(), again.bytes());
        assert!(MasterKey::from_base64("AAAA", "test").is_err());
        assert!(MasterKey::from_base64("not base64!", "test").is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let key = MasterKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.to_base64().as_str()));
        assert!(shown.contains("redacted"));
    }
}
