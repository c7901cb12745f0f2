//! Messages as they arrive: what others send this user, decrypted where the room is
//! encrypted, handed to a channel with the moment the client had it.
//!
//! [`crate::timeline`] reads a room's history after the fact, which is what a test asks; the
//! load benchmark (`benches/bridge_load.rs`, `encrypted`) asks when each message reached the
//! user's screen, so it listens to the sync instead. matrix-sdk decrypts an `m.room.encrypted`
//! before its handlers see it, so an encrypted message arrives here as the message it carries,
//! and one it cannot decrypt does not arrive at all.

use std::time::Instant;

use matrix_sdk::Room;
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::ruma::events::room::message::OriginalSyncRoomMessageEvent;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::ids::{OwnedRoomId, OwnedUserId};
use crate::user::MatrixUser;

/// One message another user sent, as this client received it.
#[derive(Debug, Clone)]
pub struct Arrived {
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub body: String,
    /// Whether it came encrypted (and this device decrypted it).
    pub encrypted: bool,
    /// When the client had it.
    pub at: Instant,
}

impl MatrixUser {
    /// Every `m.room.message` others send from now on, through the sync (which the caller runs,
    /// [`MatrixUser::start_sync`]). The channel ends when the client is dropped.
    pub fn watch_messages(&self) -> Result<UnboundedReceiver<Arrived>, crate::ClientError> {
        let me = self.user_id()?;
        let (arrivals, received) = unbounded_channel();
        self.client().add_event_handler(
            move |event: OriginalSyncRoomMessageEvent, room: Room, encryption: Option<EncryptionInfo>| {
                let at = Instant::now();
                if event.sender != me {
                    // The receiver gone means nobody is watching any more: nothing to tell.
                    let _ = arrivals.send(Arrived {
                        room_id: room.room_id().to_owned(),
                        sender: event.sender.clone(),
                        body: event.content.body().to_owned(),
                        encrypted: encryption.is_some(),
                        at,
                    });
                }
                std::future::ready(())
            },
        );
        Ok(received)
    }
}
