//! The postmark vectors: the DS's receipt rebuilt byte for byte, the stored
//! envelope, and the library's random postmark decrypted and verified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::canonical::stringify_str;
use dm3::crypto::aead::{self, PADDING_BLOCK};
use dm3::crypto::asymmetric::EncryptedPayload;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::{b64_decode_array, hex_decode_array, hex_encode};
use dm3::envelope::{DeliveryInformation, Envelope, Ephemeral};
use dm3::postmark::{Postmark, PostmarkError, stamp_envelope};
use serde_json::{Value, json};
use vectors::{at, str_at};

const T_IN: u64 = 1_700_000_100_000;

fn bob() -> KxKeyPair {
    KxKeyPair::from_secret_b64(str_at("users/bob/keys/encryptionKeyPair/privateKey")).unwrap()
}

fn ds_signing() -> SigningKeyPair {
    SigningKeyPair::from_secret_b64(str_at("deliveryService/keys/signingKeyPair/privateKey")).unwrap()
}

fn ds_verify() -> VerifyKey {
    VerifyKey::from_b64(str_at("deliveryService/profile/publicSigningKey")).unwrap()
}

/// The envelope the postmark vectors were made for.
fn input_envelope() -> Envelope {
    let variant = str_at("postmark/input_envelope_variant");
    Envelope::from_value(at(&format!("envelopes/{variant}/encryptedEnvelop")).clone()).unwrap()
}

fn stored_envelope() -> Envelope {
    Envelope::from_value(at("postmark/storedEnvelope_as_returned_by_GET_incoming").clone()).unwrap()
}

#[test]
fn the_postmark_plaintext_is_rebuilt_byte_for_byte() {
    let envelope = input_envelope();
    // P3/P6: EIP-191 over the JSON-quoted message string.
    assert_eq!(stringify_str(envelope.message()), str_at("postmark/eip191_input_text"));
    let unsigned = at("postmark/postmarkWithoutSignature");
    assert_eq!(hex_encode(&Postmark::message_hash_of(envelope.message())), unsigned["messageHash"]);
    assert_eq!(unsigned["incommingTimestamp"].as_u64(), Some(T_IN));

    let postmark = Postmark::create(&envelope, T_IN, &ds_signing());
    assert_eq!(postmark.signed_text(), str_at("postmark/signedString_sha256_hex"));
    assert_eq!(&postmark.to_value(), at("postmark/postmarkPlaintext"));
    assert_eq!(postmark.canonical(), str_at("postmark/postmarkPlaintextString"));
    assert_eq!(postmark.verify(&envelope, &ds_verify()), Ok(()));
}

#[test]
fn the_encrypted_postmark_is_rebuilt_byte_for_byte() {
    let postmark = Postmark::create(&input_envelope(), T_IN, &ds_signing());
    let steps = at("postmark/encryptionSteps").as_array().unwrap();
    assert_eq!(steps.len(), 1);
    let step = &steps[0];
    assert_eq!(step["receiverPublicKey"], str_at("users/bob/profile/publicEncryptionKey"));
    assert_eq!(step["plaintext"], postmark.canonical());
    assert_eq!(step["plaintextUtf8Bytes"].as_u64(), Some(postmark.canonical().len() as u64));
    assert_eq!(
        step["paddedBytes"].as_u64(),
        Some(aead::pad(postmark.canonical().as_bytes(), PADDING_BLOCK).len() as u64)
    );
    let key_pair = KxKeyPair::from_seed(&b64_decode_array(step["ephemeralSeed"].as_str().unwrap()).unwrap());
    assert_eq!(key_pair.public_b64(), step["ephemeralKeyPair"]["publicKey"]);
    assert_eq!(*key_pair.secret_b64(), step["ephemeralKeyPair"]["privateKey"]);
    let ephemeral = Ephemeral { key_pair, nonce: hex_decode_array(step["nonce"].as_str().unwrap()).unwrap() };
    let bob_pk: [u8; 32] = b64_decode_array(str_at("users/bob/profile/publicEncryptionKey")).unwrap();
    let sealed = postmark.seal_with(&bob_pk, &ephemeral).unwrap();
    assert_eq!(sealed, str_at("postmark/encryptedPostmarkString"));
    // The session keys behind it, from the sender's side.
    let keys = ephemeral.key_pair.client_session_keys(&bob_pk).unwrap();
    assert_eq!(dm3::encoding::b64_encode(keys.tx.as_ref()), step["sharedTx_senderSide"]);
    assert_eq!(dm3::encoding::b64_encode(keys.rx.as_ref()), step["sharedRx_senderSide"]);
}

