//! Portals: a conversation on a network bridged to a DM3 conversation.
//!
//! A portal joins a network conversation (a Matrix room, a Telegram chat) to a pair of DM3
//! names: `local_name`, the virtual identity that speaks for the network user, and
//! `remote_name`, the DM3 user they talk with. Each side finds it by its own key: the outbox
//! by the conversation a network event came from, the inbox by (receiver, sender) of a DM3
//! message. Both keys are unique per network, so a pair of people has one portal per network.
//!
//! Creating a portal races with itself (the first message in each direction may open it at
//! once, on two replicas), so creation is "insert, or get the one that won":
//! [`Store::insert_or_get_portal`].
//!
//! Every bridged message looks its portal up, so found portals are remembered
//! ([`KnownPortals`]): a portal is never changed or deleted once stored, so a remembered one is
//! right forever, whichever replica stored it. Only found portals are remembered, never an
//! absence, so a portal another replica creates is found at once.

use std::collections::HashMap;
use std::sync::Mutex;

use dm3::ens::EnsName;
use dm3_bridge_connector::{ConversationId, NetworkId};
use sqlx::Row;

use super::{Inserted, Store, StoreError, ids, on_pool, write_on};

/// A portal to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPortal {
    pub network: NetworkId,
    pub conversation: ConversationId,
    /// The virtual identity of the network user.
    pub local_name: EnsName,
    /// The DM3 user on the other side.
    pub remote_name: EnsName,
}

/// A recorded portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Ascending in creation order; the cursor of [`Store::list_portals`].
    pub id: i64,
    pub network: NetworkId,
    pub conversation: ConversationId,
    pub local_name: EnsName,
    pub remote_name: EnsName,
    pub created_at_ms: i64,
}

struct RawPortal {
    id: i64,
    network: String,
    conversation: String,
    local_name: String,
    remote_name: String,
    created_at: i64,
}

macro_rules! read_portal {
    ($row:expr) => {
        RawPortal {
            id: $row.try_get("id")?,
            network: $row.try_get("network")?,
            conversation: $row.try_get("conversation")?,
            local_name: $row.try_get("local_name")?,
            remote_name: $row.try_get("remote_name")?,
            created_at: $row.try_get("created_at")?,
        }
    };
}

impl RawPortal {
    fn into_portal(self) -> Result<Portal, StoreError> {
        let corrupt =
            |e: dm3_bridge_connector::IdError| StoreError::Corrupt(format!("portal {}: {e}", self.id));
        Ok(Portal {
            id: self.id,
            network: NetworkId::new(self.network.as_str()).map_err(corrupt)?,
            conversation: ConversationId::new(self.conversation.as_str()).map_err(corrupt)?,
            local_name: ids::stored_name(&self.local_name)?,
            remote_name: ids::stored_name(&self.remote_name)?,
            created_at_ms: self.created_at,
        })
    }
}

/// Portals found so far, by both keys (see the module documentation for why they cannot go
/// stale). Bounded: when full it starts over, which only costs a query per portal.
#[derive(Default)]
pub(super) struct KnownPortals {
    maps: Mutex<PortalMaps>,
}

#[derive(Default)]
struct PortalMaps {
    by_conversation: HashMap<(NetworkId, ConversationId), Portal>,
    by_names: HashMap<(NetworkId, EnsName, EnsName), Portal>,
}

impl KnownPortals {
    const MAX_ENTRIES: usize = 100_000;

    fn by_conversation(&self, network: &NetworkId, conversation: &ConversationId) -> Option<Portal> {
        let maps = self.maps.lock().ok()?;
        maps.by_conversation.get(&(network.clone(), conversation.clone())).cloned()
    }

    fn by_names(&self, network: &NetworkId, local: &EnsName, remote: &EnsName) -> Option<Portal> {
        let maps = self.maps.lock().ok()?;
        maps.by_names.get(&(network.clone(), local.clone(), remote.clone())).cloned()
    }

    fn remember(&self, portal: &Portal) {
        if let Ok(mut maps) = self.maps.lock() {
            if maps.by_conversation.len() >= Self::MAX_ENTRIES {
                *maps = PortalMaps::default();
            }
            let names = (portal.network.clone(), portal.local_name.clone(), portal.remote_name.clone());
            maps.by_names.insert(names, portal.clone());
            maps.by_conversation
                .insert((portal.network.clone(), portal.conversation.clone()), portal.clone());
        }
    }
}

