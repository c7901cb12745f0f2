//! Whether a room is end-to-end encrypted, as a typed outcome, and the words users are shown.
//!
//! With `[matrix] encryption = "on"` the ghosts speak Megolm (`crate::crypto`); with `off`, or
//! in a room whose algorithm is not Megolm, they cannot, and their plaintext would appear
//! unencrypted in a room whose members believe every message encrypted. That must never happen
//! (issue 17), whatever the setting: the room is refused in plain words instead. Three places
//! keep to it:
//! - a portal is joined only if its room is unencrypted ([`crate::room_state`]);
//! - `m.room.encryption` in a transaction is a conversation change ([`crate::batch`]), on which
//!   the engine suspends the portal;
//! - and, so that a transaction that is late, reordered or pushed to another replica cannot
//!   leak, every cleartext send asks the homeserver first ([`crate::cleartext`]).

use serde_json::{Map, Value};

/// The reason given to users for an encrypted room: the room's members read it in a notice,
/// a DM3 sender in the report on their message.
pub const ENCRYPTION_NOT_BRIDGED: &str = "this room is end-to-end encrypted in a way this DM3 bridge does not \
                                          write (its operator turned encryption off, or the room's algorithm \
                                          is not Megolm)";

/// The reason given to a Matrix user for an encrypted message when `[matrix] encryption` is
/// `off`.
pub const ENCRYPTION_OFF: &str = "this message is end-to-end encrypted, and this DM3 bridge is set not to read \
                                  encrypted rooms (its operator turned encryption off)";

/// A room's encryption state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEncryption {
    /// No `m.room.encryption` state: messages are readable by the bridge.
    Unencrypted,
    /// The room has `m.room.encryption` with this algorithm (empty if the content names none).
    Encrypted { algorithm: String },
}

impl RoomEncryption {
    /// The state of a room whose `m.room.encryption` has `content`. Any content at all is
    /// encryption: clients turn it on whatever the algorithm, and reading it strictly would
    /// let an odd event pass for an unencrypted room.
    pub fn from_content(content: &Map<String, Value>) -> Self {
        let algorithm = content.get("algorithm").and_then(Value::as_str).unwrap_or_default();
        RoomEncryption::Encrypted { algorithm: algorithm.to_owned() }
    }

    /// Whether the bridge can carry messages in this room.
    pub fn is_bridgeable(&self) -> bool {
        matches!(self, RoomEncryption::Unencrypted)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn content(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn any_content_is_encryption() {
        let megolm = RoomEncryption::from_content(&content(json!({"algorithm": "m.megolm.v1.aes-sha2"})));
        assert_eq!(megolm, RoomEncryption::Encrypted { algorithm: "m.megolm.v1.aes-sha2".to_owned() });
        for odd in [json!({}), json!({"algorithm": 5}), json!({"algorithm": "x.unknown"})] {
            let state = RoomEncryption::from_content(&content(odd.clone()));
            assert!(!state.is_bridgeable(), "{odd}");
        }
    }
}
