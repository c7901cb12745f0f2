//! What opening a Matrix user's encrypted events needs besides the ghosts' devices: set on the
//! connector when `[matrix] encryption` is not `off` ([`crate::encrypted_inbound`]), with the
//! `[matrix]` settings that shape it (`undecryptable_after_secs`, `sender_trust`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::CommandPrefix;

/// How long after an encrypted event arrived its key may still come, unless configured
/// (`[matrix] undecryptable_after_secs`): a client that was offline when its user sent shares
/// the key when it is back, which is usually a matter of seconds, seldom of minutes.
pub const DEFAULT_UNDECRYPTABLE_AFTER: Duration = Duration::from_secs(300);

/// The settings of decryption.
#[derive(Debug, Clone)]
pub struct Decrypting {
    /// How a command to the bridge starts: an encrypted `!dm3 block` is a command too.
    pub commands: CommandPrefix,
    /// How long a key may be late (`DecryptionHandling::patience`).
    pub patience: Duration,
    /// Which of a sender's devices are believed ([`crate::sender_trust`]).
    pub sender_trust: SenderTrust,
}

/// `[matrix] sender_trust`: which of a Matrix user's devices the bridge believes their
/// encrypted messages from ([`crate::sender_trust`]).
///
/// `listed` stays the default so that a deployment that upgrades behaves as before; it
/// believes any device the homeserver lists in the user's name, so a stolen access token that
/// logs in a new device speaks as the user. `cross-signed` closes that: only a device the user
/// signed with their cross-signing identity, pinned on first sight, is believed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SenderTrust {
    /// A device the sender's device list shows, signed by its own key.
    #[default]
    Listed,
    /// As `listed`, and signed by the sender's self-signing key, itself signed by their master
    /// key, the one pinned when the bridge first saw it.
    CrossSigned,
}

impl SenderTrust {
    /// What the setting does, in words for `dm3-bridge check`.
    pub fn today(self) -> &'static str {
        match self {
            SenderTrust::Listed => {
                "listed: a Matrix user's encrypted message is believed from any device the homeserver lists \
                 for them (a new login speaks for them); set \"cross-signed\" to believe only devices they verified"
            }
            SenderTrust::CrossSigned => {
                "cross-signed: a Matrix user's encrypted message is believed only from a device their \
                 cross-signing identity signed, the identity pinned when the bridge first sees it; a changed \
                 identity is refused until DELETE /admin/matrix/cross-signing/{userId} accepts it"
            }
        }
    }
}
