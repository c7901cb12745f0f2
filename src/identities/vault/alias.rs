//! Telegram username aliases as identities (docs/names.md section 8).
//!
//! An alias `u-<username>.tg.<parent>` is its own DM3 identity for good, whoever holds the
//! username: its wallet is derived from the master key and the alias name, like a reachable
//! user's ([`super::super::on_demand`]), so the gateway answers it and the relay accepts for
//! it with nothing written at a lookup, and it is never stored as a row (it stands for no one
//! Telegram account: it is *bound* to one, `store::telegram_aliases`). Derived keys are cached,
//! at most [`super::super::on_demand::MAX_DERIVED`], dropped all at once when full.
//!
//! The start link given to an alias's DM3 sender carries a token keyed by the master key and
//! the (alias, sender) pair: nobody can make one without the node, so only whom the sender
//! forwarded it to can start with it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use alloy_primitives::Address;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dm3::bridge_names::TelegramUsername;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;

use super::super::error::IdentityError;
use super::super::keys::IdentityKeys;
use super::super::network::{NetworkUserId, TelegramUserId};
use super::super::on_demand::MAX_DERIVED;
use super::super::scheme::ParsedName;
use super::IdentityVault;
use crate::store::{Custody, IdentityRecord};

/// The purpose under which start-link tokens are derived from the master key.
const LINK_TOKEN_PURPOSE: &str = "dm3-bridge telegram alias start link v1";
/// Bytes of the keyed hash in a token: 120 bits, 20 base64url characters.
const LINK_TOKEN_BYTES: usize = 15;

/// The derived keys of aliases, cached.
#[derive(Default)]
pub(super) struct AliasKeys {
    derived: Mutex<HashMap<EnsName, IdentityKeys>>,
}

impl AliasKeys {
    pub(super) fn cached(&self) -> usize {
        self.derived.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl IdentityVault {
    /// Makes Telegram username aliases identities (the node runs Telegram).
    pub fn with_telegram_aliases(mut self) -> Self {
        self.aliases = Some(std::sync::Arc::default());
        self
    }

    /// The username `name` is the alias of, if aliases are identities here.
    pub fn alias_username(&self, name: &EnsName) -> Option<TelegramUsername> {
        self.aliases.as_ref()?;
        match self.scheme.as_ref()?.parse(name) {
            Ok(ParsedName::TelegramAlias { username, .. }) => Some(username),
            _ => None,
        }
    }

    /// The keys of alias `name`; `None` if it is none.
    pub(super) fn alias_keys(&self, name: &EnsName) -> Result<Option<IdentityKeys>, IdentityError> {
        let Some(aliases) = &self.aliases else { return Ok(None) };
        if self.alias_username(name).is_none() {
            return Ok(None);
        }
        if let Some(found) = aliases.derived.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(Some(found.clone()));
        }
        let keys = IdentityKeys::derived(&self.master, name)?;
        let mut derived = aliases.derived.lock().unwrap_or_else(PoisonError::into_inner);
        if derived.len() >= MAX_DERIVED {
            derived.clear();
        }
        derived.insert(name.clone(), keys.clone());
        Ok(Some(keys))
    }

    /// What the gateway publishes for alias `name`: its address and signed profile.
    pub fn alias_published(
        &self,
        name: &EnsName,
    ) -> Result<Option<(Address, SignedUserProfile)>, IdentityError> {
        Ok(self.alias_keys(name)?.map(|keys| (keys.address(), keys.signed_profile(&self.delivery_service))))
    }

    /// Alias `name` as the identity of the account it is bound to, for what that account writes
    /// and what reaches it; `None` while it is bound to nobody.
    pub(super) async fn bound_alias(&self, name: &EnsName) -> Result<Option<IdentityRecord>, IdentityError> {
        let Some(keys) = self.alias_keys(name)? else { return Ok(None) };
        let Some(binding) = self.store.alias_binding(name).await? else { return Ok(None) };
        let user =
            binding.telegram_user.parse().ok().and_then(|id| TelegramUserId::new(id).ok()).ok_or_else(
                || IdentityError::Corrupt {
                    name: name.to_string(),
                    reason: format!("the alias is bound to {:?}, no Telegram id", binding.telegram_user),
                },
            )?;
        let label = name.as_str().split('.').next().unwrap_or_default().to_owned();
        Ok(Some(IdentityRecord {
            profile: keys.signed_profile(&self.delivery_service),
            name: name.clone(),
            label,
            user: NetworkUserId::Telegram(user),
            address: keys.address(),
            custody: Custody::Custodial { key_version: keys.version() },
            created_at_ms: binding.bound_at_ms,
            updated_at_ms: binding.bound_at_ms,
            disabled_at_ms: None,
        }))
    }

    /// The token of the start link given to `sender` for alias `alias`.
    pub fn alias_link_token(&self, alias: &EnsName, sender: &EnsName) -> String {
        let input = format!("{alias}\n{sender}");
        let keyed = self.master.derive(LINK_TOKEN_PURPOSE, input.as_bytes());
        URL_SAFE_NO_PAD.encode(&keyed[..LINK_TOKEN_BYTES])
    }
}
