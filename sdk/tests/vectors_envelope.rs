//! The envelope vectors: both formats rebuilt byte for byte, opened with the
//! receiver's and the DS's keys, and the library's random envelope opened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::canonical::{self, stringify_str};
use dm3::crypto::asymmetric::EncryptedPayload;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::{b64_decode, b64_decode_array, b64_encode, hex_decode_array};
use dm3::envelope::{
    DeliveryInformation, DeliveryInformationField, Envelope, EnvelopeFormat, Ephemeral,
    MetadataSignatureError, OpenError, SealRandomness,
};
use dm3::message::Message;
use serde_json::{Value, json};
use vectors::{at, str_at};

const FORMATS: [(&str, EnvelopeFormat); 2] = [
    ("npm_1_7_1_format", EnvelopeFormat::EncryptedMessageHash),
    ("repo_tag_1_7_1_format", EnvelopeFormat::MessageHash),
];

fn bob() -> KxKeyPair {
    KxKeyPair::from_secret_b64(str_at("users/bob/keys/encryptionKeyPair/privateKey")).unwrap()
}

fn alice() -> KxKeyPair {
    KxKeyPair::from_secret_b64(str_at("users/alice/keys/encryptionKeyPair/privateKey")).unwrap()
}

fn ds() -> KxKeyPair {
    KxKeyPair::from_secret_b64(str_at("deliveryService/keys/encryptionKeyPair/privateKey")).unwrap()
}

fn alice_signing() -> SigningKeyPair {
    SigningKeyPair::from_secret_b64(str_at("users/alice/keys/signingKeyPair/privateKey")).unwrap()
}

fn alice_verify() -> VerifyKey {
    VerifyKey::from_b64(str_at("users/alice/keys/signingKeyPair/publicKey")).unwrap()
}

fn new_message() -> Message {
    Message::from_value(at("messages/NEW/message").clone()).unwrap()
}

fn vector_envelope(format: &str) -> Envelope {
    Envelope::from_value(at(&format!("envelopes/{format}/encryptedEnvelop")).clone()).unwrap()
}

fn edited(envelope: &Envelope, change: impl FnOnce(&mut Value)) -> Envelope {
    let mut value = envelope.to_value();
    change(&mut value);
    Envelope::from_value(value).unwrap()
}

/// The ephemeral key and nonce the generator logged for one encryption.
fn ephemeral(step: &Value) -> Ephemeral {
    let seed: [u8; 32] = b64_decode_array(step["ephemeralSeed"].as_str().unwrap()).unwrap();
    let key_pair = KxKeyPair::from_seed(&seed);
    assert_eq!(key_pair.public_b64(), step["ephemeralKeyPair"]["publicKey"]);
    Ephemeral { key_pair, nonce: hex_decode_array(step["nonce"].as_str().unwrap()).unwrap() }
}

#[test]
fn both_formats_are_rebuilt_byte_for_byte() {
    let message = new_message();
    let bob_pk: [u8; 32] = b64_decode_array(str_at("users/bob/profile/publicEncryptionKey")).unwrap();
    let ds_pk: [u8; 32] = b64_decode_array(str_at("deliveryService/profile/publicEncryptionKey")).unwrap();
    for (name, format) in FORMATS {
        let base = format!("envelopes/{name}");
        let steps = at(&format!("{base}/encryptionSteps")).as_array().unwrap();
        // The generator encrypts the message to Bob first, then {to, from} to the DS.
        assert_eq!(steps[0]["receiverPublicKey"], str_at("users/bob/profile/publicEncryptionKey"));
        assert_eq!(steps[0]["plaintext"], message.canonical());
        assert_eq!(steps[1]["receiverPublicKey"], str_at("deliveryService/profile/publicEncryptionKey"));
        assert_eq!(steps[1]["plaintext"], DeliveryInformation::new("bob.eth", "alice.eth").canonical());
        let randomness =
            SealRandomness { message: ephemeral(&steps[0]), delivery_information: ephemeral(&steps[1]) };

        let sealed =
            Envelope::seal_with(&message, &alice_signing(), &bob_pk, &ds_pk, format, &randomness).unwrap();

        assert_eq!(&sealed.to_value(), at(&format!("{base}/encryptedEnvelop")), "{name}");
        let mut unsigned = sealed.metadata().clone();
        unsigned.remove("signature");
        assert_eq!(canonical::stringify_object(&unsigned), str_at(&format!("{base}/signedMetadataString")));
        assert_eq!(
            sealed.size() as u64,
            at(&format!("{base}/envelopSizeBytes_getEnvelopSize")).as_u64().unwrap()
        );
        let body = at(&format!("{base}/jsonRpcRequestBody"));
        assert_eq!(sealed.to_json(), body["params"][0].as_str().unwrap(), "{name}: JSON.stringify order");
        let expected_body = format!(
            r#"{{"jsonrpc":"2.0","method":"dm3_submitMessage","params":[{}]}}"#,
            stringify_str(body["params"][0].as_str().unwrap())
        );
        assert_eq!(sealed.jsonrpc_submit_body(), expected_body);
        assert_eq!(&serde_json::from_str::<Value>(&sealed.jsonrpc_submit_body()).unwrap(), body);
    }
    assert_eq!(
        vector_envelope("npm_1_7_1_format").encrypted_message_hash().unwrap().to_string(),
        str_at("envelopes/npm_1_7_1_format/encryptedMessageHash_check")
    );
}

