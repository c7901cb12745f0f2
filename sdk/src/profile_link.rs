//! Profile links: a signed statement that a scoped profile belongs to a main
//! profile or an Ethereum address (docs/protocol.md §4.6,
//! `packages/lib/profile/src/profileLink/ProfileLink.ts`).
//!
//! The library defines them and nothing on the wire uses them yet; we carry
//! them so a bridge identity can be linked to its owner the way the reference
//! would check it. What is signed is a text block, not the JSON:
//!
//! ```text
//! dm3 Profile Link:
//! <scopeUri> wants you to link your local dm3 profile with your <main dm3 profile | Ethereum address>.
//!
//! Main ID: <mainId>
//! Main ID Type: <type>
//! Linked Profile Name: <linkedProfile>
//! Nonce: <nonce>
//! Issued At: <issuedAt>
//! Expiration Time: <expirationTime or "null">
//! ```
//!
//! Values are interpolated as a JavaScript template literal prints them:
//! strings raw, numbers in ECMAScript form (the canonical number printer),
//! `null` as `null`. An `EthAddressLink` is signed with EIP-191 by the wallet
//! of `mainId`; a `ProfileLink` with Ed25519 by the main profile's signing key
//! (base64). Fields outside the text are not covered by the signature, and the
//! reference's `verifyProfileLink` does not look at `expirationTime`; we do
//! the same in [`SignedProfileLink::verify`] and offer
//! [`ProfileLink::is_expired`] separately.

use alloy_primitives::Address;
use serde_json::{Map, Value};

use crate::canonical;
use crate::crypto::eth::{EthSignature, Wallet, parse_address};
use crate::crypto::signing::{SigningKeyPair, VerifyKey};

/// What a link points at, and so which key signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// The main id is an ENS name with a dm3 profile; Ed25519 signature.
    ProfileLink,
    /// The main id is an Ethereum address; EIP-191 signature by that address.
    EthAddressLink,
}

impl LinkType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProfileLink => "ProfileLink",
            Self::EthAddressLink => "EthAddressLink",
        }
    }
}

/// Why a profile link is malformed, cannot be signed, or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileLinkError {
    #[error("a profile link must be a JSON object")]
    NotAnObject,
    #[error("profile link field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("a {0:?} cannot be signed with this kind of key")]
    WrongSignerKind(LinkType),
    #[error("a ProfileLink needs the main profile's signing key to be verified")]
    MissingPublicKey,
    #[error("the main id of an EthAddressLink is not an address")]
    MainIdNotAnAddress,
    #[error("the profile link signature is malformed")]
    MalformedSignature,
    #[error("the profile link signature does not verify")]
    BadSignature,
}

/// An unsigned profile link, kept as its JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileLink {
    raw: Map<String, Value>,
    kind: LinkType,
}

impl ProfileLink {
    /// `createProfileLink(mainId, linkedProfile, scopeUri, {nonce, ttl})` at
    /// `issued_at` seconds. The type is `EthAddressLink` when `main_id` is an
    /// address. As in the reference, a `ttl` of 0 means no expiration.
    pub fn new(
        main_id: &str,
        linked_profile: &str,
        scope_uri: &str,
        issued_at: u64,
        ttl: Option<u64>,
        nonce: u64,
    ) -> Self {
        let kind =
            if parse_address(main_id).is_ok() { LinkType::EthAddressLink } else { LinkType::ProfileLink };
        let expiration = match ttl {
            Some(ttl) if ttl > 0 => Value::from(issued_at.saturating_add(ttl)),
            _ => Value::Null,
        };
        let mut raw = Map::new();
        raw.insert("type".into(), Value::String(kind.as_str().into()));
        raw.insert("mainId".into(), Value::String(main_id.into()));
        raw.insert("linkedProfile".into(), Value::String(linked_profile.into()));
        raw.insert("scopeUri".into(), Value::String(scope_uri.into()));
        raw.insert("issuedAt".into(), Value::from(issued_at));
        raw.insert("expirationTime".into(), expiration);
        raw.insert("nonce".into(), Value::from(nonce));
        Self { raw, kind }
    }

