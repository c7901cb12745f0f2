//! Telegram username aliases: to which account an alias is bound, and the start links its DM3
//! senders were given (migration 0015, docs/names.md section 8).
//!
//! Both live in the database, not in memory: a binding decides who may read what was written to
//! a username, so it must outlive a restart and be the same on every replica. A move (another
//! account starts while holding the username) and the forgetting of the alias's portals are one
//! commit: no message can find the old account's conversation after the alias moved.

use dm3::ens::EnsName;
use sqlx::Row;

use super::{QueueName, Store, StoreError, on_pool, write_on};

/// The account an alias is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasBinding {
    /// The Telegram user id, as text.
    pub telegram_user: String,
    /// Since when it is bound to that account.
    pub bound_at_ms: i64,
    /// Whether it took the alias from another account.
    pub moved: bool,
}

/// What a start did to the binding of an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Bound for the first time.
    New,
    /// Already bound to that account.
    Again,
    /// Moved from the account named here.
    Moved { from: String },
}

/// A start link given to a DM3 sender of an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasLink {
    pub alias: EnsName,
    pub sender: EnsName,
    /// The account that started with it, if any did.
    pub released_to: Option<String>,
}

impl Store {
    /// The account `alias` is bound to, if any.
    pub async fn alias_binding(&self, alias: &EnsName) -> Result<Option<AliasBinding>, StoreError> {
        const SQL: &str =
            "SELECT telegram_user, bound_at, moved FROM telegram_alias_bindings WHERE alias = $1";
        on_pool!(self.pool(), p => match sqlx::query(SQL).bind(alias.as_str()).fetch_optional(p).await? {
            None => Ok(None),
            Some(row) => Ok(Some(AliasBinding {
                telegram_user: row.try_get("telegram_user")?,
                bound_at_ms: row.try_get("bound_at")?,
                moved: row.try_get::<i64, _>("moved")? != 0,
            })),
        })
    }

    /// Binds `alias` to `telegram_user` (its username's holder started the bot). A move also
    /// forgets the alias's portals, which lead to the old account's chat.
    pub async fn bind_alias(
        &self,
        alias: &EnsName,
        telegram_user: &str,
        now_ms: i64,
    ) -> Result<Bound, StoreError> {
        const READ: &str = "SELECT telegram_user FROM telegram_alias_bindings WHERE alias = $1";
        const INSERT: &str = "INSERT INTO telegram_alias_bindings (alias, telegram_user, bound_at, moved) \
             VALUES ($1, $2, $3, 0) ON CONFLICT (alias) DO NOTHING";
        const MOVE: &str = "UPDATE telegram_alias_bindings SET telegram_user = $2, bound_at = $3, moved = 1 \
             WHERE alias = $1";
        const FORGET_PORTALS: &str = "DELETE FROM portals WHERE local_name = $1";
        let (alias, user) = (alias.clone(), telegram_user.to_owned());
        let bound = write_on!(self, c => {
            let old: Option<String> = match sqlx::query(READ).bind(alias.as_str()).fetch_optional(&mut *c).await? {
                Some(row) => Some(row.try_get("telegram_user")?),
                None => None,
            };
            match old {
                None => {
                    sqlx::query(INSERT).bind(alias.as_str()).bind(&user).bind(now_ms).execute(&mut *c).await?;
                    Ok(Bound::New)
                }
                Some(old) if old == user => Ok(Bound::Again),
                Some(old) => {
                    sqlx::query(MOVE).bind(alias.as_str()).bind(&user).bind(now_ms).execute(&mut *c).await?;
                    sqlx::query(FORGET_PORTALS).bind(alias.as_str()).execute(&mut *c).await?;
                    Ok(Bound::Moved { from: old })
                }
            }
        })?;
        if matches!(bound, Bound::Moved { .. }) {
            self.recent_portals().forget_all();
        }
        Ok(bound)
    }

    /// Keeps the start link `token` of (`alias`, `sender`); the first one kept stays.
    pub async fn record_alias_link(
        &self,
        token: &str,
        alias: &EnsName,
        sender: &EnsName,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO telegram_alias_links (token, alias, sender, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let (token, alias, sender) = (token.to_owned(), alias.clone(), sender.clone());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL)
                .bind(&token)
                .bind(alias.as_str())
                .bind(sender.as_str())
                .bind(now_ms)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// The link whose token is `token`.
    pub async fn alias_link(&self, token: &str) -> Result<Option<AliasLink>, StoreError> {
        const SQL: &str = "SELECT alias, sender, released_to FROM telegram_alias_links WHERE token = $1";
        let row = on_pool!(self.pool(), p => match sqlx::query(SQL).bind(token).fetch_optional(p).await? {
            None => None,
            Some(row) => Some((
                row.try_get::<String, _>("alias")?,
                row.try_get::<String, _>("sender")?,
                row.try_get::<Option<String>, _>("released_to")?,
            )),
        });
        let Some((alias, sender, released_to)) = row else { return Ok(None) };
        let name = |text: String| {
            EnsName::from_normalized(&text)
                .map_err(|e| StoreError::Corrupt(format!("alias link name {text}: {e}")))
        };
        Ok(Some(AliasLink { alias: name(alias)?, sender: name(sender)?, released_to }))
    }

    /// `telegram_user` started with link `token`: the sender's held messages may go to them.
    pub async fn release_alias_link(&self, token: &str, telegram_user: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE telegram_alias_links SET released_to = $2 WHERE token = $1";
        let (token, user) = (token.to_owned(), telegram_user.to_owned());
        write_on!(self, one_statement, c => {
            sqlx::query(SQL).bind(&token).bind(&user).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// The account that started with the link of (`alias`, `sender`), if one did.
    pub async fn alias_released_to(
        &self,
        alias: &EnsName,
        sender: &EnsName,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT released_to FROM telegram_alias_links WHERE alias = $1 AND sender = $2";
        on_pool!(self.pool(), p => match sqlx::query(SQL)
            .bind(alias.as_str())
            .bind(sender.as_str())
            .fetch_optional(p)
            .await?
        {
            None => Ok(None),
            Some(row) => Ok(row.try_get::<Option<String>, _>("released_to")?),
        })
    }

    /// Makes the pending inbox jobs of `alias` due now: a start decided their fate, and the
    /// senders should not wait out a backoff. Their conversations are `<alias>:<sender>`, a
    /// range of the conversation index (`;` follows `:`).
    pub async fn wake_alias_jobs(&self, alias: &EnsName, now_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE bridge_jobs SET next_attempt_at = $4 WHERE queue = $1 AND state = 'pending' \
             AND conversation > $2 AND conversation < $3 AND next_attempt_at > $4";
        let (from, to) = (format!("{alias}:"), format!("{alias};"));
        write_on!(self, one_statement, c => Ok(sqlx::query(SQL)
            .bind(QueueName::Inbox.as_str())
            .bind(&from)
            .bind(&to)
            .bind(now_ms)
            .execute(&mut *c)
            .await?
            .rows_affected()))
    }
}
