//! Live interop: envelopes, messages and postmarks made at random by the
//! reference libraries are opened and verified here, and what this crate seals
//! and stamps the reference libraries open and verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use dm3::canonical;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::b64_decode_array;
use dm3::envelope::Envelope;
use dm3::message::Message;
use dm3::postmark::Postmark;
use serde_json::{Value, json};
use support::oracle::with_oracle;

/// A user made by the reference libraries: wallet, derived keys, signed profile.
struct User {
    name: String,
    encryption: KxKeyPair,
    signing: SigningKeyPair,
    raw: Value,
}

fn reference_user() -> User {
    let raw = with_oracle(|o| o.must("random_user", json!({})));
    let encryption =
        KxKeyPair::from_secret_b64(raw["keys"]["encryption"]["privateKey"].as_str().unwrap()).unwrap();
    let signing =
        SigningKeyPair::from_secret_b64(raw["keys"]["signing"]["privateKey"].as_str().unwrap()).unwrap();
    assert_eq!(encryption.public_b64(), raw["keys"]["encryption"]["publicKey"]);
    assert_eq!(signing.public_b64(), raw["keys"]["signing"]["publicKey"]);
    User { name: raw["ensName"].as_str().unwrap().to_owned(), encryption, signing, raw }
}

fn key_pair_json(pair: &KxKeyPair) -> Value {
    json!({ "publicKey": pair.public_b64(), "privateKey": *pair.secret_b64() })
}

fn verify_message_signature(message: &Message, signer: &SigningKeyPair) -> bool {
    let mut unsigned = message.as_map().clone();
    let signature = unsigned.remove("signature").and_then(|s| s.as_str().map(str::to_owned)).unwrap();
    let key = VerifyKey::from_bytes(&signer.public()).unwrap();
    key.verify_b64(&canonical::stringify_object(&unsigned), &signature).unwrap()
}

/// Every message type the reference builds, with text that stresses the encoding.
fn reference_messages(from: &User, to: &User) -> Vec<Value> {
    let first = with_oracle(|o| {
        o.must(
            "create_message",
            json!({
                "type": "NEW", "to": to.name, "from": from.name,
                "text": "grüße 👋 \"q\" \\ \u{2028} line\nbreak",
                "attachments": [{"name": "a.txt", "data": "data:text/plain;base64,SGk=", "isImage": false}],
                "signingPrivateKey": *from.signing.secret_b64(),
            }),
        )
    });
    let reference = first["messageHash"].as_str().unwrap().to_owned();
    let mut messages = vec![first["message"].clone()];
    for (kind, text) in [
        ("EDIT", Some("edited")),
        ("REPLY", Some("a reply")),
        ("REACTION", Some("👍")),
        ("DELETE_REQUEST", None),
        ("READ_RECEIVED", None),
        ("READ_OPENED", None),
    ] {
        let mut args = json!({
            "type": kind, "to": to.name, "from": from.name, "referenceMessageHash": reference,
            "signingPrivateKey": *from.signing.secret_b64(),
        });
        if let Some(text) = text {
            args["text"] = json!(text);
        }
        messages.push(with_oracle(|o| o.must("create_message", args))["message"].clone());
    }
    messages
}

#[test]
fn reference_envelopes_open_and_verify_here() {
    let ds = KxKeyPair::generate();
    let ds_signing = SigningKeyPair::generate();
    for round in 0..3 {
        let alice = reference_user();
        let bob = reference_user();
        for (index, message) in reference_messages(&alice, &bob).into_iter().enumerate() {
            let format = if (round + index) % 2 == 0 { "current" } else { "npm" };
            let sealed = with_oracle(|o| {
                o.must(
                    "seal",
                    json!({
                        "message": message, "format": format,
                        "senderSigningPrivateKey": *alice.signing.secret_b64(),
                        "recipientPublicEncryptionKey": bob.encryption.public_b64(),
                        "dsPublicEncryptionKey": ds.public_b64(),
                    }),
                )
            });
            let envelope = Envelope::from_value(sealed.clone()).unwrap();
            let size = with_oracle(|o| o.must("envelope_size", json!({ "envelope": sealed })));
            assert_eq!(json!(envelope.size()), size, "getEnvelopSize");
            envelope.verify_metadata(&VerifyKey::from_bytes(&alice.signing.public()).unwrap()).unwrap();
            let opened = envelope.open(&bob.encryption).unwrap();
            assert_eq!(opened.message.to_value(), message, "{format} round {round} message {index}");
            let expected_hash = with_oracle(|o| o.must("message_hash", json!({ "message": message })));
            assert_eq!(json!(opened.message_hash.to_string()), expected_hash);
            assert!(verify_message_signature(&opened.message, &alice.signing));
            let delivery = envelope.delivery_information(&ds).unwrap();
            assert_eq!((delivery.to(), delivery.from()), (bob.name.as_str(), alice.name.as_str()));

            // The reference DS stamps it; we open and verify its postmark.
            let stamped = with_oracle(|o| {
                o.must(
                    "add_postmark",
                    json!({
                        "envelope": sealed,
                        "receiverPublicEncryptionKey": bob.encryption.public_b64(),
                        "dsSigningPrivateKey": *ds_signing.secret_b64(),
                        "dsEncryptionKeyPair": key_pair_json(&ds),
                    }),
                )
            });
            let stamped = Envelope::from_value(stamped).unwrap();
            let postmark = Postmark::open_envelope(&stamped, &bob.encryption).unwrap();
            postmark.verify(&stamped, &VerifyKey::from_bytes(&ds_signing.public()).unwrap()).unwrap();
            assert_eq!(stamped.open(&bob.encryption).unwrap().message_hash, opened.message_hash);
        }
    }
}

