//! A Telegram user's `/start` and the alias of their username (docs/names.md section 8).
//!
//! The start binds `u-<username>.tg.<parent>` to the account that holds the username now
//! (Telegram gives a username to one account at a time, and the update's `from.username` is the
//! holder's): the first start binds it, a start by another account moves it. A start by a
//! held-message link also releases the link's sender's held messages to the account, if the
//! link was made for this very username. The alias's pending jobs are then woken: what the start
//! released goes now, and what a move refused fails now and is reported to its sender.

use dm3::bridge_names::TelegramUsername;
use dm3_bridge_connector::{NetworkId, RemoteIdentity};
use dm3_bridge_telegram::ids::conversation_id;
use dm3_bridge_telegram::{StateError, TelegramUser};

use crate::clock::now_ms;
use crate::identities::IdentityVault;
use crate::store::{Bound, Consent, NewPortal};

/// Binds the alias of `user`'s username to them and releases what `held_token`'s link holds;
/// answers the DM3 sender it released.
pub async fn started(
    vault: &IdentityVault,
    network: &NetworkId,
    user: &TelegramUser,
    held_token: Option<&str>,
) -> Result<Option<RemoteIdentity>, StateError> {
    let username = user.username.as_deref().and_then(|name| name.parse::<TelegramUsername>().ok());
    let Some(scheme) = vault.scheme() else { return Ok(None) };
    let Some(username) = username else {
        return match held_token {
            Some(_) => Err(StateError::Refused(
                "This link is for the holder of a Telegram username, and your account has none. Set \
                 one in Telegram's settings, then open the link again."
                    .to_owned(),
            )),
            None => Ok(None),
        };
    };
    let (_, alias) = scheme.alias_for(&username).map_err(|e| StateError::Refused(e.to_string()))?;
    if vault.alias_username(&alias).is_none() {
        return Ok(None); // aliases are no identities on this node
    }
    let store = vault.store();
    let account = user.id.to_string();
    let now = now_ms();
    let released = match held_token {
        None => None,
        Some(token) => {
            let link = store.alias_link(token).await.map_err(unavailable)?.ok_or_else(|| {
                StateError::Refused(
                    "This link was not made by this bridge, or it is no longer valid.".to_owned(),
                )
            })?;
            if link.alias != alias {
                let meant = vault
                    .alias_username(&link.alias)
                    .map_or_else(|| link.alias.to_string(), |u| u.to_string());
                return Err(StateError::Refused(format!(
                    "This link was made for {meant}, and your username is {username}: the messages it \
                     leads to are not for this account."
                )));
            }
            Some(link)
        }
    };
    match store.bind_alias(&alias, &account, now).await.map_err(unavailable)? {
        Bound::Moved { from } => {
            tracing::info!(%alias, from, to = account, "a Telegram username's alias moved to another account")
        }
        Bound::New => tracing::info!(%alias, account, "a Telegram username's alias was bound"),
        Bound::Again => {}
    }
    let sender = match (released, held_token) {
        (Some(link), Some(token)) => {
            store.release_alias_link(token, &account).await.map_err(unavailable)?;
            let sender = RemoteIdentity::new(link.sender.as_str())
                .map_err(|e| StateError::Refused(format!("{}: {e}", link.sender)))?;
            // The chat with the sender is the alias's portal from now on: the held messages go
            // there and what the user writes there goes out from the alias, the name the sender
            // wrote to. (A chat the user had with the sender before stays theirs.)
            let chat = i64::try_from(user.id)
                .map_err(|_| StateError::Refused("Telegram sent no valid user id for you.".to_owned()))?;
            let conversation =
                conversation_id(chat, &sender).map_err(|e| StateError::Refused(e.to_string()))?;
            let portal = NewPortal {
                network: network.clone(),
                conversation,
                local_name: alias.clone(),
                remote_name: link.sender.clone(),
                consent: Consent::Given,
            };
            store.insert_or_get_portal(&portal, now).await.map_err(unavailable)?;
            Some(sender)
        }
        _ => None,
    };
    store.wake_alias_jobs(&alias, now).await.map_err(unavailable)?;
    Ok(sender)
}

fn unavailable(error: crate::store::StoreError) -> StateError {
    StateError::Unavailable(format!("the bridge's database: {error}"))
}
