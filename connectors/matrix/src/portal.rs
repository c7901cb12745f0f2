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
//! Joining checks what the invite cannot show: whether the room is a direct chat that nobody
//! else can read ([`RoomFacts::verdict`]: only the requester and the ghost in it, not open to
//! join, history not world-readable, not end-to-end encrypted). `is_direct` on the invite is
//! only a client's hint, so the room itself is asked. A room that fails gets a notice saying
//! why, the ghost leaves, and the engine gets a permanent error: the user is never left talking
//! to a ghost that stays silent, and the engine records nothing for that room.
//!
//! A DM the ghost opened carries messages while the invite is pending, which is the state of
//! awaiting the user's consent ([`PortalStatus::Invited`]); a rejected invite is the user
//! leaving ([`PortalStatus::Left`]), which the engine tells the DM3 user as a decline.
//!
//! Afterwards the same verdict is asked again whenever the room's membership or rules change
//! ([`PortalHandling::check_portal`], docs/engine.md "Portal lifecycle"); an upgraded room is
//! followed: the ghost joins the successor, and if that room qualifies the portal moves there.
//!
//! Notices use a fixed transaction id per purpose; the homeserver keys transaction ids by user
//! and room, so a retried join posts its notice once.

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, ConversationId, NetworkUserId, PortalHandling, PortalRequest, PortalStatus,
    RemoteIdentity, Text,
};
use ruma::{OwnedTransactionId, OwnedUserId, RoomId, UserId};

use crate::client::{Attempt, Registered};
use crate::connector::{MatrixConnector, classify, room_id, text_content};
use crate::room_state::GHOST_NOT_IN_ROOM;
pub use crate::room_state::GROUP_NOT_BRIDGED;

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
        self.client()
            .send_message(ghost, room, &txn, None, &content, Attempt::First)
            .await
            .map(|_| ())
            .map_err(classify)
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

    /// `room` was upgraded to `successor`: the ghost joins it (an upgrade of a private room
    /// invites nobody by itself, so this works once the user invited the ghost, or where the
    /// server lets members of the old room in), and the portal moves there if it qualifies.
    async fn follow_upgrade(
        &self,
        ghost: &UserId,
        user: &UserId,
        room: &RoomId,
        successor: &RoomId,
    ) -> Result<PortalStatus, ConnectorError> {
        match self.client().join(ghost, successor).await {
            Ok(()) => {}
            Err(e) if !e.is_retryable() => {
                tracing::info!(%room, %successor, error = %e, "the ghost cannot join the upgraded room yet");
                return Ok(PortalStatus::Suspended {
                    reason: format!(
                        "this room was upgraded; invite {ghost} into the new room to go on there"
                    ),
                });
            }
            Err(e) => return Err(classify(e)),
        }
        let facts = self.client().room_facts(ghost, successor).await.map_err(classify)?;
        match self.as_carried(facts).and_then(|facts| facts.verdict(ghost, user)) {
            Ok(()) => {
                let successor = ConversationId::new(successor.as_str())
                    .map_err(|e| ConnectorError::Permanent(e.to_string()))?;
                Ok(PortalStatus::Moved { successor })
            }
            Err(reason) => {
                let _ = self.decline(ghost, successor, "not-direct", &reason).await;
                Ok(PortalStatus::Suspended {
                    reason: format!("the room it was upgraded to is not bridged: {reason}"),
                })
            }
        }
    }
}

fn matrix_user(user: &NetworkUserId) -> Result<OwnedUserId, ConnectorError> {
    UserId::parse(user.as_str())
        .map_err(|e| ConnectorError::Permanent(format!("`{user}` is not a Matrix user id: {e}")))
}

impl PortalHandling for MatrixConnector {
    fn open_portal<'a>(
        &'a self,
        local: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<ConversationId, ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(remote)?;
            let user = matrix_user(local)?;
            if self.client().register_ghost(ghost.localpart()).await.map_err(classify)? == Registered::Created
            {
                self.client().set_display_name(&ghost, remote.as_str()).await.map_err(classify)?;
            }
            // Asked first: a homeserver may create the room and fail only the invite, or invite
            // a user nobody will ever be (docs/engine.md, "First contact").
            if !self.client().user_exists(&ghost, &user).await.map_err(classify)? {
                return Err(ConnectorError::Permanent(format!("{user} does not exist on Matrix")));
            }
            let room =
                self.client().create_dm(&ghost, &user, self.requires_encryption()).await.map_err(|e| {
                    match classify(e) {
                        ConnectorError::Permanent(why) => ConnectorError::Permanent(format!(
                            "the homeserver refused to invite {user}: {why}"
                        )),
                        other => other,
                    }
                })?;
            tracing::info!(%room, %ghost, %user, "portal opened");
            ConversationId::new(room.as_str()).map_err(|e| ConnectorError::Permanent(e.to_string()))
        })
    }

    /// The ghost's DM only invites the user: their joining is the consent.
    fn opening_awaits_consent(&self) -> bool {
        true
    }

    fn join_portal<'a>(&'a self, request: &'a PortalRequest) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(&request.remote)?;
            let room = room_id(&request.conversation)?;
            let requester = matrix_user(&request.requester)?;
            if self.reads_encrypted_rooms() {
                // Before the join: the user's client encrypts its first message for the devices
                // it finds when the ghost joined, so the device must be there already.
                self.take_part_encrypted(&ghost).await;
            }
            self.client().join(&ghost, &room).await.map_err(classify)?;
            let facts = self.client().room_facts(&ghost, &room).await.map_err(classify)?;
            if facts.encryption.is_some() {
                self.take_part_encrypted(&ghost).await;
            }
            if let Err(reason) = self.as_carried(facts).and_then(|facts| facts.verdict(&ghost, &requester)) {
                return Err(self.decline(&ghost, &room, "not-direct", &reason).await);
            }
            tracing::info!(%room, %ghost, requester = %request.requester, "portal joined");
            Ok(())
        })
    }

    fn check_portal<'a>(
        &'a self,
        conversation: &'a ConversationId,
        user: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<PortalStatus, ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(remote)?;
            let room = room_id(conversation)?;
            let user = matrix_user(user)?;
            let facts = match self.client().room_facts(&ghost, &room).await {
                Ok(facts) => facts,
                // Kicked, banned, or left: the room cannot be read, let alone bridged.
                Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                    return Ok(PortalStatus::Suspended { reason: GHOST_NOT_IN_ROOM.to_owned() });
                }
                Err(e) => return Err(classify(e)),
            };
            if let Some(successor) = facts.successor {
                return self.follow_upgrade(&ghost, &user, &room, &successor).await;
            }
            if facts.encryption.is_some() {
                self.take_part_encrypted(&ghost).await;
            }
            Ok(match self.as_carried(facts) {
                Ok(facts) => facts.status(&ghost, &user),
                Err(reason) => PortalStatus::Suspended { reason },
            })
        })
    }

    fn leave_portal<'a>(
        &'a self,
        conversation: &'a ConversationId,
        remote: &'a RemoteIdentity,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let ghost = self.ghost_of(remote)?;
            let room = room_id(conversation)?;
            match self.client().leave(&ghost, &room, Some(reason)).await {
                Ok(()) => Ok(()),
                // Not in the room (any more): there is nothing to leave.
                Err(e) if !e.is_retryable() => {
                    tracing::debug!(%room, error = %e, "the ghost was not in the room it leaves");
                    Ok(())
                }
                Err(e) => Err(classify(e)),
            }
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