#[test]
fn envelopes_sealed_here_open_and_verify_in_the_reference() {
    let ds = KxKeyPair::generate();
    let ds_signing = SigningKeyPair::generate();
    for _ in 0..3 {
        let alice = reference_user();
        let bob = reference_user();
        for message in reference_messages(&alice, &bob) {
            let message = Message::from_value(message).unwrap();
            let envelope =
                Envelope::seal(&message, &alice.signing, bob.encryption.public(), ds.public()).unwrap();
            let wire: Value = serde_json::from_str(&envelope.to_json()).unwrap();
            let opened = with_oracle(|o| {
                o.must(
                    "open",
                    json!({
                        "envelope": wire,
                        "receiverEncryptionKeyPair": key_pair_json(&bob.encryption),
                        "dsEncryptionKeyPair": key_pair_json(&ds),
                    }),
                )
            });
            assert_eq!(opened["message"], message.to_value());
            assert_eq!(opened["messageHash"], json!(message.hash().to_string()));
            assert_eq!(opened["deliveryInformation"]["to"], json!(bob.name));
            assert_eq!(opened["deliveryInformation"]["from"], json!(alice.name));
            assert_eq!(wire["metadata"]["messageHash"], json!(message.hash().to_string()));
            let metadata_ok = with_oracle(|o| {
                o.must(
                    "verify_envelope_metadata",
                    json!({ "envelope": wire, "senderPublicSigningKey": alice.signing.public_b64() }),
                )
            });
            assert_eq!(metadata_ok, json!(true));
            let check = with_oracle(|o| {
                o.must(
                    "check_message",
                    json!({
                        "message": opened["message"], "publicSigningKey": alice.signing.public_b64(),
                        "from": alice.name,
                    }),
                )
            });
            assert_eq!(check, json!(true));
            let size = with_oracle(|o| o.must("envelope_size", json!({ "envelope": wire })));
            assert_eq!(size, json!(envelope.size()));

            // Our postmark, in the stored form our relay will return: the
            // reference receiver must open it and the reference check must pass.
            let delivery = envelope.delivery_information(&ds).unwrap();
            let stamp = Postmark::create(&envelope, 1_764_000_000_000, &ds_signing);
            let stored = envelope.to_stored(&delivery, &stamp.seal(bob.encryption.public()).unwrap());
            let stored: Value = serde_json::from_str(&stored.to_json()).unwrap();
            let postmark = with_oracle(|o| {
                o.must(
                    "open_postmark",
                    json!({ "postmark": stored["postmark"], "receiverEncryptionKeyPair": key_pair_json(&bob.encryption) }),
                )
            });
            assert_eq!(postmark["incommingTimestamp"], json!(1_764_000_000_000u64));
            let verified = with_oracle(|o| {
                o.must(
                    "verify_postmark",
                    json!({ "envelope": stored, "postmark": postmark, "dsPublicSigningKey": ds_signing.public_b64() }),
                )
            });
            assert_eq!(verified, json!(true));
        }
    }
}

#[test]
fn reference_user_keys_derive_identically_here() {
    for _ in 0..5 {
        let user = reference_user();
        let signature = user.raw["storageKeySignature"].as_str().unwrap();
        let keys = dm3::keys::ProfileKeys::from_signature(signature);
        assert_eq!(keys.encryption.public_b64(), user.encryption.public_b64());
        assert_eq!(keys.signing.public_b64(), user.signing.public_b64());
        let wallet = dm3::crypto::eth::Wallet::from_hex(user.raw["privateKey"].as_str().unwrap()).unwrap();
        let ours = dm3::keys::ProfileKeys::from_wallet(&wallet, user.raw["nonce"].as_str().unwrap());
        assert_eq!(*ours.signing.secret_b64(), *user.signing.secret_b64());
        let seed: [u8; 32] = b64_decode_array(user.raw["keys"]["storageKey"].as_str().unwrap()).unwrap();
        assert_eq!(
            *dm3::keys::ProfileKeys::from_seed(&seed).encryption.secret_b64(),
            *user.encryption.secret_b64()
        );
    }
}
