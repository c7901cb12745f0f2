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

use std::path::Path;

use matrix_sdk::authentication::matrix::MatrixSession;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto_snapshot::CryptoSnapshot;
use crate::error::ClientError;
use crate::login;
use crate::private_file;
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
        if !path.exists() {
            return Err(error("there is none: run `dm3-matrix login` first".into()));
        }
        let text = private_file::read(path, MAX_FILE_BYTES).map_err(error)?;
        serde_json::from_str(&text).map_err(|e| error(format!("not a session file: {e}")))
    }

    /// Writes the file (0600), replacing an earlier one whole.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let error = |reason: String| ClientError::Session { path: path.display().to_string(), reason };
        let text = Zeroizing::new(serde_json::to_string(self).map_err(|e| error(e.to_string()))?);
        private_file::replace(path, &text).map_err(error)
    }
}
