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
//! A portal has a state (docs/engine.md, "Portal lifecycle"): `live` while its conversation is
//! a direct chat between its two people, `suspended` (with the reason both sides were told)
//! while it is not. A portal that moves to another conversation (a new DM, an upgraded room)
//! keeps its row, its id and its message map: [`Store::rebind_portal`] changes the conversation
//! in place. A lookup reuses a portal read less than a second ago ([`super::recent_portals`]);
//! every change made here forgets what was read, and a change another replica wrote is seen
//! within that second.
//!
//! A portal a DM3 user opened awaits the network user's consent ([`Consent`]) until they
//! accept; [`super::consent`] counts what is held for them meanwhile.

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
    /// Whether the network user has yet to accept the conversation.
    pub consent: Consent,
}

/// Whether the network user accepted the conversation (docs/engine.md, "First contact").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// They opened it, or joined the one a DM3 user opened: messages flow as they come.
    Given,
    /// A DM3 user wrote first and the network user has not accepted (a Matrix invite not yet
    /// joined) since this time: only a few messages are held for them.
    AwaitingSince(i64),
}

impl Consent {
    fn column(self) -> Option<i64> {
        match self {
            Consent::Given => None,
            Consent::AwaitingSince(at) => Some(at),
        }
    }

    fn from_column(since: Option<i64>) -> Self {
        since.map_or(Consent::Given, Consent::AwaitingSince)
    }

    pub fn is_awaited(self) -> bool {
        matches!(self, Consent::AwaitingSince(_))
    }
}

/// Whether a portal carries messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalState {
    /// Its conversation is a direct chat between its two people: messages cross it.
    Live,
    /// Nothing crosses it, for `reason` (told to both sides when it was suspended).
    Suspended { reason: String },
    /// Suspended for `reason`, its conversation end-to-end encrypted in a way the bridge cannot
    /// write, but carrying what a DM3 client encrypted for it itself (a bridge payload): each
    /// message goes to the connector, which refuses anything in the clear (migration 0018).
    CiphertextOnly { reason: String },
}

impl PortalState {
    pub fn is_live(&self) -> bool {
        matches!(self, PortalState::Live)
    }

    /// Nothing in the clear crosses it (it is suspended, or carries ciphertext only), and why.
    pub fn pause_reason(&self) -> Option<&str> {
        match self {
            PortalState::Live => None,
            PortalState::Suspended { reason } | PortalState::CiphertextOnly { reason } => Some(reason),
        }
    }

    /// The stored form: `state`, `state_reason` and `ciphertext_only`.
    fn columns(&self) -> (&'static str, Option<&str>, bool) {
        match self {
            PortalState::Live => ("live", None, false),
            PortalState::Suspended { reason } => ("suspended", Some(reason), false),
            PortalState::CiphertextOnly { reason } => ("suspended", Some(reason), true),
        }
    }
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
    pub state: PortalState,
    /// When the state or the conversation last changed (0: never since it was created).
    pub updated_at_ms: i64,
    pub consent: Consent,
}

struct RawPortal {
    id: i64,
    network: String,
    conversation: String,
    local_name: String,
    remote_name: String,
    created_at: i64,
    state: String,
    state_reason: Option<String>,
    ciphertext_only: bool,
    updated_at: i64,
    awaiting_consent_since: Option<i64>,
}

