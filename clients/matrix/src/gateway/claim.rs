//! The claim, the user's side (docs/gateway.md section 3): ask the bridge's bot for a
//! challenge, sign it and a profile with the wallet, hand both over, read the bot's answer.
//!
//! The client checks the challenge before its wallet signs anything: it must name this very
//! Matrix account, so a challenge someone else put in the room (or one for another account)
//! is not signed. The node's name comes from the challenge, and the profile lists it, as the
//! node requires (section 2).
//!
//! The bot's answers are read as the spec leaves them: the challenge is found as its six
//! lines (`dm3-bridge claim` … `expires: …`) anywhere in the first message from another member
//! that holds them, after the request; the outcome is the first message from another member
//! after the claim, returned as it is. Whether the claim took is best seen on the node itself:
//! the name's profile, as its gateway serves it, is then the one signed here
//! ([`super::node::NodeClient::profile`]).

use std::time::Duration;

use dm3::crypto::eth::checksum;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use serde_json::json;

use super::GatewayUser;
use super::error::GatewayClientError;
use crate::error::ClientError;
use crate::ids::{OwnedEventId, RoomId};
use crate::timeline::SeenEvent;

/// The command that asks for a challenge, and, followed by the JSON, completes the claim.
pub const CLAIM_COMMAND: &str = "!dm3 claim";
/// The first line of a claim challenge.
const FIRST_LINE: &str = "dm3-bridge claim";

/// A challenge as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The exact text the wallet signs.
    pub text: String,
    pub node: EnsName,
    pub name: EnsName,
}

/// What came of a claim.
#[derive(Debug, Clone)]
pub struct ClaimOutcome {
    pub challenge: Challenge,
    /// The profile handed over; the node serves it for the name once the claim holds.
    pub profile: SignedUserProfile,
    /// The bot's answer to the claim, as it wrote it.
    pub reply: String,
}

impl Challenge {
    /// Finds a challenge in a message body and checks that it is for `account`
    /// (`matrix:@user:server`).
    pub fn find(body: &str, account: &str) -> Result<Option<Challenge>, GatewayClientError> {
        let lines: Vec<&str> = body.lines().collect();
        let Some(start) = lines.iter().position(|line| line.trim_end() == FIRST_LINE) else {
            return Ok(None);
        };
        let Some(end) = lines[start..].iter().position(|line| line.starts_with("expires: ")) else {
            return Ok(None);
        };
        let text =
            lines[start..=start + end].iter().map(|line| line.trim_end()).collect::<Vec<_>>().join("\n");
        let field = |key: &str| {
            text.lines().find_map(|line| line.strip_prefix(key)).map(str::to_owned).ok_or_else(|| {
                GatewayClientError::Claim(format!("the challenge has no {key:?} line: {text:?}"))
            })
        };
        let claimed = field("account: ")?;
        if claimed != account {
            return Err(GatewayClientError::Claim(format!(
                "the challenge is for {claimed}, not {account}: not signed"
            )));
        }
        let name = |key: &str| -> Result<EnsName, GatewayClientError> {
            let value = field(key)?;
            EnsName::parse(&value).map_err(|e| GatewayClientError::Claim(format!("{key}{value:?}: {e}")))
        };
        Ok(Some(Challenge { node: name("node: ")?, name: name("name: ")?, text }))
    }
}

impl GatewayUser {
    /// Claims this Matrix account's name for the user's wallet, in `bot_room` (a direct room
    /// with the bridge's bot); waits at most `timeout` for each answer.
    pub async fn claim(
        &self,
        bot_room: &RoomId,
        timeout: Duration,
    ) -> Result<ClaimOutcome, GatewayClientError> {
        let account = format!("matrix:{}", self.matrix().user_id()?);
        let asked = self.matrix().send_text(bot_room, CLAIM_COMMAND).await?;
        // A challenge found ends the wait, and so does one that must not be signed (the error).
        let challenge = self
            .matrix()
            .sync_until(timeout, "the bot's claim challenge", || async {
                let answers = self.answers_after(bot_room, &asked).await?;
                let body = |answer: &SeenEvent| answer.body().unwrap_or_default().to_owned();
                Ok(answers.iter().find_map(|answer| Challenge::find(&body(answer), &account).transpose()))
            })
            .await??;

        let wallet = self.keys().wallet();
        let profile = self.signed_profile(&[&challenge.node]);
        let claim = json!({
            "challenge": challenge.text,
            "signature": wallet.personal_sign(challenge.text.as_bytes()).to_hex(),
            "address": checksum(&wallet.address()),
            "signedProfile": profile.to_value(),
        });
        let sent = self.matrix().send_text(bot_room, &format!("{CLAIM_COMMAND} {claim}")).await?;
        let reply = self
            .matrix()
            .sync_until(timeout, "the bot's answer to the claim", || async {
                let answers = self.answers_after(bot_room, &sent).await?;
                Ok(answers.into_iter().find_map(|answer| answer.body().map(str::to_owned)))
            })
            .await?;
        Ok(ClaimOutcome { challenge, profile, reply })
    }

    /// The messages others sent to the room after `event`, oldest first.
    async fn answers_after(
        &self,
        room: &RoomId,
        event: &OwnedEventId,
    ) -> Result<Vec<SeenEvent>, ClientError> {
        let me = self.matrix().user_id()?;
        let messages = self.matrix().messages(room).await?;
        let after = messages
            .iter()
            .position(|m| m.event_id.as_ref() == Some(event))
            .map_or(messages.len(), |i| i + 1);
        Ok(messages.into_iter().skip(after).filter(|m| m.sender.as_ref() != Some(&me)).collect())
    }
}
