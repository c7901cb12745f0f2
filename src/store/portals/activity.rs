//! The portals of one virtual identity with when each last carried a message: what an admin
//! sees as the identity's conversations.
//!
//! A virtual identity's traffic goes through the engine, not the relay's envelope store, so
//! the admin's conversation list read from stored envelopes was empty for it (issue #20). The
//! portals are its conversations; the message map says when each last bridged a message,
//! through its index by conversation (migration 0013), one seek per portal; the portals themselves through their index by `local_name` (same migration).

use dm3::ens::EnsName;
use sqlx::Row;

use super::{Portal, RawPortal};
use crate::store::{Store, StoreError, on_pool};

/// A portal and its last bridged message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalActivity {
    pub portal: Portal,
    /// When the message map last recorded a message of its conversation, if ever.
    pub last_message_at_ms: Option<i64>,
}

/// The portals of `$1` on every network (a Telegram user's identity may stand in on the loopback
/// network too), found through the index on `local_name` (migration 0013), most recently active
/// first.
const OF_IDENTITY: &str = concat!(
    "SELECT ",
    portal_columns!(),
    ", (SELECT MAX(m.created_at) FROM message_map m \
        WHERE m.network = portals.network AND m.conversation = portals.conversation) AS last_message_at \
     FROM portals WHERE local_name = $1 \
     ORDER BY last_message_at DESC NULLS LAST, id DESC LIMIT $2"
);

impl Store {
    /// Up to `limit` portals of the virtual identity `name`, most recently active first (those
    /// that never carried a message last, newest portal first).
    pub async fn identity_portals(
        &self,
        name: &EnsName,
        limit: u32,
    ) -> Result<Vec<PortalActivity>, StoreError> {
        let raw = on_pool!(self.pool(), p => {
            let rows = sqlx::query(OF_IDENTITY)
                .bind(name.as_str())
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|row| Ok((read_portal!(row), row.try_get::<Option<i64>, _>("last_message_at")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        raw.into_iter()
            .map(|(portal, last)| {
                Ok(PortalActivity { portal: portal.into_portal()?, last_message_at_ms: last })
            })
            .collect()
    }
}