/// Longest page of [`Store::list_portals`].
pub const MAX_PAGE: u32 = 1_000;

impl Store {
    /// Records `portal` unless its conversation or its pair of names has a portal already, and
    /// returns the stored one. On a conflict the existing portal of the same conversation is
    /// preferred, else the one of the same names (whose conversation then differs: the caller
    /// decides what to do with the second conversation).
    pub async fn insert_or_get_portal(
        &self,
        portal: &NewPortal,
        now_ms: i64,
    ) -> Result<(Portal, Inserted), StoreError> {
        const SQL: &str = "INSERT INTO portals (network, conversation, local_name, remote_name, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
        let owned = portal.clone();
        let inserted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(owned.network.as_str())
            .bind(owned.conversation.as_str())
            .bind(owned.local_name.as_str())
            .bind(owned.remote_name.as_str())
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        let outcome = if inserted == 1 { Inserted::New } else { Inserted::Duplicate };
        if let Some(stored) = self.portal_by_conversation(&portal.network, &portal.conversation).await? {
            return Ok((stored, outcome));
        }
        match self.portal_by_names(&portal.network, &portal.local_name, &portal.remote_name).await? {
            Some(stored) => Ok((stored, outcome)),
            // Portals are never deleted, so the row that conflicted is still there.
            None => Err(StoreError::Corrupt("a conflicting portal vanished".to_owned())),
        }
    }

    /// The portal of a network conversation.
    pub async fn portal_by_conversation(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
    ) -> Result<Option<Portal>, StoreError> {
        const SQL: &str = "SELECT id, network, conversation, local_name, remote_name, created_at \
             FROM portals WHERE network = $1 AND conversation = $2";
        if let Some(known) = self.known_portals().by_conversation(network, conversation) {
            return Ok(Some(known));
        }
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL)
                .bind(network.as_str())
                .bind(conversation.as_str())
                .fetch_optional(p)
                .await?
            {
                None => None,
                Some(row) => Some(read_portal!(row)),
            }
        });
        let found = raw.map(RawPortal::into_portal).transpose()?;
        if let Some(portal) = &found {
            self.known_portals().remember(portal);
        }
        Ok(found)
    }

    /// The portal on `network` between the virtual identity `local_name` and `remote_name`.
    pub async fn portal_by_names(
        &self,
        network: &NetworkId,
        local_name: &EnsName,
        remote_name: &EnsName,
    ) -> Result<Option<Portal>, StoreError> {
        const SQL: &str = "SELECT id, network, conversation, local_name, remote_name, created_at \
             FROM portals WHERE network = $1 AND local_name = $2 AND remote_name = $3";
        if let Some(known) = self.known_portals().by_names(network, local_name, remote_name) {
            return Ok(Some(known));
        }
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL)
                .bind(network.as_str())
                .bind(local_name.as_str())
                .bind(remote_name.as_str())
                .fetch_optional(p)
                .await?
            {
                None => None,
                Some(row) => Some(read_portal!(row)),
            }
        });
        let found = raw.map(RawPortal::into_portal).transpose()?;
        if let Some(portal) = &found {
            self.known_portals().remember(portal);
        }
        Ok(found)
    }

    /// Portals with an id above `after_id`, in id order, on `network` or on all networks; at most
    /// `limit` (capped at [`MAX_PAGE`]). Page on by passing the last id seen.
    pub async fn list_portals(
        &self,
        network: Option<&NetworkId>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Portal>, StoreError> {
        const ALL: &str = "SELECT id, network, conversation, local_name, remote_name, created_at \
             FROM portals WHERE id > $1 ORDER BY id LIMIT $2";
        const ON_NETWORK: &str = "SELECT id, network, conversation, local_name, remote_name, created_at \
             FROM portals WHERE id > $1 AND network = $3 ORDER BY id LIMIT $2";
        let limit = i64::from(limit.min(MAX_PAGE));
        let raw = on_pool!(self.pool(), p => {
            let query = match network {
                None => sqlx::query(ALL).bind(after_id).bind(limit),
                Some(network) => sqlx::query(ON_NETWORK).bind(after_id).bind(limit).bind(network.as_str()),
            };
            let rows = query.fetch_all(p).await?;
            rows.iter().map(|row| Ok(read_portal!(row))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raw.into_iter().map(RawPortal::into_portal).collect()
    }
}
