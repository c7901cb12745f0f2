//! The gate before every cleartext send: never plaintext into an encrypted room.
//!
//! A room can be switched to encrypted at any moment by any member with the power to, and the
//! bridge learns of it through a transaction, which the engine turns into a suspended portal
//! ([`crate::encryption`]). That alone leaves windows in which a DM3 message is posted in the
//! clear after encryption was switched on: the inbox and the outbox run concurrently, so a
//! message can be sent while the change waits its turn; a homeserver that found the bridge
//! unreachable holds its transactions back for minutes; another replica may receive the
//! transaction; a transaction can be lost to an operator's mistake (a regenerated registration).
//!
//! So every send that would put bridged content in the clear into a room first asks the
//! homeserver for the room's `m.room.encryption` state, as the ghost that is about to send.
//! A cache would be cheaper only by the length of its life, and that life is exactly the
//! window in which a missed or late transaction leaks (an invalidation by the transaction
//! cannot shorten it: the transaction is what may be late or missing, and another replica's
//! cache never sees it). A state read is a small request beside the send it guards: Synapse
//! answers it for a joined user from its current-state caches (`get_current_state_event`),
//! while a send builds, authorizes and persists an event. The window left is the time between
//! the read and the send, which no client-server request can close. Once the room is found
//! encrypted the engine pauses the portal, and the relay's portal read serves the messages
//! after it; only messages to a ciphertext-only portal still ask, one read each.
//!
//! What passes without asking: the bridge's own notices (`m.notice`, which say why a message
//! was not carried and hold no bridged content: `Content::Notice` toward a network is the
//! bridge's voice only), a DM3 client's prepared `m.room.encrypted` (ciphertext already,
//! docs/bridge-payload.md §6), read receipts (not room events), and redactions without a reason
//! (they carry nothing but the id of what is removed, and removing a message sent in the clear
//! before the room was encrypted is what a user would want). A redaction's reason goes only
//! into an unencrypted room.

use dm3_bridge_connector::{ConnectorError, Unsupported};
use ruma::{RoomId, UserId};

use crate::connector::{MatrixConnector, classify};
use crate::encryption::{ENCRYPTION_NOT_BRIDGED, RoomEncryption};

impl MatrixConnector {
    /// `Ok` if `ghost` may post cleartext into `room` now; the room's encryption as an
    /// [`Unsupported::CiphertextOnly`] refusal (on which the engine suspends the portal for
    /// everything but ciphertext) if not.
    pub(crate) async fn cleartext_allowed(
        &self,
        ghost: &UserId,
        room: &RoomId,
    ) -> Result<(), ConnectorError> {
        match self.client().room_encryption(ghost, room).await.map_err(classify)? {
            RoomEncryption::Unencrypted => Ok(()),
            RoomEncryption::Encrypted { algorithm } => {
                Err(self.refuse_cleartext(ghost, room, &algorithm).await)
            }
        }
    }

    /// The refusal of a cleartext send into `room`, encrypted with `algorithm`.
    pub(crate) async fn refuse_cleartext(
        &self,
        ghost: &UserId,
        room: &RoomId,
        algorithm: &str,
    ) -> ConnectorError {
        tracing::warn!(%room, %algorithm, "a cleartext send into an encrypted room was refused");
        self.take_part_encrypted(ghost).await;
        Unsupported::CiphertextOnly(ENCRYPTION_NOT_BRIDGED.to_owned()).into()
    }
}
