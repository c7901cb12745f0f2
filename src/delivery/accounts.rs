//! Accounts: registering with `POST /profile/:name`, reading it back, the profile extension,
//! and which of an account's keys count right now.
//!
//! Registration follows the reference (docs/protocol.md §9, P15): the body is a
//! `SignedUserProfile`, and it must be signed by the wallet behind `addr(name)` as the
//! [`Directory`](crate::names::directory::Directory) resolves it now. That signature proves that
//! the wallet signed this profile *once*; it does not prove that whoever posts it holds the
//! keys, because a signed profile is public (`GET /profile`, the ENS record) and can be
//! replayed by anyone. So a profile alone never opens a session on an existing account
//! (docs/relay.md, "Who gets a session"):
//! - **first registration** (the name has no account here): the account is created and a
//!   session opened, because the reference messenger's sign-up flow posts the profile and uses
//!   the token it gets back, with no challenge step it could answer. What a replay can still
//!   do there is bounded: only a profile that lists this node among its delivery services is
//!   accepted (the owner chose this node, so their client registers at once), and that
//!   session lives [`REGISTRATION_SESSION_TTL_MS`](super::sessions::REGISTRATION_SESSION_TTL_MS)
//!   (five minutes) instead of an hour; after it, the owner's key must answer a challenge. No
//!   envelope can be waiting for a name before its account exists (submits for unknown
//!   receivers are refused), so a replayed first registration exposes at most what arrives in
//!   those minutes;
//! - **an existing account**: the profile may replace the stored one (the reference's key
//!   rotation: the messenger re-posts its profile when a challenge fails, §9.2), but only when
//!   it is the profile the name publishes now, or the name publishes none, so an old profile
//!   cannot be put back. The answer is what the reference gives there: a token bound to the
//!   *address*, which opens no name route (P18). We do not even store it; the client's next
//!   call gets 401 and it logs in with the challenge, as the messenger does on any 401;
//! - **the node's own names** (its name and everything under `[identities] parent`, its
//!   virtual identities, enabled or not) are never registered from outside.
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
use crate::store::{Account, AccountCreation};

impl Relay {
    /// `POST /profile/:name`: verify the signed profile against `addr(name)`; create the account
    /// and open a session if it is new, else maybe replace its profile (module docs).
    pub(super) async fn register(&self, name: &str, body: Value) -> Result<String, DeliveryError> {
        let name = parse_name(name)?;
        if self.local_names.serves(&name) {
            return Err(DeliveryError::rejected(
                Rejection::ReservedName,
                format!("{name} is served by this node itself and cannot be registered"),
            ));
        }
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
        if !self.lists_this_node(profile.profile()) {
            return Err(DeliveryError::rejected(
                Rejection::NotThisNode,
                format!("the profile of {name} does not list {} among its delivery services", self.node_name),
            ));
        }
        // Canonical text: the signature covers the canonical form of the parsed object (P2).
        let (address, canonical, now) = (address.to_string(), profile.canonical(), now_ms());
        match self.store.create_account(&name, &address, &canonical, now).await? {
            AccountCreation::Created => self.open_session(&name, LoginPath::Registration).await,
            AccountCreation::Exists => {
                if self.may_replace_profile(&name, &profile).await {
                    self.store.upsert_account(&name, &address, &canonical, now).await?;
                }
                Ok(self.address_bound_token()?)
            }
        }
    }

    /// Whether the profile names this node among its delivery services (as ENS names, compared
    /// normalized).
    fn lists_this_node(&self, profile: &UserProfile) -> bool {
        profile
            .delivery_services()
            .into_iter()
            .any(|ds| parse_name(ds).is_ok_and(|ds| ds == *self.local_names.node_name()))
    }

    /// Whether a re-posted profile may replace the stored one: it is the profile the name
    /// publishes now, or the name publishes none (so the stored one is the only copy, and the
    /// wallet's signature is all there is to go by).
    async fn may_replace_profile(&self, name: &EnsName, posted: &SignedUserProfile) -> bool {
        match self.directory.user_profile(name).await {
            Ok(Some(published)) => published.profile.canonical() == posted.canonical(),
            Ok(None) => true,
            // A lookup that fails changes nothing: the stored profile stays.
            Err(error) => {
                tracing::debug!(%error, "re-posted profile not compared: the name does not resolve now");
                false
            }
        }
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
