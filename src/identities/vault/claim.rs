//! The claim: a network user takes their name for a wallet they hold (docs/gateway.md
//! section 3), checked here, whichever network carried it.
//!
//! Two proofs meet in one exchange. The network proves the account: the caller passes the
//! sender the homeserver or Telegram authenticated, and the name is computed from it, never
//! read from what the user typed. The wallet proves itself by signing a challenge the node
//! issued to that account (EIP-191), and the profile it signed (docs/protocol.md §4.2). The
//! challenge binds node, name, account and an expiry to the wallet, which the profile alone
//! cannot (it carries no time and no name, and anyone can copy it from ENS).
//!
//! Challenges are the login challenges' rows (`store::challenges`), keyed by the identity's
//! name: single use (consumed in the statement that checks it, so a replay, even a concurrent
//! one, finds it spent), expiring, and at most `MAX_LIVE_CHALLENGES` live per name. The node's
//! own names are never accounts, so no login challenge shares those rows.

use std::time::{Duration, UNIX_EPOCH};

use alloy_primitives::Address;
use dm3::crypto::eth::{EthSignature, parse_address};
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use serde_json::Value;

use super::{IdentityRef, IdentityVault};
use crate::identities::error::IdentityError;
use crate::identities::network::NetworkUserId;
use crate::store::{ChallengeId, IdentityRecord};

/// How long a claim challenge can be answered.
pub const CLAIM_TTL_MS: i64 = 10 * 60 * 1000;
/// The largest claim read: a challenge, a signature, an address and a profile.
pub const MAX_CLAIM_BYTES: usize = 16 * 1024;

/// A challenge the node issued to an account, to be signed by the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimChallenge {
    /// The exact text the wallet signs (`personal_sign`).
    pub text: String,
    pub expires_at_ms: i64,
}

/// What the user hands over: `{"challenge", "signature", "address", "signedProfile"}`.
#[derive(Debug, Clone)]
pub struct Claim {
    challenge: String,
    signature: EthSignature,
    address: Address,
    profile: SignedUserProfile,
}

impl Claim {
    /// Reads a claim, bounded; every malformed part is named.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        if text.len() > MAX_CLAIM_BYTES {
            return Err(IdentityError::Claim(format!("a claim is at most {MAX_CLAIM_BYTES} bytes")));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| IdentityError::Claim(format!("not JSON: {e}")))?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| IdentityError::Claim(format!("\"{name}\" is missing or not a string")))
        };
        let signature = EthSignature::parse(field("signature")?)
            .map_err(|e| IdentityError::Claim(format!("\"signature\": {e}")))?;
        let address = parse_address(field("address")?)
            .map_err(|e| IdentityError::Claim(format!("\"address\": {e}")))?;
        let profile = value.get("signedProfile").cloned().ok_or_else(|| {
            IdentityError::Claim("\"signedProfile\" is missing: the profile your wallet signed".into())
        })?;
        let profile = SignedUserProfile::from_value(profile)
            .map_err(|e| IdentityError::Claim(format!("\"signedProfile\": {e}")))?;
        Ok(Self { challenge: field("challenge")?.to_owned(), signature, address, profile })
    }
}

impl IdentityVault {
    /// A new claim challenge for `user`, the account the network authenticated.
    pub async fn issue_claim(
        &self,
        user: &NetworkUserId,
        now_ms: i64,
    ) -> Result<ClaimChallenge, IdentityError> {
        let scheme = self.scheme.as_ref().ok_or(IdentityError::NoParent)?;
        let (_, name) = scheme.name_for(user)?;
        let challenge = self.store.create_challenge(&name, now_ms, CLAIM_TTL_MS).await?;
        let text =
            challenge_text(&self.delivery_service, &name, user, &challenge.id, challenge.expires_at_ms);
        Ok(ClaimChallenge { text, expires_at_ms: challenge.expires_at_ms })
    }

