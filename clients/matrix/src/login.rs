//! Logging in: a password login makes a new device each time, which is how a test gives bob
//! a second device; a stored session ([`crate::session`]) resumes one.

use std::fmt;

use matrix_sdk::Client;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::encryption::EncryptionSettings;

use crate::error::ClientError;
use crate::user::MatrixUser;

/// A homeserver account's password login. The password never prints.
#[derive(Clone)]
pub struct Credentials {
    pub homeserver: String,
    /// The localpart or the full user id.
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("homeserver", &self.homeserver)
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    /// Logs in as a new device named `device_name`, with fresh device keys, and uploads them
    /// (one sync), so that others can encrypt to the device as soon as this returns.
    pub async fn login(&self, device_name: &str) -> Result<MatrixUser, ClientError> {
        let client = client_for(&self.homeserver).await?;
        client
            .matrix_auth()
            .login_username(&self.user, &self.password)
            .initial_device_display_name(device_name)
            .send()
            .await?;
        let user = MatrixUser::new(client);
        user.sync_once().await?;
        Ok(user)
    }
}

/// Resumes a stored session: the same user, device id and token. The crypto store is new
/// (memory), so the device's keys are new too: see [`crate::session`].
pub async fn restore(homeserver: &str, session: MatrixSession) -> Result<MatrixUser, ClientError> {
    let client = client_for(homeserver).await?;
    client.restore_session(session).await?;
    let user = MatrixUser::new(client);
    user.sync_once().await?;
    Ok(user)
}

/// A client with memory stores. Cross-signing and key backup stay off: they would ask for a
/// user's interactive authentication, and a test user or a gateway user's one device needs
/// neither to send and receive encrypted messages.
async fn client_for(homeserver: &str) -> Result<Client, ClientError> {
    let url = url::Url::parse(homeserver).map_err(|_| ClientError::BadHomeserver(homeserver.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::BadHomeserver(homeserver.to_owned()));
    }
    let settings = EncryptionSettings { auto_enable_cross_signing: false, ..EncryptionSettings::default() };
    Ok(Client::builder().homeserver_url(url).with_encryption_settings(settings).build().await?)
}
