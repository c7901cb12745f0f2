//! The DS login vectors: the challenge signature byte for byte, and the
//! request and response bodies of `GET /auth` and `POST /auth` (§9.2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::auth::{
    AuthError, ChallengeAnswer, parse_token_body, sign_challenge, token_body, token_claims_unverified,
    verify_challenge,
};
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::b64_decode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use vectors::{at, str_at};

fn alice_signing() -> SigningKeyPair {
    SigningKeyPair::from_secret_b64(str_at("users/alice/keys/signingKeyPair/privateKey")).unwrap()
}

fn alice_verify() -> VerifyKey {
    VerifyKey::from_b64(str_at("users/alice/profile/publicSigningKey")).unwrap()
}

#[test]
fn the_challenge_signature_is_reproduced() {
    let challenge = parse_token_body(str_at("auth/GET_auth_response_body")).unwrap();
    assert_eq!(challenge, str_at("auth/challengeJwt"));
    assert_eq!(token_body(&challenge), str_at("auth/GET_auth_response_body"));
    let signature = sign_challenge(&alice_signing(), &challenge);
    assert_eq!(signature, str_at("auth/signature_ed25519_over_utf8_of_whole_jwt"));
    assert_eq!(verify_challenge(&alice_verify(), &challenge, &signature), Ok(()));
}

#[test]
fn the_post_auth_body_is_reproduced_and_checked() {
    let answer = ChallengeAnswer::sign(&alice_signing(), str_at("auth/challengeJwt"));
    let expected = at("auth/POST_auth_request_body");
    assert_eq!(&serde_json::from_str::<Value>(&answer.to_json()).unwrap(), expected);
    assert_eq!(
        answer.to_json(),
        format!(
            r#"{{"signature":"{}","challenge":"{}"}}"#,
            expected["signature"].as_str().unwrap(),
            expected["challenge"].as_str().unwrap()
        )
    );
    let parsed = ChallengeAnswer::parse(&expected.to_string()).unwrap();
    assert_eq!(parsed, answer);
    assert_eq!(parsed.verify(&alice_verify()), Ok(()));
    let bob = VerifyKey::from_b64(str_at("users/bob/profile/publicSigningKey")).unwrap();
    assert_eq!(parsed.verify(&bob), Err(AuthError::SignatureInvalid));
    // The signature covers the whole token: the session token is not the challenge.
    let wrong = ChallengeAnswer { challenge: str_at("auth/sessionJwt").to_owned(), ..parsed };
    assert_eq!(wrong.verify(&alice_verify()), Err(AuthError::SignatureInvalid));
}

#[test]
fn token_claims_match_the_vectors() {
    let challenge = token_claims_unverified(str_at("auth/challengeJwt")).unwrap();
    assert_eq!(&Value::Object(challenge), at("auth/challengeJwtPayload"));
    let session = token_claims_unverified(str_at("auth/sessionJwt")).unwrap();
    assert_eq!(&Value::Object(session), at("auth/sessionJwtPayload"));
}

/// HMAC-SHA256 (RFC 2104), enough to confirm the issuer note; tokens are
/// internal to the issuer, so the SDK does not make them.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).chain(message.iter().copied()).collect();
    let inner_hash = Sha256::digest(&inner);
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).chain(inner_hash.iter().copied()).collect();
    Sha256::digest(&outer).into()
}

#[test]
fn the_reference_tokens_are_hs256_under_the_documented_key() {
    assert!(
        str_at("auth/hmacKey_note")
            .starts_with("HS256 key = UTF-8 bytes of the 0x-hex string jwtServerSecret")
    );
    let secret = str_at("deliveryService/jwtServerSecret");
    let signing_secret = b64_decode(str_at("deliveryService/keys/signingKeyPair/privateKey")).unwrap();
    assert_eq!(sha256_hex_bytes(&signing_secret), secret);
    for token in [str_at("auth/challengeJwt"), str_at("auth/sessionJwt")] {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mac = hmac_sha256(secret.as_bytes(), signed.as_bytes());
        assert_eq!(b64_decode(signature).unwrap(), mac, "{token}");
    }
}

fn sha256_hex_bytes(bytes: &[u8]) -> String {
    dm3::encoding::hex_encode(&Sha256::digest(bytes))
}
