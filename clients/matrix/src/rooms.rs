//! Rooms as a user makes and uses them: a direct chat, encrypted or not, joins, and sends.
//!
//! A send into an encrypted room is encrypted by matrix-sdk: it asks for the members' devices,
//! shares a room key with each over Olm, then sends `m.room.encrypted`. Only members and
//! devices this client has synced know of get the key; [`MatrixUser::sync_once`] first is what
//! brings a new member or device in.

use matrix_sdk::Room;
use matrix_sdk::ruma::api::client::room::create_room::v3::{Request as CreateRoom, RoomPreset};
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use serde_json::Value;

use crate::error::ClientError;
use crate::ids::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use crate::user::MatrixUser;

/// Whether a new room is end-to-end encrypted (Megolm, from its creation on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEncryption {
    Encrypted,
    Clear,
}

impl MatrixUser {
    /// Opens a direct chat with `with` (invited, `is_direct`, a private trusted room), encrypted
    /// from its first event or not; answers its id. `with` joins with [`join`](Self::join).
    pub async fn create_dm(
        &self,
        with: &UserId,
        encryption: RoomEncryption,
    ) -> Result<OwnedRoomId, ClientError> {
        self.create_room(&[with], true, encryption).await
    }

    /// Creates a private room inviting `invite`; answers its id.
    pub async fn create_room(
        &self,
        invite: &[&UserId],
        is_direct: bool,
        encryption: RoomEncryption,
    ) -> Result<OwnedRoomId, ClientError> {
        let mut request = CreateRoom::new();
        request.invite = invite.iter().map(|user| (*user).to_owned()).collect();
        request.is_direct = is_direct;
        request.preset = Some(RoomPreset::TrustedPrivateChat);
        if encryption == RoomEncryption::Encrypted {
            let state = InitialStateEvent::with_empty_state_key(
                RoomEncryptionEventContent::with_recommended_defaults(),
            );
            request.initial_state = vec![state.to_raw_any()];
        }
        let room = self.client().create_room(request).await?;
        Ok(room.room_id().to_owned())
    }

    /// Joins a room (accepting an invite) and syncs, so the room's state and members are known.
    pub async fn join(&self, room: &RoomId) -> Result<(), ClientError> {
        self.client().join_room_by_id(room).await?;
        self.sync_once().await
    }

    /// The rooms this user is invited to, as of the last sync.
    pub fn invited_rooms(&self) -> Vec<OwnedRoomId> {
        self.client().invited_rooms().iter().map(|room| room.room_id().to_owned()).collect()
    }

    /// Whether this client sees the room as encrypted (its `m.room.encryption` state).
    pub async fn is_encrypted(&self, room: &RoomId) -> Result<bool, ClientError> {
        let room = self.room(room).await?;
        Ok(room.latest_encryption_state().await?.is_encrypted())
    }

    /// Sends an `m.text` message; answers its event id.
    pub async fn send_text(&self, room: &RoomId, text: &str) -> Result<OwnedEventId, ClientError> {
        let room = self.room(room).await?;
        let sent = room.send(RoomMessageEventContent::text_plain(text)).await?;
        Ok(sent.response.event_id)
    }

    /// Sends an event of `event_type` with `content` as it is (encrypted if the room is); answers
    /// its event id. For contents ruma has no type for, such as `network.dm3.envelope`.
    pub async fn send_content(
        &self,
        room: &RoomId,
        event_type: &str,
        content: Value,
    ) -> Result<OwnedEventId, ClientError> {
        let room = self.room(room).await?;
        let sent = room.send_raw(event_type, content).await?;
        Ok(sent.response.event_id)
    }

    /// The room as this client knows it, syncing once if it does not yet (a room just joined
    /// elsewhere, or created by another device).
    pub(crate) async fn room(&self, id: &RoomId) -> Result<Room, ClientError> {
        if let Some(room) = self.client().get_room(id) {
            return Ok(room);
        }
        self.sync_once().await?;
        self.client().get_room(id).ok_or_else(|| ClientError::UnknownRoom(id.to_string()))
    }
}