#[test]
fn the_stored_envelope_is_the_ds_form() {
    let delivery = DeliveryInformation::new("bob.eth", "alice.eth");
    let stored = input_envelope().to_stored(&delivery, str_at("postmark/encryptedPostmarkString"));
    assert_eq!(&stored.to_value(), at("postmark/storedEnvelope_as_returned_by_GET_incoming"));
    assert_eq!(stored, stored_envelope());
    let event = at("postmark/websocket_event");
    assert_eq!(event["event"], "message");
    assert_eq!(&event["payload"], &stored.to_value());
    // The receiver of the stored form: message and postmark both open (§8).
    let opened = stored.open(&bob()).unwrap();
    assert_eq!(
        opened.message_hash.to_string(),
        str_at("messages/NEW/messageHash_sha256_of_stringify_message")
    );
    assert_eq!(stored.message_hash(), Some(opened.message_hash));
    let postmark = Postmark::open_envelope(&stored, &bob()).unwrap();
    assert_eq!(&postmark.to_value(), at("postmark/postmarkPlaintext"));
    assert_eq!(postmark.verify(&stored, &ds_verify()), Ok(()));
    assert_eq!(postmark.incomming_timestamp(), T_IN as f64);
}

#[test]
fn stamping_with_fresh_randomness_gives_the_same_plaintext() {
    let delivery = input_envelope()
        .delivery_information(
            &KxKeyPair::from_secret_b64(str_at("deliveryService/keys/encryptionKeyPair/privateKey")).unwrap(),
        )
        .unwrap();
    let bob_pk: [u8; 32] = *bob().public();
    let stored = stamp_envelope(&input_envelope(), &delivery, &bob_pk, &ds_signing(), T_IN).unwrap();
    assert_ne!(stored.postmark(), Some(str_at("postmark/encryptedPostmarkString")));
    let postmark = Postmark::open_envelope(&stored, &bob()).unwrap();
    assert_eq!(&postmark.to_value(), at("postmark/postmarkPlaintext"));
    let mut expected = at("postmark/storedEnvelope_as_returned_by_GET_incoming").clone();
    expected["postmark"] = json!(stored.postmark());
    assert_eq!(stored.to_value(), expected);
}

#[test]
fn the_library_postmark_decrypts_and_verifies() {
    let library = at("postmark/library_addPostmark_random");
    let payload = EncryptedPayload::from_value(&library["encryptedPayload"]).unwrap();
    let postmark = Postmark::open(&payload.to_canonical_string(), &bob()).unwrap();
    assert_eq!(&postmark.to_value(), &library["decryptedWithBobKey"]);
    assert_eq!(postmark.verify(&input_envelope(), &ds_verify()), Ok(()));
}

#[test]
fn postmark_failures_are_typed() {
    let stored = stored_envelope();
    let alice = KxKeyPair::from_secret_b64(str_at("users/alice/keys/encryptionKeyPair/privateKey")).unwrap();
    assert_eq!(Postmark::open_envelope(&stored, &alice), Err(PostmarkError::WrongKey));
    assert_eq!(Postmark::open_envelope(&input_envelope(), &bob()), Err(PostmarkError::Missing));
    let postmark = Postmark::open_envelope(&stored, &bob()).unwrap();
    let npm = Envelope::from_value(at("envelopes/npm_1_7_1_format/encryptedEnvelop").clone()).unwrap();
    assert_eq!(postmark.verify(&npm, &ds_verify()), Err(PostmarkError::HashMismatch));
    let alice_key = VerifyKey::from_b64(str_at("users/alice/keys/signingKeyPair/publicKey")).unwrap();
    assert_eq!(postmark.verify(&stored, &alice_key), Err(PostmarkError::BadSignature));
    let mut forged: Value = postmark.to_value();
    forged["incommingTimestamp"] = json!(T_IN + 1);
    let forged = Postmark::from_value(forged).unwrap();
    assert_eq!(forged.verify(&stored, &ds_verify()), Err(PostmarkError::BadSignature));
}
