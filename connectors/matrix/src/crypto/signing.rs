//! Signed JSON as Matrix defines it: the canonical form of an object without `signatures` and
//! `unsigned`, signed with Ed25519, the signature filed under `signatures.{user}.{ed25519:key}`.
//!
//! Device keys, one-time keys and fallback keys are all signed this way; a client that cannot
//! verify the signature ignores the key, so the canonical form must be exact: ruma's
//! canonical JSON, not `serde_json`'s compact form.

use ruma::CanonicalJsonValue;
use serde_json::{Map, Value, json};
use vodozemac::Ed25519Signature;

/// Why an object could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("the object cannot be put in canonical JSON: {0}")]
pub struct SigningError(String);

/// The bytes that are signed for `object`: its canonical JSON without `signatures` and
/// `unsigned`.
pub fn signed_bytes(object: &Map<String, Value>) -> Result<String, SigningError> {
    let mut copy = object.clone();
    copy.remove("signatures");
    copy.remove("unsigned");
    let canonical =
        CanonicalJsonValue::try_from(Value::Object(copy)).map_err(|e| SigningError(e.to_string()))?;
    Ok(canonical.to_string())
}

/// Signs `object` with `sign` and files the signature as `user`'s under `key_id`
/// (`ed25519:{device_id}`), beside any signatures already there.
pub fn sign_object(
    object: &mut Map<String, Value>,
    user: &str,
    key_id: &str,
    sign: impl FnOnce(&[u8]) -> Ed25519Signature,
) -> Result<(), SigningError> {
    let signature = sign(signed_bytes(object)?.as_bytes()).to_base64();
    let signatures = object.entry("signatures").or_insert_with(|| json!({}));
    let Some(signatures) = signatures.as_object_mut() else {
        return Err(SigningError("`signatures` is not an object".to_owned()));
    };
    let by_user = signatures.entry(user.to_owned()).or_insert_with(|| json!({}));
    let Some(by_user) = by_user.as_object_mut() else {
        return Err(SigningError(format!("`signatures.{user}` is not an object")));
    };
    by_user.insert(key_id.to_owned(), Value::String(signature));
    Ok(())
}

/// The object of a `json!({…})` literal, which is always one (anything else is empty).
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use vodozemac::Ed25519SecretKey;

    use super::*;

    #[test]
    fn the_signature_covers_the_canonical_form_only() {
        let key = Ed25519SecretKey::new();
        let mut object = json!({"b": 1, "a": "x", "unsigned": {"age": 3}}).as_object().unwrap().clone();
        sign_object(&mut object, "@g:hs", "ed25519:DEV", |m| key.sign(m)).unwrap();
        let signature = object["signatures"]["@g:hs"]["ed25519:DEV"].as_str().unwrap();
        let signature = Ed25519Signature::from_base64(signature).unwrap();
        key.public_key().verify(br#"{"a":"x","b":1}"#, &signature).unwrap();
        // Another signer's signature does not change what is signed.
        sign_object(&mut object, "@g:hs", "ed25519:MASTER", |m| key.sign(m)).unwrap();
        let again = object["signatures"]["@g:hs"]["ed25519:MASTER"].as_str().unwrap();
        key.public_key()
            .verify(br#"{"a":"x","b":1}"#, &Ed25519Signature::from_base64(again).unwrap())
            .unwrap();
    }

    #[test]
    fn odd_signatures_are_refused_not_overwritten() {
        let mut object = json!({"signatures": 5}).as_object().unwrap().clone();
        let key = Ed25519SecretKey::new();
        assert!(sign_object(&mut object, "@g:hs", "ed25519:D", |m| key.sign(m)).is_err());
    }
}