    /// Checks the TypeScript type's shape; extra fields are kept (they are unsigned).
    pub fn from_value(value: Value) -> Result<Self, ProfileLinkError> {
        let Value::Object(raw) = value else {
            return Err(ProfileLinkError::NotAnObject);
        };
        let kind = match raw.get("type").and_then(Value::as_str) {
            Some("ProfileLink") => LinkType::ProfileLink,
            Some("EthAddressLink") => LinkType::EthAddressLink,
            _ => return Err(ProfileLinkError::Field("type")),
        };
        for field in ["mainId", "linkedProfile", "scopeUri"] {
            if !raw.get(field).is_some_and(Value::is_string) {
                return Err(ProfileLinkError::Field(field));
            }
        }
        for field in ["issuedAt", "nonce"] {
            if !raw.get(field).is_some_and(Value::is_number) {
                return Err(ProfileLinkError::Field(field));
            }
        }
        if !raw.get("expirationTime").is_some_and(|v| v.is_number() || v.is_null()) {
            return Err(ProfileLinkError::Field("expirationTime"));
        }
        Ok(Self { raw, kind })
    }

    pub fn link_type(&self) -> LinkType {
        self.kind
    }

    fn text(&self, field: &str) -> &str {
        self.raw.get(field).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn main_id(&self) -> &str {
        self.text("mainId")
    }

    pub fn linked_profile(&self) -> &str {
        self.text("linkedProfile")
    }

    pub fn scope_uri(&self) -> &str {
        self.text("scopeUri")
    }

    crate::raw_json::raw_json_object!();

    /// Whether the link has an expiration time at or before `now` (seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        let expiration = self.raw.get("expirationTime").and_then(Value::as_f64);
        expiration.is_some_and(|at| at <= now as f64)
    }

    /// `createProfileLinkMessage`: the text that is signed.
    pub fn message(&self) -> String {
        let target = match self.kind {
            LinkType::ProfileLink => "main dm3 profile",
            LinkType::EthAddressLink => "Ethereum address",
        };
        format!(
            "dm3 Profile Link:\n{} wants you to link your local dm3 profile with your {target}.\n\n\
             Main ID: {}\nMain ID Type: {}\nLinked Profile Name: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}",
            self.scope_uri(),
            self.main_id(),
            self.kind.as_str(),
            self.linked_profile(),
            template_value(self.raw.get("nonce")),
            template_value(self.raw.get("issuedAt")),
            template_value(self.raw.get("expirationTime")),
        )
    }

    /// Signs an `EthAddressLink` with the wallet of its main address.
    pub fn sign_with_wallet(self, wallet: &Wallet) -> Result<SignedProfileLink, ProfileLinkError> {
        if self.kind != LinkType::EthAddressLink {
            return Err(ProfileLinkError::WrongSignerKind(self.kind));
        }
        let signature = wallet.personal_sign(self.message().as_bytes()).to_hex();
        Ok(SignedProfileLink::assemble(self, signature))
    }

    /// Signs a `ProfileLink` with the main profile's Ed25519 key.
    pub fn sign_with_key(self, key: &SigningKeyPair) -> Result<SignedProfileLink, ProfileLinkError> {
        if self.kind != LinkType::ProfileLink {
            return Err(ProfileLinkError::WrongSignerKind(self.kind));
        }
        let signature = key.sign_b64(&self.message());
        Ok(SignedProfileLink::assemble(self, signature))
    }
}

/// `{profileLink, signature}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedProfileLink {
    raw: Map<String, Value>,
    link: ProfileLink,
}

impl SignedProfileLink {
    fn assemble(link: ProfileLink, signature: String) -> Self {
        let mut raw = Map::new();
        raw.insert("profileLink".into(), Value::Object(link.raw.clone()));
        raw.insert("signature".into(), Value::String(signature));
        Self { raw, link }
    }

    pub fn from_value(value: Value) -> Result<Self, ProfileLinkError> {
        let Value::Object(raw) = value else {
            return Err(ProfileLinkError::NotAnObject);
        };
        if !raw.get("signature").is_some_and(Value::is_string) {
            return Err(ProfileLinkError::Field("signature"));
        }
        let link = ProfileLink::from_value(raw.get("profileLink").cloned().unwrap_or_default())?;
        Ok(Self { raw, link })
    }

    pub fn profile_link(&self) -> &ProfileLink {
        &self.link
    }

    pub fn signature(&self) -> &str {
        self.raw.get("signature").and_then(Value::as_str).unwrap_or_default()
    }

    crate::raw_json::raw_json_object!();

