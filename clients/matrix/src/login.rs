//! Logging in: a password login makes a new device each time, which is how a test gives bob
//! a second device; a stored session ([`crate::session`]) resumes one.

use std::fmt;

use std::sync::Arc;

use matrix_sdk::Client;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::StoreConfig;
use matrix_sdk::cross_process_lock::CrossProcessLockConfig;
use matrix_sdk::encryption::EncryptionSettings;
use matrix_sdk_base::crypto::store::MemoryStore;

use crate::crypto_snapshot::CryptoSnapshot;

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
        self.login_with(device_name, CrossSigning::Off).await
    }

    /// [`Credentials::login`], and with [`CrossSigning::Bootstrap`] the account gets a
    /// cross-signing identity if it has none, which signs this device
    /// ([`MatrixUser::bootstrap_cross_signing`]).
    pub async fn login_with(
        &self,
        device_name: &str,
        cross_signing: CrossSigning,
    ) -> Result<MatrixUser, ClientError> {
        let crypto = Arc::new(MemoryStore::new());
        let client = client_for(&self.homeserver, crypto.clone(), cross_signing).await?;
        client
            .matrix_auth()
            .login_username(&self.user, &self.password)
            .initial_device_display_name(device_name)
            .send()
            .await?;
        let user = MatrixUser::new(client, crypto);
        user.sync_once().await?;
        if cross_signing == CrossSigning::Bootstrap {
            user.bootstrap_cross_signing(&self.password).await?;
        }
        Ok(user)
    }
}

/// Whether a new login gives the account a cross-signing identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrossSigning {
    /// No: the device stays unsigned (what every test and gateway user had so far).
    #[default]
    Off,
    /// Make one if the account has none, and sign this device with it.
    Bootstrap,
}

/// Resumes a stored session: the same user, device id and token, and the device's crypto
/// state if a snapshot of it was kept ([`CryptoSnapshot`]); without one the device's keys are
/// new, see [`crate::session`].
pub async fn restore(
    homeserver: &str,
    session: MatrixSession,
    crypto: Option<CryptoSnapshot>,
) -> Result<MatrixUser, ClientError> {
    let crypto = match crypto {
        Some(snapshot) => snapshot.restore().await?,
        None => Arc::new(MemoryStore::new()),
    };
    let client = client_for(homeserver, crypto.clone(), CrossSigning::Off).await?;
    client.restore_session(session).await?;
    let user = MatrixUser::new(client, crypto);
    user.first_sync().await?;
    Ok(user)
}

/// A client with memory stores, its crypto store the one given (so its state can be read back).
/// Key backup stays off, and so does cross-signing unless asked for: they may ask for a user's
/// interactive authentication, and a test user or a gateway user's one device needs neither
/// to send and receive encrypted messages.
async fn client_for(
    homeserver: &str,
    crypto: Arc<MemoryStore>,
    cross_signing: CrossSigning,
) -> Result<Client, ClientError> {
    let url = url::Url::parse(homeserver).map_err(|_| ClientError::BadHomeserver(homeserver.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::BadHomeserver(homeserver.to_owned()));
    }
    let settings = EncryptionSettings {
        auto_enable_cross_signing: cross_signing == CrossSigning::Bootstrap,
        ..EncryptionSettings::default()
    };
    let stores = StoreConfig::new(CrossProcessLockConfig::SingleProcess).crypto_store(crypto);
    Ok(Client::builder()
        .homeserver_url(url)
        .store_config(stores)
        .with_encryption_settings(settings)
        .build()
        .await?)
}
