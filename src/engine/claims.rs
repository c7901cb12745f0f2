//! The claim through the network (docs/gateway.md section 3): what the bridge answers a network
//! user who asks for a claim challenge (`!dm3 claim`, `/claim`) or hands one back signed
//! (`… claim <JSON>`), the same words on every network.
//!
//! The account is the one the network authenticated as the command's sender, given by the
//! caller (the Matrix event's `sender` in the application service's transaction, the Telegram
//! update's `from.id`), never anything the user typed; the checks themselves are the vault's
//! ([`IdentityVault::issue_claim`], [`IdentityVault::complete_claim`]). A refusal is answered
//! with its reason; only a database that does not answer is left for the caller to retry, and
//! a retry of a claim finds its nonce spent (a claim is answered once, right or wrong).

use crate::identities::network::NetworkUserId;
use crate::identities::vault::claim::Claim;
use crate::identities::{IdentityError, IdentityVault};
use crate::telemetry::metrics::GATEWAY_REFUSED;

/// What the bridge says to a claim command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimReply {
    /// The answer, in plain text.
    pub text: String,
    /// The challenge text to sign, exactly, when one was issued: shown on its own so that a
    /// client can copy it byte for byte.
    pub challenge: Option<String>,
}

/// Why a claim command got no answer: the database did not answer; trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("the claim could not be looked at now: {0}")]
pub struct ClaimUnavailable(String);

/// The answer to `user`'s claim command, whose argument (the signed claim's JSON) is `argument`.
/// `command` is how the user writes the command on their network (`/claim`, `!dm3 claim`).
pub async fn answer_claim(
    vault: &IdentityVault,
    user: &NetworkUserId,
    argument: Option<&str>,
    command: &str,
    now_ms: i64,
) -> Result<ClaimReply, ClaimUnavailable> {
    let network = user.network().as_str();
    let answered = match argument {
        None => vault.issue_claim(user, now_ms).await.map(|challenge| {
            let name = challenge.text.lines().find_map(|line| line.strip_prefix("name: ")).unwrap_or_default();
            ClaimReply {
                text: format!(
                    "To hold your DM3 name {name} with your own wallet: sign the text below with it \
                     (personal_sign), sign a DM3 profile with the same wallet that names {node} among its \
                     delivery services, and send within 10 minutes\n{command} {{\"challenge\": \"<the text>\", \
                     \"signature\": \"0x…\", \"address\": \"0x…\", \"signedProfile\": {{…}}}}\nThe bridge then \
                     holds no key of yours: DM3 messages reach you sealed, for your DM3 client to open.",
                    node = vault.delivery_service(),
                ),
                challenge: Some(challenge.text),
            }
        }),
        Some(json) => match Claim::parse(json) {
            Ok(claim) => vault.complete_claim(user, claim, now_ms).await.map(|identity| ClaimReply {
                text: format!(
                    "Done: {} now holds its own keys, for the wallet {}. The bridge keeps none of them: DM3 \
                     messages to you arrive sealed (the file dm3-envelope.json, or a \"DM3 message\" in \
                     Matrix) for your DM3 client to open.",
                    identity.name,
                    dm3::crypto::eth::checksum(&identity.address)
                ),
                challenge: None,
            }),
            Err(refused) => Err(refused),
        },
    };
    match answered {
        Ok(reply) => Ok(reply),
        Err(IdentityError::Store(error)) => Err(ClaimUnavailable(error.to_string())),
        Err(refused) => {
            metrics::counter!(GATEWAY_REFUSED, "network" => network, "reason" => "claim").increment(1);
            tracing::info!(account = %user, reason = %refused, "a claim through the network was refused");
            Ok(ClaimReply { text: format!("Your claim was refused: {refused}"), challenge: None })
        }
    }
}
