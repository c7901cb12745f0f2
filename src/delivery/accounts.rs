//! Accounts: registering with `POST /profile/:name`, reading it back, the profile extension,
//! and which of an account's keys count right now.
//!
//! Registration follows the reference (PROTOCOL.md §9, P15): the body is a
//! `SignedUserProfile`, and it must be signed by the wallet behind `addr(name)` as the
//! [`Directory`](crate::names::directory::Directory) resolves it now. Identity is that address;
//! nothing else ties a profile to a name (§4.2). A second registration replaces the profile
//! (key rotation: the messenger re-posts its profile when a challenge fails, §9.2).
//!
//! The profile stored at registration is a fallback only. Keys are taken from the profile
//! the name resolves to *now* when there is one (§16 recommendation 4): a user who rotated
//! keys and republished gets postmarks they can open, and logs in with the new key.

use dm3::ds_properties::ProfileExtension;
use dm3::ens::EnsName;
use dm3::profile::{SignedUserProfile, UserProfile};
use serde_json::Value;

use super::Relay;
use super::names::parse_name;
use super::sessions::LoginPath;
use crate::clock::now_ms;
use crate::names::ResolveError;
use crate::names::directory::DirectoryError;
use crate::protocol::{DeliveryError, Rejection};
use crate::store::Account;

impl Relay {
    /// `POST /profile/:name`: verify the signed profile against `addr(name)`, upsert the
    /// account, and open a session.
    pub(super) async fn register(&self, name: &str, body: Value) -> Result<String, DeliveryError> {
        let name = parse_name(name)?;
        let profile = SignedUserProfile::from_value(body)
            .map_err(|e| DeliveryError::InvalidRequest(format!("invalid schema: {e}")))?;
        let address = match self.directory.address(&name).await {
            Ok(Some(address)) => address,
            Ok(None) => {
                return Err(DeliveryError::rejected(
                    Rejection::UnresolvedName,
                    format!("{name} does not resolve to an address, so its profile cannot be checked"),
                ));
            }
            Err(error) => return Err(resolve_failure(&name, error)),
        };
        profile.verify_against_address(&address).map_err(|e| {
            DeliveryError::rejected(
                Rejection::BadSignature,
                format!("invalid profile signature: not signed by {address}, the address of {name} ({e})"),
            )
        })?;
        // Canonical text: the signature covers the canonical form of the parsed object (P2).
        self.store.upsert_account(&name, &address.to_string(), &profile.canonical(), now_ms()).await?;
        self.open_session(&name, LoginPath::Profile).await
    }

    /// `GET /profile/:name`: the signed profile stored at registration.
    pub(super) async fn stored_profile(&self, name: &str) -> Result<Value, DeliveryError> {
        let name = parse_name(name)?;
        let account = self.account(&name).await?;
        serde_json::from_str(&account.profile)
            .map_err(|e| DeliveryError::Internal(format!("stored profile of {name} is not JSON: {e}")))
    }

    /// `dm3_getProfileExtension [name]`: the SDK default for registered users (§4.5, P20).
    pub(super) async fn extension(&self, name: &str) -> Result<Value, DeliveryError> {
        let name = parse_name(name)?;
        if self.store.account_exists(&name).await? {
            Ok(ProfileExtension::default().to_value())
        } else {
            // The reference's words: 400 {error: "unknown user"}.
            Err(DeliveryError::rejected(Rejection::UnknownAccount, "unknown user"))
        }
    }

    /// The account of `name`, or 404.
    pub(super) async fn account(&self, name: &EnsName) -> Result<Account, DeliveryError> {
        self.store
            .get_account(name)
            .await?
            .ok_or_else(|| DeliveryError::NotFound(format!("unknown account {name}")))
    }

    /// The account's profile as it counts now: the verified profile `name` resolves to, or,
    /// when it does not resolve (or not validly), the one stored at registration. `account`
    /// is that registration if the caller has it already; else it is read only when needed.
    pub(super) async fn current_profile(
        &self,
        name: &EnsName,
        account: Option<&Account>,
    ) -> Result<UserProfile, DeliveryError> {
        match self.directory.user_profile(name).await {
            Ok(Some(verified)) => return Ok(verified.profile.profile().clone()),
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "account profile does not resolve; using the stored one"),
        }
        let fetched;
        let account = match account {
            Some(account) => account,
            None => {
                fetched = self.account(name).await?;
                &fetched
            }
        };
        SignedUserProfile::parse(&account.profile)
            .map(|signed| signed.profile().clone())
            .map_err(|e| DeliveryError::Internal(format!("stored profile of {name} is invalid: {e}")))
    }
}

/// A name lookup that failed: a source that does not answer may answer later (503); an
/// invalid answer will not get better (400).
pub(super) fn resolve_failure(name: &EnsName, error: DirectoryError) -> DeliveryError {
    match error {
        DirectoryError::Resolve(ResolveError::Unavailable(detail)) => {
            tracing::warn!(%detail, "name source unavailable");
            DeliveryError::Unavailable
        }
        other => {
            DeliveryError::rejected(Rejection::UnresolvedName, format!("{name} cannot be resolved: {other}"))
        }
    }
}
