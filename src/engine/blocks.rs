//! Whether a DM3 sender may reach a bridged user now: the block and the portal's state, checked
//! at the relay's submit and again before a queued message is delivered (docs/relay.md, "Block
//! and rate limits").
//!
//! A network user refuses a DM3 sender by blocking them (Telegram `/block`, stored per virtual
//! identity and sender, `store::blocks`) or by leaving the conversation with them (the portal is
//! then suspended, docs/engine.md "Portal lifecycle"). Either way the relay refuses the sender's
//! next envelope at submit with -32012, before anything is queued: a queued job would only fail
//! later and send the sender a DM3 failure report for each message, the cost a blocker wants to
//! avoid. A message queued before the block is dropped by the inbox when its turn comes
//! ([`dropped`]): the user asked not to see this sender, and the sender's submit was accepted
//! before, so no report follows (the next submit tells them).
//!
//! Every network's command changes a block through [`change`] (Telegram `/block`, Matrix
//! `!dm3 block` in the portal, [`super::commands`]): one store path, so both networks' blocks
//! hold the same way at submit and in the inbox.

use dm3::ens::EnsName;
use dm3_bridge_connector::NetworkId;

use crate::protocol::{DeliveryError, Rejection};
use crate::store::{Blocked, PortalState, Store, StoreError};

/// The refusal of `sender`'s envelope for `receiver` (a virtual identity whose connector is
/// `network`), if the receiver blocked the sender or the portal between them is suspended.
pub async fn refusal(
    store: &Store,
    network: Option<&NetworkId>,
    receiver: &EnsName,
    sender: &EnsName,
) -> Result<Option<DeliveryError>, StoreError> {
    if store.is_blocked(receiver, sender).await? {
        return Ok(Some(DeliveryError::rejected(
            Rejection::Blocked,
            format!("{receiver} has blocked {sender} on this bridge: the message was not accepted"),
        )));
    }
    let Some(network) = network else { return Ok(None) };
    match store.portal_by_names(network, receiver, sender).await? {
        Some(portal) => match portal.state {
            // Whether a message is ciphertext only its connector can tell, at the send.
            PortalState::Live | PortalState::CiphertextOnly { .. } => Ok(None),
            PortalState::Suspended { reason } => Ok(Some(DeliveryError::rejected(
                Rejection::Blocked,
                format!("{receiver} cannot be reached in the conversation with {sender}: {reason}"),
            ))),
        },
        None => Ok(None),
    }
}

/// Whether a message from `sender` to `receiver`, queued before, is to be dropped now that the
/// receiver blocked them.
pub async fn dropped(store: &Store, receiver: &EnsName, sender: &EnsName) -> Result<bool, StoreError> {
    store.is_blocked(receiver, sender).await
}

/// What a block or an unblock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockChange {
    Blocked,
    /// Blocked before: nothing changed.
    AlreadyBlocked,
    Unblocked,
    /// Not blocked: nothing changed.
    NotBlocked,
    /// The identity blocks the most senders kept for one (`store::MAX_BLOCKS_PER_IDENTITY`):
    /// nothing was written.
    Full,
}

/// Blocks (`blocked`) or unblocks `sender` for the virtual identity `identity`, at `now_ms`.
/// Both are idempotent, since a network may hand the same command over twice.
pub async fn change(
    store: &Store,
    identity: &EnsName,
    sender: &EnsName,
    blocked: bool,
    now_ms: i64,
) -> Result<BlockChange, StoreError> {
    if !blocked {
        let lifted = store.unblock_sender(identity, sender).await?;
        return Ok(if lifted { BlockChange::Unblocked } else { BlockChange::NotBlocked });
    }
    Ok(match store.block_sender(identity, sender, now_ms).await? {
        Blocked::New => BlockChange::Blocked,
        Blocked::Already => BlockChange::AlreadyBlocked,
        Blocked::Full => BlockChange::Full,
    })
}
