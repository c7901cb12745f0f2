//! DS login: signing the challenge and checking the signature (§9.2).
//!
//! `GET /auth/<name>` answers with a challenge token as a JSON *string*. The
//! client signs the UTF-8 of that whole string, verbatim, with its profile's
//! Ed25519 key (P6) and posts `{signature, challenge}` back; the DS checks it
//! against `publicSigningKey` of the profile it resolves from ENS (P15).
//! Clients treat the token as opaque, so a Rust DS may issue any token format
//! as long as it is a JSON string; the reference's HS256 JWTs are internal to
//! it (§3.2) and not reproduced here. [`token_claims_unverified`] only reads
//! a JWT's claims, for diagnostics.

use serde_json::{Map, Value};

use crate::canonical;
use crate::crypto::signing::{SigningKeyPair, VerifyKey};
use crate::encoding::b64_decode;

/// Why a login step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the body is not a JSON string token")]
    NotATokenBody,
    #[error("the challenge answer must be exactly {{signature, challenge}} with string values")]
    MalformedAnswer,
    #[error("the challenge signature is not a base64 Ed25519 signature")]
    MalformedSignature,
    /// The reference DS answers this with `{error: "Signature invalid"}`,
    /// which makes the client re-post its profile (§9.2).
    #[error("the challenge signature does not verify with the profile's signing key")]
    SignatureInvalid,
    #[error("the token is not a JWT with a JSON object payload")]
    NotAJwt,
}

/// `sign(profileSigningSk, challenge)`: base64 Ed25519 over the whole token text.
pub fn sign_challenge(signing: &SigningKeyPair, challenge: &str) -> String {
    signing.sign_b64(challenge)
}

/// `checkSignature(profile.publicSigningKey, challenge, signature)`.
pub fn verify_challenge(key: &VerifyKey, challenge: &str, signature_b64: &str) -> Result<(), AuthError> {
    match key.verify_b64(challenge, signature_b64) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthError::SignatureInvalid),
        Err(_) => Err(AuthError::MalformedSignature),
    }
}

/// The `POST /auth/<name>` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeAnswer {
    pub signature: String,
    pub challenge: String,
}

impl ChallengeAnswer {
    /// Signs `challenge` and builds the answer.
    pub fn sign(signing: &SigningKeyPair, challenge: &str) -> Self {
        Self { signature: sign_challenge(signing, challenge), challenge: challenge.to_owned() }
    }

    /// The body as the messenger's `JSON.stringify` writes it: `{"signature":…,"challenge":…}`.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"signature":{},"challenge":{}}}"#,
            canonical::stringify_str(&self.signature),
            canonical::stringify_str(&self.challenge)
        )
    }

    /// Parses a body; the reference schema allows exactly these two string fields.
    pub fn parse(body: &str) -> Result<Self, AuthError> {
        let value: Value = serde_json::from_str(body).map_err(|_| AuthError::MalformedAnswer)?;
        let object = value.as_object().ok_or(AuthError::MalformedAnswer)?;
        let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
        match (object.len(), field("signature"), field("challenge")) {
            (2, Some(signature), Some(challenge)) => Ok(Self { signature, challenge }),
            _ => Err(AuthError::MalformedAnswer),
        }
    }

    pub fn verify(&self, key: &VerifyKey) -> Result<(), AuthError> {
        verify_challenge(key, &self.challenge, &self.signature)
    }
}

/// A token response body (`GET /auth`, `POST /auth`, `POST /profile`): a JSON string.
pub fn token_body(token: &str) -> String {
    canonical::stringify_str(token)
}

/// Reads a token response body.
pub fn parse_token_body(body: &str) -> Result<String, AuthError> {
    match serde_json::from_str(body) {
        Ok(Value::String(token)) => Ok(token),
        _ => Err(AuthError::NotATokenBody),
    }
}

/// The claims of a JWT, **without checking its signature**: for logs and
/// tests only, never for a decision.
pub fn token_claims_unverified(token: &str) -> Result<Map<String, Value>, AuthError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::NotAJwt);
    };
    let bytes = b64_decode(payload).map_err(|_| AuthError::NotAJwt)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(AuthError::NotAJwt),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answer_round_trips_and_verifies() {
        let pair = SigningKeyPair::generate();
        let key = VerifyKey::from_bytes(&pair.public()).unwrap();
        let answer = ChallengeAnswer::sign(&pair, "a.b.c");
        assert_eq!(ChallengeAnswer::parse(&answer.to_json()).unwrap(), answer);
        assert_eq!(answer.verify(&key), Ok(()));
        let other = ChallengeAnswer { challenge: "a.b.d".into(), ..answer.clone() };
        assert_eq!(other.verify(&key), Err(AuthError::SignatureInvalid));
        let bad = ChallengeAnswer { signature: "xx".into(), ..answer };
        assert_eq!(bad.verify(&key), Err(AuthError::MalformedSignature));
    }

    #[test]
    fn answer_must_have_exactly_the_two_fields() {
        for body in [
            r#"{"signature":"s"}"#,
            r#"{"signature":"s","challenge":"c","x":1}"#,
            r#"{"signature":1,"challenge":"c"}"#,
            "[]",
            "{",
        ] {
            assert_eq!(ChallengeAnswer::parse(body), Err(AuthError::MalformedAnswer), "{body}");
        }
    }

    #[test]
    fn token_bodies_are_json_strings() {
        assert_eq!(token_body("a.b.c"), r#""a.b.c""#);
        assert_eq!(parse_token_body(r#""a.b.c""#).unwrap(), "a.b.c");
        assert_eq!(parse_token_body("a.b.c"), Err(AuthError::NotATokenBody));
        assert_eq!(token_claims_unverified("a.b"), Err(AuthError::NotAJwt));
        assert_eq!(token_claims_unverified("a.!!.c"), Err(AuthError::NotAJwt));
    }
}
