//! The account's cross-signing identity, made or replaced from this device: what a test needs
//! to show the bridge believing only devices their user verified (`[matrix] sender_trust =
//! "cross-signed"`), and refusing a user whose identity changed until an admin accepts it.
//!
//! Bootstrapping makes a master, a self-signing and a user-signing key, publishes them
//! (`/keys/device_signing/upload`) and signs this device with the self-signing key. The first
//! upload needs no user-interactive auth on Synapse (MSC3967); replacing an identity does, and
//! a test user answers it with their password. Other devices of the account stay unsigned: a
//! device the user never verified.

use matrix_sdk::ruma::api::client::uiaa;

use crate::error::ClientError;
use crate::user::MatrixUser;

impl MatrixUser {
    /// Gives the account a cross-signing identity if it has none, signing this device with it;
    /// `password` answers the homeserver if it asks.
    pub async fn bootstrap_cross_signing(&self, password: &str) -> Result<(), ClientError> {
        let encryption = self.client().encryption();
        if let Err(error) = encryption.bootstrap_cross_signing_if_needed(None).await {
            let Some(response) = error.as_uiaa_response() else { return Err(error.into()) };
            let auth = self.password_auth(password, response.session.clone())?;
            encryption.bootstrap_cross_signing(Some(auth)).await?;
        }
        self.sync_once().await
    }

    /// Replaces the account's cross-signing identity with a new one (a new master key), signing
    /// this device with it, as a user who lost their keys does; `password` answers the
    /// homeserver's user-interactive auth.
    pub async fn reset_cross_signing(&self, password: &str) -> Result<(), ClientError> {
        let encryption = self.client().encryption();
        if let Some(handle) = encryption.reset_cross_signing().await? {
            let session = match handle.auth_type() {
                matrix_sdk::encryption::CrossSigningResetAuthType::Uiaa(info) => info.session.clone(),
                matrix_sdk::encryption::CrossSigningResetAuthType::OAuth(_) => None,
            };
            handle.auth(Some(self.password_auth(password, session)?)).await?;
        }
        self.sync_once().await
    }

    fn password_auth(&self, password: &str, session: Option<String>) -> Result<uiaa::AuthData, ClientError> {
        let user = self.user_id()?;
        let identifier = uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(user.to_string()));
        let mut auth = uiaa::Password::new(identifier, password.to_owned());
        auth.session = session;
        Ok(uiaa::AuthData::Password(auth))
    }
}