    /// Checks a claim `sender` sent (the account the network authenticated, docs/gateway.md
    /// section 3, in that order) and makes their identity self-custody with the wallet.
    pub async fn complete_claim(
        &self,
        sender: &NetworkUserId,
        claim: Claim,
        now_ms: i64,
    ) -> Result<IdentityRecord, IdentityError> {
        let scheme = self.scheme.as_ref().ok_or(IdentityError::NoParent)?;
        let (_, name) = scheme.name_for(sender)?;
        let nonce = nonce_of(&claim.challenge)
            .ok_or_else(|| IdentityError::Claim("the challenge has no nonce line".into()))?;
        // Whose challenge it is, before anything is spent: someone else's is refused without
        // using it up, so nobody can burn another account's claim.
        let issued = self.store.get_challenge(&nonce).await?;
        if issued.as_ref().is_none_or(|issued| issued.name != name) {
            return Err(IdentityError::Claim(format!(
                "this challenge was not issued to {sender}: ask for your own claim challenge"
            )));
        }
        if !self.store.consume_challenge(&nonce, &name, now_ms).await? {
            return Err(IdentityError::Claim("the challenge has expired or was used already".into()));
        }
        let expires_at_ms = issued.map_or(0, |issued| issued.expires_at_ms);
        if claim.challenge != challenge_text(&self.delivery_service, &name, sender, &nonce, expires_at_ms) {
            return Err(IdentityError::Claim("the challenge text is not the one the node issued".into()));
        }
        if claim.signature.recover_personal(claim.challenge.as_bytes()) != Some(claim.address) {
            return Err(IdentityError::Claim(format!("the challenge is not signed by {}", claim.address)));
        }
        match self.store.identity_of_user(sender).await? {
            Some(_) => {
                let reference = IdentityRef::User(sender.clone());
                self.switch_to_self_custody(&reference, claim.address, claim.profile, now_ms).await
            }
            None => self.create_self_custody(sender.clone(), claim.address, claim.profile, now_ms).await,
        }
    }
}

/// The challenge text (docs/gateway.md section 3).
fn challenge_text(
    node: &EnsName,
    name: &EnsName,
    user: &NetworkUserId,
    nonce: &ChallengeId,
    expires_at_ms: i64,
) -> String {
    let expires = UNIX_EPOCH + Duration::from_millis(expires_at_ms.unsigned_abs());
    format!(
        "dm3-bridge claim\nnode: {node}\nname: {name}\naccount: {user}\nnonce: {nonce}\nexpires: {}",
        httpdate::fmt_http_date(expires)
    )
}

fn nonce_of(text: &str) -> Option<ChallengeId> {
    text.lines().find_map(|line| line.strip_prefix("nonce: ")).and_then(ChallengeId::from_client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn refusal(text: &str) -> String {
        match Claim::parse(text) {
            Err(IdentityError::Claim(reason)) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_malformed_claim_is_refused_by_name() {
        assert!(refusal(&" ".repeat(MAX_CLAIM_BYTES + 1)).contains("at most"));
        assert!(refusal("{").contains("not JSON"));
        assert!(refusal("{}").contains("\"signature\" is missing"));
        let signature = format!("0x{}1b", "11".repeat(64));
        let without_profile =
            format!(r#"{{"challenge":"c","signature":"{signature}","address":"0x{}"}}"#, "22".repeat(20));
        assert!(refusal(&without_profile).contains("signedProfile"));
        let bad_address = format!(r#"{{"challenge":"c","signature":"{signature}","address":"0x12"}}"#);
        assert!(refusal(&bad_address).contains("\"address\""));
    }

    #[test]
    fn the_nonce_is_read_only_from_its_own_line() {
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(nonce_of(&format!("x\nnonce: {nonce}\ny")).unwrap().as_str(), nonce);
        assert_eq!(nonce_of(&format!("x nonce: {nonce}")), None);
        assert_eq!(nonce_of("nonce: 0123"), None);
    }
}
