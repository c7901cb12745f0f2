//! The `dm3-matrix` binary's session file: the homeserver, user, device id and access token,
//! so that each command resumes the same device instead of logging in again (a new device per
//! command would pile up in the user's device list and in every peer's key queries), and the
//! device's end-to-end encryption state ([`CryptoSnapshot`]: its Olm account, Olm sessions and
//! room keys), so that it stays the same device to its peers and keeps reading what it could.
//!
//! matrix-sdk 0.18 would keep that state in SQLite (its `sqlite` feature, which would bring a
//! second SQLite library into the workspace); here its memory store is snapshotted into this
//! file at the end of every command instead. What a snapshot does not hold (device lists,
//! outbound room keys) is fetched or made again. A command that dies before it writes the file
//! loses what changed during it: a room key received then is not readable by later runs.
//!
//! The file is JSON, written with mode 0600 (it holds the token and the device's secret keys)
//! by a rename, so a crash never leaves half a file.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use matrix_sdk::authentication::matrix::MatrixSession;
use serde::{Deserialize, Serialize};

use crate::crypto_snapshot::CryptoSnapshot;
use crate::error::ClientError;
use crate::login;
use crate::user::MatrixUser;

/// The largest session file read. The session is under 1 KiB; the crypto state grows by about
/// 1 KiB per room key received, and 64 MiB is tens of thousands of them.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A session as stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSession {
    pub homeserver: String,
    #[serde(flatten)]
    pub session: MatrixSession,
    /// The device's crypto state at the end of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto: Option<CryptoSnapshot>,
}

impl StoredSession {
    /// The session of a logged-in user, with its device's crypto state as it is now.
    pub async fn of(homeserver: &str, user: &MatrixUser) -> Result<Self, ClientError> {
        Ok(Self {
            homeserver: homeserver.to_owned(),
            session: user.session()?,
            crypto: user.crypto_snapshot().await?,
        })
    }

    /// Resumes the stored device.
    pub async fn resume(self) -> Result<MatrixUser, ClientError> {
        login::restore(&self.homeserver, self.session, self.crypto).await
    }

    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let error = |reason: String| ClientError::Session { path: path.display().to_string(), reason };
        let metadata =
            std::fs::metadata(path).map_err(|e| error(format!("{e} (run `dm3-matrix login` first)")))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(error("others may read it; make it 0600".into()));
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(error(format!("larger than {MAX_FILE_BYTES} bytes: not a session file")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| error(format!("not a session file: {e}")))
    }

    /// Writes the file (0600), replacing an earlier one whole.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let error = |reason: String| ClientError::Session { path: path.display().to_string(), reason };
        let text = serde_json::to_string(self).map_err(|e| error(e.to_string()))?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| error(e.to_string()))?;
        out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|e| error(e.to_string()))?;
        std::fs::rename(&partial, path).map_err(|e| error(e.to_string()))
    }
}