    /// `verifyProfileLink(signed, publicKey?)`: an `EthAddressLink` must be
    /// signed by its main address; a `ProfileLink` by `main_profile_key`.
    pub fn verify(&self, main_profile_key: Option<&VerifyKey>) -> Result<(), ProfileLinkError> {
        let message = self.link.message();
        match self.link.kind {
            LinkType::ProfileLink => {
                let key = main_profile_key.ok_or(ProfileLinkError::MissingPublicKey)?;
                match key.verify_b64(&message, self.signature()) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(ProfileLinkError::BadSignature),
                    Err(_) => Err(ProfileLinkError::MalformedSignature),
                }
            }
            LinkType::EthAddressLink => {
                let expected: Address =
                    parse_address(self.link.main_id()).map_err(|_| ProfileLinkError::MainIdNotAnAddress)?;
                let signature = EthSignature::parse(self.signature())
                    .map_err(|_| ProfileLinkError::MalformedSignature)?;
                match signature.recover_personal(message.as_bytes()) {
                    Some(actual) if actual == expected => Ok(()),
                    _ => Err(ProfileLinkError::BadSignature),
                }
            }
        }
    }
}

/// `${value}` of a JSON value in a template literal; [`ProfileLink::from_value`]
/// admits only strings, numbers (printed as JavaScript does) and `null` here.
fn template_value(value: Option<&Value>) -> String {
    match value {
        None => "undefined".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => canonical::stringify(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn profile_links_are_signed_with_the_main_profile_key() {
        let key = SigningKeyPair::generate();
        let link = ProfileLink::new("alice.eth", "alice.app.eth", "https://app", 1_700_000_000, Some(60), 1);
        assert_eq!(link.link_type(), LinkType::ProfileLink);
        assert!(link.message().ends_with("Nonce: 1\nIssued At: 1700000000\nExpiration Time: 1700000060"));
        assert!(!link.is_expired(1_700_000_059) && link.is_expired(1_700_000_060));
        assert_eq!(
            link.clone().sign_with_wallet(&Wallet::generate()).err(),
            Some(ProfileLinkError::WrongSignerKind(LinkType::ProfileLink))
        );
        let signed = link.sign_with_key(&key).unwrap();
        let parsed = SignedProfileLink::from_value(signed.to_value()).unwrap();
        let verify_key = VerifyKey::from_bytes(&key.public()).unwrap();
        assert_eq!(parsed.verify(Some(&verify_key)), Ok(()));
        assert_eq!(parsed.verify(None), Err(ProfileLinkError::MissingPublicKey));
        let other = VerifyKey::from_bytes(&SigningKeyPair::generate().public()).unwrap();
        assert_eq!(parsed.verify(Some(&other)), Err(ProfileLinkError::BadSignature));
    }

    /// Made with the npm 1.7.1 `createProfileLink`/`signProfileLink` at a pinned
    /// clock (1700000000000 ms) and `createSigningKeyPair(base64([7; 32]))`.
    #[test]
    fn ed25519_profile_link_matches_the_reference() {
        let key = SigningKeyPair::from_seed(&[7; 32]);
        assert_eq!(key.public_b64(), "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=");
        let link = ProfileLink::new("alice.eth", "alice.app.eth", "https://app", 1_700_000_000, Some(60), 1);
        assert_eq!(
            link.message(),
            "dm3 Profile Link:\nhttps://app wants you to link your local dm3 profile with your main dm3 profile.\n\n\
             Main ID: alice.eth\nMain ID Type: ProfileLink\nLinked Profile Name: alice.app.eth\nNonce: 1\n\
             Issued At: 1700000000\nExpiration Time: 1700000060"
        );
        assert_eq!(
            link.sign_with_key(&key).unwrap().signature(),
            "5H+gWM9geKdM9GMS8jxAnjh9vw9knEzVDg41gHSMiw1uxdM/9RM6Hmszu5oBhrww4fiWM8uhZiXWOBTJqSeaCw=="
        );
        // `ttl: 0` is falsy in JavaScript: no expiration.
        let forever = ProfileLink::new("alice.eth", "b", "c", 1_700_000_000, Some(0), 0);
        assert_eq!(forever.as_map()["expirationTime"], Value::Null);
    }

    #[test]
    fn shape_is_checked() {
        let link = ProfileLink::new("alice.eth", "b", "c", 1, None, 0);
        let mut value = Value::Object(link.as_map().clone());
        assert!(ProfileLink::from_value(value.clone()).is_ok());
        value["expirationTime"] = Value::from("soon");
        assert_eq!(
            ProfileLink::from_value(value.clone()).err(),
            Some(ProfileLinkError::Field("expirationTime"))
        );
        value["type"] = Value::from("Other");
        assert_eq!(ProfileLink::from_value(value).err(), Some(ProfileLinkError::Field("type")));
    }
}
