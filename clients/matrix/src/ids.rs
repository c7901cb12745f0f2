//! The Matrix ids of this crate's API: matrix-sdk's (ruma 0.16) re-exported, so a caller on the
//! service's ruma 0.17 parses strings into these and never mixes the two crates' types.

pub use matrix_sdk::ruma::{
    DeviceId, EventId, OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId,
};

use crate::error::ClientError;

/// Parses a user id (`@bob:example.org`).
pub fn user_id(text: &str) -> Result<OwnedUserId, ClientError> {
    UserId::parse(text).map_err(|_| ClientError::BadId { kind: "user", id: text.to_owned() })
}

/// Parses a room id (`!abc:example.org`).
pub fn room_id(text: &str) -> Result<OwnedRoomId, ClientError> {
    RoomId::parse(text).map_err(|_| ClientError::BadId { kind: "room", id: text.to_owned() })
}
