//! Portals: the direct-message rooms between one Matrix user and one ghost.
//!
//! A portal begins in one of two ways:
//! - **A DM3 user writes first.** The engine calls [`PortalHandling::open_portal`]: the ghost
//!   (registered on the spot if it is new) creates a private room marked `is_direct` with the
//!   `trusted_private_chat` preset (both sides are admins, as in any client's DM) and invites
//!   the user. `m.direct` account data is not written for the ghost: no client ever reads it.
//! - **A Matrix user invites a ghost.** The invite arrives in a transaction and becomes a
//!   [`PortalRequest`] ([`crate::batch`]); the engine decides and calls
//!   [`PortalHandling::join_portal`] or [`PortalHandling::refuse_portal`].
//!
//! Joining checks what the invite cannot show: whether the room is end-to-end encrypted and
//! whether it is a direct chat (nobody joined but the requester and the ghost). `is_direct` on
//! the invite is only a client's hint, and group rooms are not bridged, so the room itself is
//! asked. A room that fails either check gets a notice saying why, the ghost leaves, and the
//! engine gets a permanent error: the user is never left talking to a ghost that stays silent.
//!
//! Notices use a fixed transaction id per purpose; the homeserver keys transaction ids by user
//! and room, so a retried join posts its notice once.

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, ConversationId, NetworkUserId, PortalHandling, PortalRequest, RemoteIdentity,
    Text,
};
use ruma::{OwnedTransactionId, OwnedUserId, RoomId, UserId};

use crate::client::Registered;
use crate::connector::{MatrixConnector, classify, room_id, text_content};
use crate::encryption::ENCRYPTION_NOT_BRIDGED;

/// The reason given for a room with more members than the requester and the ghost.
pub const GROUP_NOT_BRIDGED: &str =
    "this room has other members, and the DM3 bridge only bridges direct chats between two people";

impl MatrixConnector {
    fn ghost_of(&self, remote: &RemoteIdentity) -> Result<OwnedUserId, ConnectorError> {
        self.ghosts().user_id(remote).map_err(|e| ConnectorError::Permanent(e.to_string()))
    }

    /// Posts `reason` as a notice from `ghost`, idempotent by `purpose`.
    async fn notice(
        &self,
        ghost: &UserId,
        room: &RoomId,
        purpose: &str,
        reason: &str,
    ) -> Result<(), ConnectorError> {
        let txn = OwnedTransactionId::from(format!("dm3-portal-{purpose}"));
        let content = text_content(&Text::plain(reason), true);
        self.client().send_message(ghost, room, &txn, None, &content).await.map(|_| ()).map_err(classify)
    }

    /// Tells the room why it is not bridged, leaves it, and answers the permanent error.
    async fn decline(&self, ghost: &UserId, room: &RoomId, purpose: &str, reason: &str) -> ConnectorError {
        if let Err(e) = self.notice(ghost, room, purpose, reason).await {
            tracing::warn!(%room, error = %e, "the notice why the room is not bridged was not sent");
        }
        if let Err(e) = self.client().leave(ghost, room, Some(reason)).await {
            tracing::warn!(%room, error = %e, "the ghost could not leave a room it does not bridge");
        }
        ConnectorError::Permanent(reason.to_owned())
    }
}

impl PortalHandling for MatrixConnector {
    fn open_portal<'a>(
        &'a self,
        local: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<ConversationId, ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(remote)?;
            let user = UserId::parse(local.as_str())
                .map_err(|e| ConnectorError::Permanent(format!("`{local}` is not a Matrix user id: {e}")))?;
            if self.client().register_ghost(ghost.localpart()).await.map_err(classify)? == Registered::Created
            {
                self.client().set_display_name(&ghost, remote.as_str()).await.map_err(classify)?;
            }
            let room = self.client().create_dm(&ghost, &user).await.map_err(classify)?;
            tracing::info!(%room, %ghost, %user, "portal opened");
            ConversationId::new(room.as_str()).map_err(|e| ConnectorError::Permanent(e.to_string()))
        })
    }

    fn join_portal<'a>(&'a self, request: &'a PortalRequest) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(&request.remote)?;
            let room = room_id(&request.conversation)?;
            self.client().join(&ghost, &room).await.map_err(classify)?;
            let encryption = self.client().room_encryption(&ghost, &room).await.map_err(classify)?;
            if !encryption.is_bridgeable() {
                return Err(self.decline(&ghost, &room, "encrypted", ENCRYPTION_NOT_BRIDGED).await);
            }
            let members = self.client().joined_members(&ghost, &room).await.map_err(classify)?;
            if members.iter().any(|member| *member != ghost && member.as_str() != request.requester.as_str())
            {
                return Err(self.decline(&ghost, &room, "group", GROUP_NOT_BRIDGED).await);
            }
            tracing::info!(%room, %ghost, requester = %request.requester, "portal joined");
            Ok(())
        })
    }

    fn refuse_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(&request.remote)?;
            let room = room_id(&request.conversation)?;
            match self.client().join(&ghost, &room).await {
                Ok(()) => {
                    self.notice(&ghost, &room, "refused", reason).await?;
                    self.client().leave(&ghost, &room, Some(reason)).await.map_err(classify)
                }
                // The invite is gone or cannot be accepted: rejecting it still shows the reason.
                Err(e) if !e.is_retryable() => {
                    tracing::debug!(%room, error = %e, "could not join to refuse; rejecting the invite");
                    self.client().leave(&ghost, &room, Some(reason)).await.map_err(classify)
                }
                Err(e) => Err(classify(e)),
            }
        })
    }
}
