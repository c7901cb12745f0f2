//! What opening a Matrix user's encrypted events needs besides the ghosts' devices: set on the
//! connector when `[matrix] encryption` is not `off` ([`crate::encrypted_inbound`]).

use std::time::Duration;

use crate::command::CommandPrefix;
use crate::config::SenderTrust;

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