/// The columns every portal query reads, in [`read_portal!`]'s names.
macro_rules! portal_columns {
    () => {
        "id, network, conversation, local_name, remote_name, created_at, state, state_reason, ciphertext_only, \
         updated_at, awaiting_consent_since"
    };
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
            state: $row.try_get("state")?,
            state_reason: $row.try_get("state_reason")?,
            ciphertext_only: $row.try_get("ciphertext_only")?,
            updated_at: $row.try_get("updated_at")?,
            awaiting_consent_since: $row.try_get("awaiting_consent_since")?,
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
            state: match (self.state.as_str(), self.state_reason, self.ciphertext_only) {
                ("live", _, _) => PortalState::Live,
                ("suspended", reason, false) => PortalState::Suspended { reason: reason.unwrap_or_default() },
                ("suspended", reason, true) => {
                    PortalState::CiphertextOnly { reason: reason.unwrap_or_default() }
                }
                (other, _, _) => {
                    return Err(StoreError::Corrupt(format!("portal {}: state `{other}`", self.id)));
                }
            },
            updated_at_ms: self.updated_at,
            consent: Consent::from_column(self.awaiting_consent_since),
        })
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
        const SQL: &str = "INSERT INTO portals \
             (network, conversation, local_name, remote_name, created_at, awaiting_consent_since) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
        let owned = portal.clone();
        let inserted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(owned.network.as_str())
            .bind(owned.conversation.as_str())
            .bind(owned.local_name.as_str())
            .bind(owned.remote_name.as_str())
            .bind(now_ms)
            .bind(owned.consent.column())
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        let outcome = if inserted == 1 { Inserted::New } else { Inserted::Duplicate };
        self.recent_portals().forget_all();
        if let Some(stored) = self.portal_by_conversation(&portal.network, &portal.conversation).await? {
            return Ok((stored, outcome));
        }
        match self.portal_by_names(&portal.network, &portal.local_name, &portal.remote_name).await? {
            Some(stored) => Ok((stored, outcome)),
            // Unlinked (deleted) between the insert and the lookups: rare enough to retry.
            None => Err(StoreError::Corrupt("a conflicting portal vanished".to_owned())),
        }
    }

    /// The portal of a network conversation.
    pub async fn portal_by_conversation(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
    ) -> Result<Option<Portal>, StoreError> {
        if let Some(recent) = self.recent_portals().by_conversation(network, conversation) {
            return Ok(Some(recent));
        }
        self.portal_by_conversation_now(network, conversation).await
    }

    /// [`portal_by_conversation`](Self::portal_by_conversation) read from the database even if
    /// it was read in the last second: for a decision that must not rest on another replica's
    /// change not yet seen (a consent given there).
    pub async fn portal_by_conversation_now(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
    ) -> Result<Option<Portal>, StoreError> {
        const SQL: &str =
            concat!("SELECT ", portal_columns!(), " FROM portals WHERE network = $1 AND conversation = $2");
        let read_began = self.recent_portals().ticket();
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
            self.recent_portals().remember(portal, read_began);
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
        const SQL: &str = concat!(
            "SELECT ",
            portal_columns!(),
            " FROM portals WHERE network = $1 AND local_name = $2 AND remote_name = $3"
        );
        if let Some(recent) = self.recent_portals().by_names(network, local_name, remote_name) {
            return Ok(Some(recent));
        }
        let read_began = self.recent_portals().ticket();
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
            self.recent_portals().remember(portal, read_began);
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
        const ALL: &str =
            concat!("SELECT ", portal_columns!(), " FROM portals WHERE id > $1 ORDER BY id LIMIT $2");
        const ON_NETWORK: &str = concat!(
            "SELECT ",
            portal_columns!(),
            " FROM portals WHERE id > $1 AND network = $3 ORDER BY id LIMIT $2"
        );
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

    /// The portal `id`.
    pub async fn portal(&self, id: i64) -> Result<Option<Portal>, StoreError> {
        const SQL: &str = concat!("SELECT ", portal_columns!(), " FROM portals WHERE id = $1");
        let raw = on_pool!(self.pool(), p => {
            match sqlx::query(SQL).bind(id).fetch_optional(p).await? {
                None => None,
                Some(row) => Some(read_portal!(row)),
            }
        });
        raw.map(RawPortal::into_portal).transpose()
    }

    /// Sets the state of portal `id`; false if there is no such portal.
    pub async fn set_portal_state(
        &self,
        id: i64,
        state: &PortalState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE portals SET state = $2, state_reason = $3, updated_at = $4, \
                           ciphertext_only = $5 WHERE id = $1";
        let (state, reason, ciphertext_only) = state.columns();
        let reason = reason.map(str::to_owned);
        let changed = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(id)
            .bind(state)
            .bind(reason.as_deref())
            .bind(now_ms)
            .bind(ciphertext_only)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        self.recent_portals().forget_all();
        Ok(changed == 1)
    }

    /// Moves portal `id` to `conversation` and makes it live, in one commit with its message
    /// map: the messages carried in the old conversation stay known to the portal, so a DM3
    /// reply, edit or reaction to one of them still finds its target. False if there is no
    /// such portal; an error if another portal holds `conversation`.
    pub async fn rebind_portal(
        &self,
        id: i64,
        conversation: &ConversationId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const MOVE_MAP: &str = "UPDATE message_map SET conversation = $3 \
             WHERE network = $1 AND conversation = $2";
        const MOVE_PORTAL: &str = "UPDATE portals SET conversation = $2, state = 'live', state_reason = NULL, \
             ciphertext_only = FALSE, awaiting_consent_since = NULL, updated_at = $3 WHERE id = $1";
        let Some(portal) = self.portal(id).await? else { return Ok(false) };
        if &portal.conversation == conversation {
            return self.set_portal_state(id, &PortalState::Live, now_ms).await;
        }
        let (network, old, new) = (portal.network.clone(), portal.conversation.clone(), conversation.clone());
        let moved = write_on!(self, c => {
            sqlx::query(MOVE_MAP)
                .bind(network.as_str())
                .bind(old.as_str())
                .bind(new.as_str())
                .execute(&mut *c)
                .await?;
            Ok(sqlx::query(MOVE_PORTAL).bind(id).bind(new.as_str()).bind(now_ms).execute(&mut *c).await?.rows_affected())
        })?;
        self.recent_portals().forget_all();
        Ok(moved == 1)
    }

    /// Forgets portal `id` (an admin unlinked it). Its message map stays: a new portal of the
    /// pair starts without it, and the old conversation's events no longer find a portal.
    /// False if there was no such portal.
    pub async fn delete_portal(&self, id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM portals WHERE id = $1";
        let deleted = write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        self.recent_portals().forget_all();
        Ok(deleted == 1)
    }
}

mod activity;
pub use activity::PortalActivity;
