//! The challenge login: `GET /auth/:name` issues a challenge, `POST /auth/:name
//! {signature, challenge}` redeems it for a session token (docs/protocol.md §9.2).
//!
//! The client signs the challenge string verbatim with its profile's Ed25519 key and never
//! looks inside, so the string is ours to choose. It reads
//! `<node name> login challenge for <name>: <id>`: the node and the account are in the signed
//! text, so a signature cannot be carried to another node or account, and the text cannot be
//! mistaken for a DM3 message or metadata (those are canonical JSON objects).
//!
//! Unlike the reference's stateless JWT challenge, which works any number of times until it
//! expires, each challenge is a row that is used up by the statement that redeems it
//! ([`crate::store::Store::consume_challenge`]): a replayed answer gets nothing. The signature
//! is checked with the key of the profile the name resolves to now, else the stored one (as
//! the reference reads the profile from ENS, P15). A failed signature answers
//! `Signature invalid`, the reference's words, on which the messenger re-posts its profile.

use dm3::auth::ChallengeAnswer;
use dm3::ens::EnsName;
use serde_json::Value;

use super::Relay;
use super::names::parse_name;
use super::sessions::LoginPath;
use crate::clock::now_ms;
use crate::protocol::{DeliveryError, Rejection};
use crate::store::ChallengeId;

/// How long a challenge can be redeemed: 15 minutes, as the reference's challenge JWT.
pub const CHALLENGE_TTL_MS: i64 = 900 * 1_000;

/// The text the client signs.
fn challenge_text(node: &str, name: &EnsName, id: &ChallengeId) -> String {
    format!("{node} login challenge for {name}: {id}")
}

/// The id inside a challenge text, if the text is one of ours for this node and name.
fn challenge_id(node: &str, name: &EnsName, text: &str) -> Option<ChallengeId> {
    let (_, id) = text.rsplit_once(": ")?;
    let id = ChallengeId::from_client(id)?;
    (challenge_text(node, name, &id) == text).then_some(id)
}

fn invalid_challenge() -> DeliveryError {
    DeliveryError::rejected(
        Rejection::InvalidChallenge,
        "the challenge is unknown, used, expired or not for this name; get a new one",
    )
}

impl Relay {
    /// `GET /auth/:name`: a fresh challenge for a registered account.
    pub(super) async fn challenge(&self, name: &str) -> Result<String, DeliveryError> {
        let name = parse_name(name)?;
        self.account(&name).await?;
        let challenge = self.store.create_challenge(&name, now_ms(), CHALLENGE_TTL_MS).await?;
        Ok(challenge_text(&self.node_name, &name, &challenge.id))
    }

    /// `POST /auth/:name {signature, challenge}`: check the signature, use the challenge up,
    /// and open a session.
    pub(super) async fn answer_challenge(&self, name: &str, body: Value) -> Result<String, DeliveryError> {
        let name = parse_name(name)?;
        let answer = ChallengeAnswer::parse(&body.to_string()).map_err(|_| {
            DeliveryError::InvalidRequest(
                "expected exactly {\"signature\": <base64>, \"challenge\": <the string from GET /auth>}"
                    .to_owned(),
            )
        })?;
        let account = self.account(&name).await?;
        let id = challenge_id(&self.node_name, &name, &answer.challenge).ok_or_else(invalid_challenge)?;
        let key = self.current_profile(&name, Some(&account)).await?.verify_key().map_err(|e| {
            DeliveryError::rejected(
                Rejection::BadSignature,
                format!("the account's profile has no usable key: {e}"),
            )
        })?;
        // Signature first: a wrong answer must not use the challenge up for the right one.
        answer
            .verify(&key)
            .map_err(|_| DeliveryError::rejected(Rejection::BadSignature, "Signature invalid"))?;
        if !self.store.consume_challenge(&id, &name, now_ms()).await? {
            return Err(invalid_challenge());
        }
        self.open_session(&name, LoginPath::Challenge).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_our_text_for_this_node_and_name_yields_an_id() {
        let alice = parse_name("alice.eth").unwrap();
        let bob = parse_name("bob.eth").unwrap();
        let id = ChallengeId::from_client(&"ab".repeat(16)).unwrap();
        let text = challenge_text("relay.eth", &alice, &id);
        assert_eq!(text, format!("relay.eth login challenge for alice.eth: {}", "ab".repeat(16)));
        assert_eq!(challenge_id("relay.eth", &alice, &text), Some(id));
        assert_eq!(challenge_id("relay.eth", &bob, &text), None);
        assert_eq!(challenge_id("other.eth", &alice, &text), None);
        assert_eq!(challenge_id("relay.eth", &alice, &format!("x{text}")), None);
        assert_eq!(challenge_id("relay.eth", &alice, "no id"), None);
    }
}
