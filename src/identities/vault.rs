//! The identity vault: every operation on virtual identities, for the admin API, the CLI and
//! (later) the engine.
//!
//! - **Create**: a random wallet, the DM3 keys derived from it, a profile whose
//!   `deliveryServices` is the node's own name, signed by the wallet; the wallet secret sealed
//!   under the master key; one row per identity and one per key version, in one transaction.
//! - **Rotate**: a *new random wallet*, so a new address: the name's `addr` changes with the
//!   profile, and clients that verify the profile against `addr` (docs/protocol.md §4.2, P15) see a
//!   consistent pair. Re-deriving from the same wallet with another nonce would not help, since
//!   rotation is for a key that may have leaked, and the wallet is the root of every other key.
//!   The old version is kept, marked retired, only so that envelopes already sealed to its
//!   X25519 key can still be opened ([`IdentityVault::opening_keys`]); it never signs again.
//! - **Disable / enable**: a disabled identity keeps its keys but is not published (the
//!   gateway answers "not found"); **delete** removes it and every key version.
//! - **Self-custody** ([`self_custody`]): an identity whose wallet the user holds, created so
//!   or switched to and back; it has no key here, so it neither signs nor opens.
//!
//! Secrets leave this module only as [`IdentityKeys`], which prints no secret, and only
//! through the two `*_keys` methods that the message engine uses. Nothing the admin API or the
//! CLI shows comes from them.

mod alias;
pub mod claim;
mod self_custody;

use std::str::FromStr;
use std::sync::Arc;

use dm3::ens::EnsName;

use super::error::IdentityError;
use super::key_cache::KeyCache;
use super::keys::IdentityKeys;
use super::network::{Network, NetworkUserId, UserIdError};
use super::on_demand::{OnDemand, Reachable};
use super::recent::RecentIdentities;
use super::scheme::{NameScheme, ParsedName};
use crate::store::{Counterparty, Custody, IdentityRecord, SealedKey, Store};
use crate::vault::MasterKey;

/// The largest page of a listing.
pub const MAX_PER_PAGE: u32 = 1_000;
/// The page size when none is asked for.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// How an operator names an identity: its ENS name, or `network:userId`
/// (`telegram:12345`, `matrix:@bob:example.org`). An ENS name never contains `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRef {
    Name(EnsName),
    User(NetworkUserId),
}

impl FromStr for IdentityRef {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some((network, user_id)) => {
                let network: Network = network.parse().map_err(UserIdError::from)?;
                Ok(Self::User(NetworkUserId::parse(network, user_id)?))
            }
            None => EnsName::parse(text)
                .ok()
                .filter(|name| !name.is_root())
                .map(Self::Name)
                .ok_or_else(|| IdentityError::BadReference(text.chars().take(80).collect())),
        }
    }
}

impl std::fmt::Display for IdentityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => write!(f, "{name}"),
            Self::User(user) => write!(f, "{user}"),
        }
    }
}

/// One page of identities.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<IdentityRecord>,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// Virtual identities: creation, lookup, lifecycle and their keys.
#[derive(Clone)]
pub struct IdentityVault {
    store: Store,
    master: Arc<MasterKey>,
    scheme: Option<NameScheme>,
    delivery_service: EnsName,
    /// Rows read in the last second ([`super::recent`]), shared by every clone.
    recent: Arc<RecentIdentities>,
    /// Opened key versions: deriving them is the costliest step of a message otherwise.
    opened_keys: Arc<KeyCache>,
    /// The users reachable before they used the bridge, and their derived identities
    /// ([`super::on_demand`]); `None`: nobody is.
    on_demand: Option<Arc<OnDemand>>,
    /// Telegram username aliases' derived keys ([`alias`]); `None`: aliases are no identities.
    aliases: Option<Arc<alias::AliasKeys>>,
}

impl IdentityVault {
    /// The store the identities live in, for what the networks keep per identity (blocks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The master key, for what the networks seal besides identities (ghost devices' Olm
    /// accounts).
    pub fn master_key(&self) -> &Arc<MasterKey> {
        &self.master
    }

