//! Live interop: profiles and messages, in both directions. Profiles made by
//! the reference wallet flow verify here; ours verify in the reference. Every
//! message type built here passes `checkMessageSignature`, and the reference's
//! builders produce the same bytes as ours for the same input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use dm3::crypto::eth::{Wallet, checksum, parse_address};
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::message::{Message, MessageBuilder, MessageHash};
use dm3::profile::{SignedUserProfile, UserProfile};
use serde_json::{Value, json};
use support::oracle::with_oracle;

#[test]
fn reference_profiles_verify_here_and_ours_verify_there() {
    for _ in 0..5 {
        let user =
            with_oracle(|o| o.must("random_user", json!({"deliveryServices": ["ds.example.eth", "b.eth"]})));
        let address = parse_address(user["address"].as_str().unwrap()).unwrap();
        let theirs = SignedUserProfile::from_value(user["signedUserProfile"].clone()).unwrap();
        theirs.verify_against_address(&address).unwrap();
        let creation = with_oracle(|o| {
            o.must(
                "profile_creation_message",
                json!({"profile": user["signedUserProfile"]["profile"], "address": user["address"]}),
            )
        });
        assert_eq!(creation, user["profileCreationMessage"]);

        // Ours, from the same wallet: identical keys, identical signature.
        let wallet = Wallet::from_hex(user["privateKey"].as_str().unwrap()).unwrap();
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        let ours = UserProfile::from_keys(&keys, vec!["ds.example.eth", "b.eth"]).sign(&wallet);
        assert_eq!(ours.to_value(), user["signedUserProfile"]);
        let accepted = with_oracle(|o| {
            o.must(
                "check_profile",
                json!({"signedUserProfile": ours.to_value(), "address": checksum(&wallet.address())}),
            )
        });
        assert_eq!(accepted, json!(true));
        let stranger = Wallet::generate();
        let rejected = with_oracle(|o| {
            o.must(
                "check_profile",
                json!({"signedUserProfile": ours.to_value(), "address": checksum(&stranger.address())}),
            )
        });
        assert_eq!(rejected, json!(false));
    }
}

/// Builds every type with our builders and with the reference builders (clock
/// pinned), and expects the same signed bytes.
#[test]
fn every_message_type_is_built_identically_and_verifies_in_the_reference() {
    let alice = SigningKeyPair::generate();
    let alice_key = VerifyKey::from_bytes(&alice.public()).unwrap();
    let (to, from, at) =
        ("bob.eth", "0xabc0000000000000000000000000000000000001.addr.dm3.eth", 1_764_000_000_123u64);
    let builder = MessageBuilder::new(to, from, at);
    let first = builder.text("hi 👋 \u{2028}\n\"there\"", None).sign(&alice);
    let target = first.hash();
    let cases: Vec<(&str, Option<&str>, Message)> = vec![
        ("NEW", Some("hi 👋 \u{2028}\n\"there\""), first.clone()),
        ("EDIT", Some("edited"), builder.edit("edited", &target, None).sign(&alice)),
        ("REPLY", Some("re"), builder.reply("re", &target, None).sign(&alice)),
        ("REACTION", Some("👍"), builder.reaction("👍", &target).sign(&alice)),
        ("DELETE_REQUEST", None, builder.delete_request(&target).sign(&alice)),
        ("READ_RECEIVED", None, builder.read_received(&target).sign(&alice)),
        ("READ_OPENED", None, builder.read_opened(&target).sign(&alice)),
    ];
    for (kind, text, ours) in cases {
        let mut args = json!({
            "type": kind, "to": to, "from": from, "timestamp": at,
            "signingPrivateKey": *alice.secret_b64(),
        });
        if let Some(text) = text {
            args["text"] = json!(text);
        }
        if kind != "NEW" {
            args["referenceMessageHash"] = json!(target.to_string());
        }
        let theirs = with_oracle(|o| o.must("create_message", args));
        assert_eq!(ours.to_value(), theirs["message"], "{kind}");
        assert_eq!(json!(ours.hash().to_string()), theirs["messageHash"], "{kind}");
        let checked = with_oracle(|o| {
            o.must(
                "check_message",
                json!({"message": ours.to_value(), "publicSigningKey": alice.public_b64(), "from": from}),
            )
        });
        assert_eq!(checked, json!(true), "{kind}");
        Message::from_value(theirs["message"].clone()).unwrap().verify(&alice_key, from).unwrap();
    }
}

#[test]
fn tampered_messages_fail_in_both() {
    let alice = SigningKeyPair::generate();
    let alice_key = VerifyKey::from_bytes(&alice.public()).unwrap();
    let signed = MessageBuilder::new("bob.eth", "alice.eth", 1).text("hello", None).sign(&alice);
    let mut tampered: Value = signed.to_value();
    tampered["metadata"]["timestamp"] = json!(2);
    let theirs = with_oracle(|o| {
        o.must(
            "check_message",
            json!({"message": tampered, "publicSigningKey": alice.public_b64(), "from": "alice.eth"}),
        )
    });
    assert_eq!(theirs, json!(false));
    assert!(Message::from_value(tampered).unwrap().verify(&alice_key, "alice.eth").is_err());
    // Unknown fields are inside the signature: keeping them keeps it valid.
    let mut extended = signed.to_value();
    extended["metadata"]["x-extension"] = json!({"z": 1, "a": [1.5]});
    let resigned = Message::from_value(extended).unwrap().sign(&alice);
    let theirs = with_oracle(|o| {
        o.must(
            "check_message",
            json!({"message": resigned.to_value(), "publicSigningKey": alice.public_b64(), "from": "ALICE.eth"}),
        )
    });
    assert_eq!(theirs, json!(true));
    resigned.verify(&alice_key, "ALICE.eth").unwrap();
    let _: MessageHash = resigned.hash();
}
