//! [`MatrixUser`]: one logged-in device and its sync, the base every other part stands on.
//!
//! Syncing is what moves encryption forward: each sync uploads this device's keys, fetches the
//! room keys others sent to it and learns of other users' new devices. A test that waits for
//! something therefore syncs while it waits ([`MatrixUser::sync_until`]); a long-running client
//! syncs in the background ([`MatrixUser::start_sync`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use matrix_sdk::Client;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::SyncSettings;
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::ids::{OwnedDeviceId, OwnedUserId};

/// How long one sync waits on the homeserver for news: short, so a waiting test looks again
/// soon, long enough not to spin.
const SYNC_POLL: Duration = Duration::from_millis(500);

/// A logged-in device of a Matrix account.
#[derive(Debug)]
pub struct MatrixUser {
    client: Client,
    background: Mutex<Option<JoinHandle<()>>>,
}

impl MatrixUser {
    pub(crate) fn new(client: Client) -> Self {
        Self { client, background: Mutex::new(None) }
    }

    /// The matrix-sdk client, for what this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The account's user id.
    pub fn user_id(&self) -> Result<OwnedUserId, ClientError> {
        self.client.user_id().map(ToOwned::to_owned).ok_or(ClientError::NotLoggedIn)
    }

    /// This device's id.
    pub fn device_id(&self) -> Result<OwnedDeviceId, ClientError> {
        self.client.device_id().map(ToOwned::to_owned).ok_or(ClientError::NotLoggedIn)
    }

    /// The session to store and resume ([`crate::session`]): user, device and token.
    pub fn session(&self) -> Result<MatrixSession, ClientError> {
        self.client.matrix_auth().session().ok_or(ClientError::NotLoggedIn)
    }

    /// One sync from where the last one ended; it also sends what encryption has queued (key
    /// uploads, key queries, room keys for others).
    pub async fn sync_once(&self) -> Result<(), ClientError> {
        self.client.sync_once(SyncSettings::new().timeout(SYNC_POLL)).await?;
        Ok(())
    }

    /// Syncs until `check` answers `Some`, at most `timeout`; `what` names the wait in the
    /// timeout's error.
    pub async fn sync_until<T, F, Fut>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.sync_once().await?;
            if let Some(found) = check().await? {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout { after: timeout, what: what.to_owned() });
            }
        }
    }

    /// Keeps syncing in a task of its own until [`stop_sync`](Self::stop_sync) or drop. A sync
    /// error is retried by matrix-sdk's own loop; nothing is lost, the next sync resumes.
    pub fn start_sync(&self) {
        let mut background = self.background.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if background.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let client = self.client.clone();
        *background = Some(tokio::spawn(async move {
            if let Err(error) = client.sync(SyncSettings::new().timeout(SYNC_POLL)).await {
                tracing::warn!(%error, "background sync ended");
            }
        }));
    }

    /// Stops the background sync, if any.
    pub fn stop_sync(&self) {
        let mut background = self.background.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = background.take() {
            task.abort();
        }
    }
}

impl Drop for MatrixUser {
    fn drop(&mut self) {
        self.stop_sync();
    }
}
