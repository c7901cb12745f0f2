//! Whether a room is end-to-end encrypted, as a typed outcome.
//!
//! The bridge does not do Megolm yet, so in an encrypted room it would see only ciphertext and
//! its ghosts' plaintext would be refused or, worse, shown unencrypted in a room whose members
//! expect encryption. The engine therefore checks [`RoomEncryption`] (from
//! [`crate::Client::room_encryption`] or an `m.room.encryption` event in a transaction) and
//! tells the user plainly that encryption is not bridged yet (issue 5), instead of failing in a
//! way nobody sees.

use dm3_bridge_connector::Capabilities;

/// The reason given to users for an encrypted room.
pub const ENCRYPTION_NOT_BRIDGED: &str =
    "this room is end-to-end encrypted, and the DM3 bridge does not bridge encrypted rooms yet";

/// A room's encryption state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEncryption {
    /// No `m.room.encryption` state: messages are readable by the bridge.
    Unencrypted,
    /// The room has `m.room.encryption` with this algorithm.
    Encrypted { algorithm: String },
}

impl RoomEncryption {
    /// Whether the bridge can carry messages in this room.
    pub fn is_bridgeable(&self) -> bool {
        matches!(self, RoomEncryption::Unencrypted)
    }

    /// The capabilities of a room in this state, given those of an unencrypted room.
    pub fn capabilities(&self, unencrypted: Capabilities) -> Capabilities {
        match self {
            RoomEncryption::Unencrypted => unencrypted,
            RoomEncryption::Encrypted { .. } => Capabilities::blocked(ENCRYPTION_NOT_BRIDGED),
        }
    }
}