    /// `scheme` is `None` when no parent is configured (then nothing can be created);
    /// `delivery_service` is the node's own name, which every profile names.
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        scheme: Option<NameScheme>,
        delivery_service: EnsName,
    ) -> Self {
        Self {
            store,
            master,
            scheme,
            delivery_service,
            recent: Arc::default(),
            opened_keys: Arc::default(),
            on_demand: None,
            aliases: None,
        }
    }

    /// Lets go of the rows read too long ago to be reused (`crate::housekeeping`).
    pub fn sweep_recent_reads(&self) {
        self.recent.sweep();
    }

    /// Makes the users `reachable` admits reachable before they used the bridge: their names
    /// resolve to derived identities that are stored by [`keep`](Self::keep).
    pub fn with_on_demand(mut self, reachable: Arc<dyn Reachable>) -> Self {
        self.on_demand = Some(Arc::new(OnDemand::new(reachable)));
        self
    }

    /// How many derived identities are held in memory (the bound of [`super::on_demand`]).
    pub fn derived_in_memory(&self) -> usize {
        self.on_demand.as_ref().map_or(0, |on_demand| on_demand.cached())
            + self.aliases.as_ref().map_or(0, |aliases| aliases.cached())
    }

    /// The derived identity of `name` if it names a reachable user (whether or not a row
    /// exists: the caller looked for the row first).
    fn derived(&self, name: &EnsName) -> Result<Option<(IdentityRecord, IdentityKeys)>, IdentityError> {
        let (Some(on_demand), Some(scheme)) = (&self.on_demand, &self.scheme) else { return Ok(None) };
        let Ok(ParsedName::Identity { label, user: Some(user), .. }) = scheme.parse(name) else {
            return Ok(None);
        };
        if !on_demand.reachable(&user) {
            return Ok(None);
        }
        Ok(Some(on_demand.identity(&self.master, &user, &label, name, &self.delivery_service)?))
    }

    /// Stores the derived identity of `name` if it has none yet (the first message reached the
    /// user): its row and its version-1 key, sealed as any key version is. Answers whether it
    /// wrote them; `false` also for a name that is no reachable user's.
    pub async fn keep(&self, name: &EnsName, now_ms: i64) -> Result<bool, IdentityError> {
        if self.recent.get(name).is_some() || self.store.identity(name).await?.is_some() {
            return Ok(false);
        }
        let Some((mut record, keys)) = self.derived(name)? else { return Ok(false) };
        record.created_at_ms = now_ms;
        record.updated_at_ms = now_ms;
        let key = self.sealed(name, &keys, now_ms)?;
        let inserted = self.store.insert_identity(&record, &key).await;
        self.recent.forget(name);
        // Lost a race with another writer of the same identity: the same derived wallet.
        let inserted = inserted?;
        if inserted {
            tracing::info!(name = %record.name, user = %record.user, address = %record.address, "on-demand identity stored at its first message");
        }
        Ok(inserted)
    }

    pub fn scheme(&self) -> Option<&NameScheme> {
        self.scheme.as_ref()
    }

    pub fn delivery_service(&self) -> &EnsName {
        &self.delivery_service
    }

    /// Creates the identity of `user`; fails with [`IdentityError::Exists`] if it has one.
    pub async fn create(&self, user: NetworkUserId, now_ms: i64) -> Result<IdentityRecord, IdentityError> {
        let scheme = self.scheme.as_ref().ok_or(IdentityError::NoParent)?;
        let (label, name) = scheme.name_for(&user)?;
        if let Some(existing) = self.store.identity_of_user(&user).await? {
            return Err(IdentityError::Exists { user: user.to_string(), name: existing.name.to_string() });
        }
        // A reachable user's name may already have been published with the derived wallet:
        // the identity made for them must be that one, or their contacts' lookups would lie.
        let keys = match self.derived(&name)? {
            Some((_, derived)) => derived,
            None => IdentityKeys::generate(1),
        };
        let key = self.sealed(&name, &keys, now_ms)?;
        let record = IdentityRecord {
            profile: keys.signed_profile(&self.delivery_service),
            name,
            label,
            user,
            address: keys.address(),
            custody: Custody::Custodial { key_version: keys.version() },
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            disabled_at_ms: None,
        };
        let inserted = self.store.insert_identity(&record, &key).await;
        self.recent.forget(&record.name);
        if inserted? {
            tracing::info!(name = %record.name, user = %record.user, address = %record.address, "identity created");
            return Ok(record);
        }
        // Lost a race with another create of the same user, or (astronomically unlikely) a
        // hashed label collided: either way the row that exists wins, nothing is aliased.
        let holder = match self.store.identity_of_user(&record.user).await? {
            Some(existing) => existing.name.to_string(),
            None => record.name.to_string(),
        };
        Err(IdentityError::Exists { user: record.user.to_string(), name: holder })
    }

    /// The identity `reference` names.
    pub async fn get(&self, reference: &IdentityRef) -> Result<IdentityRecord, IdentityError> {
        let found = match reference {
            IdentityRef::Name(name) => self.store.identity(name).await?,
            IdentityRef::User(user) => self.store.identity_of_user(user).await?,
        };
        found.ok_or_else(|| IdentityError::NotFound(reference.to_string()))
    }

    /// The identity called `name` as read within the last second, for the engine's messages
    /// ([`super::recent`]: a change made elsewhere reaches the engine within that second; the
    /// admin API and the CLI read with [`get`](Self::get)).
    pub async fn recent(&self, name: &EnsName) -> Result<IdentityRecord, IdentityError> {
        self.recent_identity(name).await?.ok_or_else(|| IdentityError::NotFound(name.to_string()))
    }

    /// [`recent`](Self::recent), `None` for a name that is no identity: for name resolution.
    /// A reachable user without a row has their derived identity ([`super::on_demand`]).
    pub async fn recent_identity(&self, name: &EnsName) -> Result<Option<IdentityRecord>, IdentityError> {
        if let Some(recent) = self.recent.get(name) {
            return Ok(Some(recent));
        }
        if self.alias_username(name).is_some() {
            return self.bound_alias(name).await;
        }
        let read_began = self.recent.ticket();
        let found = self.store.identity(name).await?;
        match &found {
            Some(record) => self.recent.remember(record, read_began),
            None => return Ok(self.derived(name)?.map(|(record, _)| record)),
        }
        Ok(found)
    }

    /// Every key version of `name`, newest first, or those read less than a second ago
    /// ([`super::recent`]). Read again if they lack `including`: the caller read a record
    /// after a rotation they predate.
    async fn recent_keys(
        &self,
        name: &EnsName,
        including: Option<u32>,
    ) -> Result<Vec<SealedKey>, IdentityError> {
        if let Some(recent) = self.recent.keys(name)
            && including.is_none_or(|version| recent.iter().any(|key| key.version == version))
        {
            return Ok(recent);
        }
        let read_began = self.recent.ticket();
        let keys = self.store.identity_keys(name).await?;
        self.recent.remember_keys(name, &keys, read_began);
        Ok(keys)
    }

    /// The `page`-th page (1-based) of `per_page` identities, in name order.
    pub async fn list(&self, page: u32, per_page: u32) -> Result<Page, IdentityError> {
        if page == 0 || !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(IdentityError::InvalidPage { page, per_page });
        }
        let offset = u64::from(page - 1) * u64::from(per_page);
        let items = self.store.list_identities(offset, per_page).await?;
        let total = self.store.count_identities().await?;
        Ok(Page { items, page, per_page, total })
    }

    /// Stops publishing the identity; its keys are kept.
    pub async fn disable(
        &self,
        reference: &IdentityRef,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        self.set_disabled(reference, Some(now_ms), now_ms).await
    }

    /// Publishes a disabled identity again.
    pub async fn enable(
        &self,
        reference: &IdentityRef,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        self.set_disabled(reference, None, now_ms).await
    }

    async fn set_disabled(
        &self,
        reference: &IdentityRef,
        disabled_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        let identity = self.get(reference).await?;
        // Disabling twice keeps the first time.
        let disabled_at_ms = disabled_at_ms.map(|now| identity.disabled_at_ms.unwrap_or(now));
        let changed = self.store.set_identity_disabled(&identity.name, disabled_at_ms, now_ms).await;
        self.recent.forget(&identity.name);
        if !changed? {
            return Err(IdentityError::NotFound(reference.to_string()));
        }
        tracing::info!(name = %identity.name, disabled = disabled_at_ms.is_some(), "identity status changed");
        self.get(&IdentityRef::Name(identity.name)).await
    }

    /// Deletes the identity and all its keys; returns what it was.
    pub async fn delete(&self, reference: &IdentityRef) -> Result<IdentityRecord, IdentityError> {
        let identity = self.get(reference).await?;
        let deleted = self.store.delete_identity(&identity.name).await;
        self.recent.forget(&identity.name);
        if !deleted? {
            return Err(IdentityError::NotFound(reference.to_string()));
        }
        self.opened_keys.forget(&identity.name);
        tracing::info!(name = %identity.name, "identity deleted");
        Ok(identity)
    }

    /// A new wallet, keys and profile (see the module documentation).
    pub async fn rotate(
        &self,
        reference: &IdentityRef,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        let identity = self.get(reference).await?;
        let Custody::Custodial { key_version } = identity.custody else {
            return Err(IdentityError::SelfCustody(identity.name.to_string()));
        };
        let version =
            key_version.checked_add(1).ok_or_else(|| IdentityError::Conflict(identity.name.to_string()))?;
        let keys = IdentityKeys::generate(version);
        let key = self.sealed(&identity.name, &keys, now_ms)?;
        let profile = keys.signed_profile(&self.delivery_service);
        let rotated = self.store.rotate_identity(&identity.name, key_version, &key, &profile).await;
        self.recent.forget(&identity.name);
        if !rotated? {
            return Err(IdentityError::Conflict(identity.name.to_string()));
        }
        tracing::info!(name = %identity.name, version, address = %keys.address(), "identity keys rotated");
        self.get(&IdentityRef::Name(identity.name)).await
    }

    /// The identity and the senders of the envelopes the store holds for it. The message
    /// engine will extend this with the conversations of its message map.
    pub async fn counterparties(
        &self,
        reference: &IdentityRef,
        limit: u32,
    ) -> Result<(IdentityRecord, Vec<Counterparty>), IdentityError> {
        let identity = self.get(reference).await?;
        let counterparties = self.store.identity_counterparties(&identity.name, limit).await?;
        Ok((identity, counterparties))
    }

    /// The current keys of `name`: they sign and open. Disabled identities have keys too.
    /// Like every key read of the engine, from rows read within the last second
    /// ([`recent`](Self::recent)).
    pub async fn current_keys(&self, name: &EnsName) -> Result<IdentityKeys, IdentityError> {
        if let Some(keys) = self.alias_keys(name)? {
            return Ok(keys); // an alias signs as itself, bound or not
        }
        let identity = self.recent(name).await?;
        self.current_keys_of(&identity).await
    }

    /// [`current_keys`](Self::current_keys) of an identity the caller has just read.
    pub async fn current_keys_of(&self, identity: &IdentityRecord) -> Result<IdentityKeys, IdentityError> {
        let name = &identity.name;
        if let Some(keys) = self.alias_keys(name)? {
            return Ok(keys);
        }
        let Custody::Custodial { key_version } = identity.custody else {
            return Err(IdentityError::SelfCustody(name.to_string()));
        };
        let keys = self.recent_keys(name, Some(key_version)).await?;
        if keys.is_empty()
            && let Some((_, derived)) = self.derived(name)?
        {
            return Ok(derived);
        }
        let current = keys.iter().find(|key| key.version == key_version).ok_or_else(|| {
            IdentityError::Corrupt { name: name.to_string(), reason: "the current key is missing".into() }
        })?;
        Ok(self.opened_keys.open(&self.master, name, current.version, &current.sealed)?)
    }

    /// Every key version of `name`, newest first: the retired ones only open envelopes that
    /// were sealed to them before a rotation.
    pub async fn opening_keys(&self, name: &EnsName) -> Result<Vec<IdentityKeys>, IdentityError> {
        if let Some(keys) = self.alias_keys(name)? {
            return Ok(vec![keys]);
        }
        // A self-custody identity has no key here, and its name may still derive one (a
        // reachable user): that one must never open what was sealed to the user's own keys.
        if self.recent_identity(name).await?.is_some_and(|identity| identity.custody.is_self_custody()) {
            return Err(IdentityError::SelfCustody(name.to_string()));
        }
        let sealed = self.recent_keys(name, None).await?;
        if sealed.is_empty() {
            return match self.derived(name)? {
                Some((_, derived)) => Ok(vec![derived]),
                None => Err(IdentityError::NotFound(name.to_string())),
            };
        }
        sealed
            .iter()
            .map(|key| {
                self.opened_keys.open(&self.master, name, key.version, &key.sealed).map_err(Into::into)
            })
            .collect()
    }

    /// Opens the most recently sealed identity key, so that a wrong or lost master key stops
    /// the node at start-up instead of failing at the first message. Returns the identity it
    /// checked, if there is any.
    pub async fn check_master_key(&self) -> Result<Option<EnsName>, IdentityError> {
        let Some((name, key)) = self.store.newest_identity_key().await? else {
            return Ok(None);
        };
        let keys = IdentityKeys::open(&self.master, &name, key.version, &key.sealed)?;
        if keys.address() != key.address {
            return Err(IdentityError::Corrupt {
                name: name.to_string(),
                reason: format!("key version {} opens to another address than recorded", key.version),
            });
        }
        Ok(Some(name))
    }

    fn sealed(&self, name: &EnsName, keys: &IdentityKeys, now_ms: i64) -> Result<SealedKey, IdentityError> {
        Ok(SealedKey {
            version: keys.version(),
            address: keys.address(),
            sealed: keys.seal(&self.master, name)?,
            created_at_ms: now_ms,
            retired_at_ms: None,
        })
    }
}
