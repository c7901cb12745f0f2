//! Waiting for a condition without a client: polls `check` until it answers `Some`, at most
//! `timeout`. [`crate::MatrixUser::sync_until`] is the same wait with a sync between looks.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// Pause between two looks.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it answers `Some`; `what` names the wait in the timeout's error.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ClientError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout { after: timeout, what: what.to_owned() });
        }
        tokio::time::sleep(POLL).await;
    }
}
