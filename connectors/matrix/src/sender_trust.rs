//! Which of a Matrix user's devices their encrypted event is believed from, as `[matrix]
//! sender_trust` says ([`SenderTrust`]): one step of opening it ([`crate::encrypted_inbound`]).
//!
//! The device is the one whose Olm message brought the event's room key (its Curve25519 key,
//! and the Ed25519 key it claimed in that message). Under either setting it must be one the
//! sender's device list shows, with that Ed25519 key: a device whose keys the account never
//! published cannot speak for it. Under `cross-signed` it must also be one the sender signed
//! with their cross-signing identity, the one pinned when the bridge first saw them
//! ([`crate::crypto::sender_trust`]). Each refusal is a reason in words, which the engine tells
//! the sender in the room and logs.

use dm3_bridge_connector::{DecryptFailure, EncryptedEvent};
use ruma::UserId;

use crate::crypto::sender_trust::Untrusted;
use crate::crypto::{GhostDevices, OpenedEvent};
use crate::decrypting::SenderTrust;

/// What a sender is told when their master key is not the pinned one.
pub fn identity_changed(sender: &UserId) -> String {
    format!(
        "{sender}'s cross-signing identity changed since the bridge first saw it; an admin must accept it \
         before messages from it are bridged"
    )
}

/// Refuses the event unless its key came from a device of its sender that `trust` believes.
pub(crate) async fn sender_device_trusted(
    devices: &GhostDevices,
    ghost: &UserId,
    event: &EncryptedEvent,
    opened: &OpenedEvent,
    trust: SenderTrust,
) -> Result<(), DecryptFailure> {
    let sender = UserId::parse(event.sender.as_str())
        .map_err(|e| DecryptFailure::Refused(format!("its sender is not a Matrix user: {e}")))?;
    let found = match trust {
        SenderTrust::Listed => devices
            .listed_device(ghost, &sender, &opened.sender_key)
            .await
            .map_err(|e| e.to_connector_error())?
            .ok_or(Untrusted::Unlisted),
        SenderTrust::CrossSigned => devices
            .cross_signed_device(ghost, &sender, &opened.sender_key)
            .await
            .map_err(|e| e.to_connector_error())?,
    };
    let device = found.map_err(|why| DecryptFailure::Refused(refusal(&sender, &why)))?;
    if !opened.signing_key.is_empty() && device.ed25519.to_base64() != opened.signing_key {
        return Err(DecryptFailure::Refused(format!(
            "its key came from device {} of {sender} claiming another signing key than the device has",
            device.device
        )));
    }
    Ok(())
}

fn refusal(sender: &UserId, why: &Untrusted) -> String {
    match why {
        Untrusted::Unlisted => {
            format!("its key came from a device that {sender}'s device list does not show")
        }
        Untrusted::NotCrossSigned(device) => format!(
            "its key came from device {device} of {sender}, which {sender} has not verified with their \
             cross-signing identity (verify it from another of their devices)"
        ),
        Untrusted::NoIdentity(fault) => format!(
            "{sender} has no cross-signing identity the bridge can check ({fault}), and this bridge believes \
             only devices their owner verified"
        ),
        Untrusted::IdentityChanged => identity_changed(sender),
    }
}