#[test]
fn vector_envelopes_open_for_bob_and_the_ds() {
    let expected_hash = str_at("messages/NEW/messageHash_sha256_of_stringify_message");
    for (name, format) in FORMATS {
        let base = format!("envelopes/{name}");
        // As the DS receives it: params[0] of the JSON-RPC body.
        let envelope = Envelope::from_rpc_param(at(&format!("{base}/jsonRpcRequestBody/params/0"))).unwrap();
        assert_eq!(envelope, vector_envelope(name));
        assert_eq!(envelope.format(), format);

        let opened = envelope.open(&bob()).unwrap();
        assert_eq!(&opened.message.to_value(), at(&format!("{base}/decrypted/message")));
        assert_eq!(opened.message_hash.to_string(), expected_hash, "{name}: the id to dedup by");
        assert_eq!(opened.format, format);

        let delivery = envelope.delivery_information(&ds()).unwrap();
        assert_eq!(&delivery.to_value(), at(&format!("{base}/decrypted/deliveryInformation_by_DS")));
        let conversation = format!("{},{}", str_at("wallets/bob/address").to_lowercase(), delivery.from());
        assert_eq!(conversation, str_at(&format!("{base}/decrypted/conversationId_on_DS")));

        assert_eq!(envelope.verify_metadata(&alice_verify()), Ok(()), "{name}");
    }
}

#[test]
fn the_library_random_envelope_opens_and_verifies() {
    let envelope = Envelope::from_value(at("library_random/encryptedEnvelop").clone()).unwrap();
    assert_eq!(envelope.format(), EnvelopeFormat::EncryptedMessageHash);
    let opened = envelope.open(&bob()).unwrap();
    assert_eq!(&opened.message.to_value(), at("library_random/decryptedMessage"));
    assert_eq!(
        opened.message_hash.to_string(),
        str_at("messages/NEW/messageHash_sha256_of_stringify_message")
    );
    let delivery = envelope.delivery_information(&ds()).unwrap();
    assert_eq!(&delivery.to_value(), at("library_random/decryptedDeliveryInformation"));
    assert_eq!(envelope.verify_metadata(&alice_verify()), Ok(()));
    // The message inside is Alice's, signed over stringify(message without signature).
    let mut unsigned = opened.message.as_map().clone();
    let signature = unsigned.remove("signature").unwrap();
    assert_eq!(
        alice_verify().verify_b64(&canonical::stringify_object(&unsigned), signature.as_str().unwrap()),
        Ok(true)
    );
}

#[test]
fn wrong_keys_are_typed_errors() {
    for (name, _) in FORMATS {
        let envelope = vector_envelope(name);
        assert_eq!(envelope.open(&alice()), Err(OpenError::WrongKey), "{name}");
        assert_eq!(envelope.open(&ds()), Err(OpenError::WrongKey), "{name}");
        assert_eq!(envelope.delivery_information(&bob()), Err(OpenError::WrongKey), "{name}");
    }
}

#[test]
fn tampered_ciphertext_is_a_typed_error() {
    let envelope = vector_envelope("repo_tag_1_7_1_format");
    let mut payload = EncryptedPayload::parse(envelope.message()).unwrap();
    let mut bytes = b64_decode(&payload.ciphertext).unwrap();
    bytes[100] ^= 0x40;
    payload.ciphertext = b64_encode(&bytes);
    let tampered = edited(&envelope, |v| v["message"] = json!(payload.to_canonical_string()));
    assert_eq!(tampered.open(&bob()), Err(OpenError::WrongKey));
    let cut = edited(&envelope, |v| {
        v["message"] = json!(r#"{"ciphertext":"AAAA","ephemPublicKey":"x","nonce":"0x00"}"#)
    });
    assert!(matches!(cut.open(&bob()), Err(OpenError::MalformedPayload(_))));
}

#[test]
fn swapped_hashes_are_mismatches() {
    // The current format: a messageHash that belongs to another message.
    let repo = vector_envelope("repo_tag_1_7_1_format");
    let edit_hash = str_at("messages/EDIT/messageHash_sha256_of_stringify_message");
    let swapped = edited(&repo, |v| v["metadata"]["messageHash"] = json!(edit_hash));
    let error = swapped.open(&bob()).unwrap_err();
    assert_eq!(
        error,
        OpenError::HashMismatch {
            field: "messageHash",
            claimed: edit_hash.to_owned(),
            computed: str_at("messages/NEW/messageHash_sha256_of_stringify_message").to_owned(),
        }
    );
    // The npm format: the other envelope's ciphertext under this metadata.
    let npm = vector_envelope("npm_1_7_1_format");
    let spliced = edited(&npm, |v| v["message"] = json!(repo.message()));
    assert!(matches!(
        spliced.open(&bob()),
        Err(OpenError::HashMismatch { field: "encryptedMessageHash", .. })
    ));
}

#[test]
fn bad_metadata_signatures_are_rejected() {
    let repo = vector_envelope("repo_tag_1_7_1_format");
    let npm = vector_envelope("npm_1_7_1_format");
    let swapped = edited(&repo, |v| v["metadata"]["signature"] = json!(npm.signature()));
    assert_eq!(swapped.verify_metadata(&alice_verify()), Err(MetadataSignatureError::Invalid));
    let bob_key = VerifyKey::from_b64(str_at("users/bob/keys/signingKeyPair/publicKey")).unwrap();
    assert_eq!(repo.verify_metadata(&bob_key), Err(MetadataSignatureError::Invalid));
    let garbage = edited(&repo, |v| v["metadata"]["signature"] = json!("not base64!"));
    assert_eq!(garbage.verify_metadata(&alice_verify()), Err(MetadataSignatureError::Malformed));
    let stored =
        Envelope::from_value(at("postmark/storedEnvelope_as_returned_by_GET_incoming").clone()).unwrap();
    assert!(matches!(stored.delivery_information_field(), DeliveryInformationField::Plain(_)));
    assert_eq!(stored.verify_metadata(&alice_verify()), Err(MetadataSignatureError::NotVerifiable));
}

#[test]
fn sealing_with_fresh_randomness_opens_with_the_vector_keys() {
    let bob_pk: [u8; 32] = *bob().public();
    let envelope = Envelope::seal(&new_message(), &alice_signing(), &bob_pk, ds().public()).unwrap();
    assert_eq!(envelope.format(), EnvelopeFormat::MessageHash);
    assert_ne!(&envelope.to_value(), at("envelopes/repo_tag_1_7_1_format/encryptedEnvelop"));
    assert_eq!(envelope.message_hash(), Some(new_message().hash()));
    assert_eq!(envelope.open(&bob()).unwrap().message, new_message());
    assert_eq!(envelope.verify_metadata(&alice_verify()), Ok(()));
    // Same plaintext and keys, fresh randomness: the size does not change.
    let size = at("envelopes/repo_tag_1_7_1_format/envelopSizeBytes_getEnvelopSize").as_u64().unwrap();
    assert_eq!(envelope.size() as u64, size);
}
