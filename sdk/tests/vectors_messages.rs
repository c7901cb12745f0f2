//! The message vectors (`messages.*`): every type rebuilt with our builders
//! from its fields, timestamp and the sender's key must give the reference's
//! signed string, signature and message hash, and verify as
//! `checkMessageSignature` does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::message::{Attachment, Message, MessageBuilder, MessageHash, MessageType, MessageVerifyError};
use dm3::name::conversation_id;
use serde_json::{Value, json};
use vectors::{at, str_at};

const NAMES: [&str; 8] = [
    "NEW",
    "EDIT",
    "REPLY",
    "REACTION",
    "DELETE_REQUEST",
    "READ_RECEIVED",
    "READ_OPENED",
    "NEW_with_widget_style_attachment",
];

/// The user whose signing key is the vector's `signerPublicKey`.
fn signer(public_key: &str) -> SigningKeyPair {
    for who in ["alice", "bob"] {
        let keys = at(&format!("users/{who}/keys/signingKeyPair"));
        if keys["publicKey"] == public_key {
            return SigningKeyPair::from_secret_b64(keys["privateKey"].as_str().unwrap()).unwrap();
        }
    }
    panic!("no user has signing key {public_key}")
}

/// Rebuilds a vector message from its fields with the builder for its type.
fn rebuild(vector: &Message) -> Message {
    let builder = MessageBuilder::new(vector.to(), vector.from(), vector.timestamp() as u64);
    let reference = || vector.reference_message_hash().unwrap().parse::<MessageHash>().unwrap();
    let attachments = || {
        vector
            .attachments()
            .map(|_| vector.parsed_attachments().into_iter().map(Result::unwrap).collect::<Vec<_>>())
    };
    let text = || vector.text().unwrap();
    match vector.kind() {
        MessageType::New => builder.text(text(), attachments()),
        MessageType::Edit => builder.edit(text(), &reference(), attachments()),
        MessageType::Reply => builder.reply(text(), &reference(), attachments()),
        MessageType::Reaction => builder.reaction(text(), &reference()),
        MessageType::DeleteRequest => builder.delete_request(&reference()),
        MessageType::ReadReceived => builder.read_received(&reference()),
        MessageType::ReadOpened => builder.read_opened(&reference()),
        MessageType::ResendRequest => panic!("no vector for RESEND_REQUEST"),
    }
}

#[test]
fn every_message_type_is_rebuilt_byte_for_byte() {
    for name in NAMES {
        let base = format!("messages/{name}");
        let vector = Message::from_value(at(&format!("{base}/message")).clone()).unwrap();
        let unsigned = rebuild(&vector);
        assert_eq!(unsigned.canonical(), str_at(&format!("{base}/signedString")), "{name}");
        let signed = unsigned.sign(&signer(str_at(&format!("{base}/signerPublicKey"))));
        assert_eq!(signed.signed_string(), str_at(&format!("{base}/signedString")), "{name}");
        assert_eq!(signed.signature(), Some(str_at(&format!("{base}/signature_base64"))), "{name}");
        assert_eq!(
            signed.hash().to_string(),
            str_at(&format!("{base}/messageHash_sha256_of_stringify_message")),
            "{name}"
        );
        assert_eq!(signed, vector, "{name}");
    }
}

#[test]
fn every_message_verifies_like_check_message_signature() {
    for name in NAMES {
        let base = format!("messages/{name}");
        let message = Message::from_value(at(&format!("{base}/message")).clone()).unwrap();
        let key = VerifyKey::from_b64(str_at(&format!("{base}/signerPublicKey"))).unwrap();
        let expected = at(&format!("{base}/checkMessageSignature")).as_bool().unwrap();
        let sender = message.from().to_owned();
        assert_eq!(message.verify(&key, &sender).is_ok(), expected, "{name}");
        assert_eq!(message.verify(&key, &sender.to_uppercase()), Ok(()), "{name}: names are normalized");
        assert_eq!(
            message.hash().to_string(),
            str_at(&format!("{base}/messageHash_sha256_of_stringify_message"))
        );
    }
}

#[test]
fn tampering_with_any_signed_part_breaks_verification() {
    type Tamper = fn(&mut Value);
    let tamperings: [(&str, Tamper); 5] = [
        ("text", |m| m["message"] = json!("Hello Mallory")),
        ("timestamp", |m| m["metadata"]["timestamp"] = json!(1700000000001u64)),
        ("receiver", |m| m["metadata"]["to"] = json!("mallory.eth")),
        ("attachment extra field", |m| m["attachments"][0]["size"] = json!(1)),
        ("new field", |m| m["metadata"]["replyDeliveryInstruction"] = json!("x")),
    ];
    let key = VerifyKey::from_b64(str_at("messages/NEW/signerPublicKey")).unwrap();
    for (what, tamper) in tamperings {
        let mut value = at("messages/NEW/message").clone();
        tamper(&mut value);
        let message = Message::from_value(value).unwrap();
        assert_eq!(message.verify(&key, "alice.eth"), Err(MessageVerifyError::BadSignature), "{what}");
    }
    let genuine = Message::from_value(at("messages/NEW/message").clone()).unwrap();
    assert!(matches!(genuine.verify(&key, "bob.eth"), Err(MessageVerifyError::WrongSender { .. })));
    let bob = VerifyKey::from_b64(str_at("messages/READ_OPENED/signerPublicKey")).unwrap();
    assert_eq!(genuine.verify(&bob, "alice.eth"), Err(MessageVerifyError::BadSignature));
}

#[test]
fn references_point_at_the_new_message() {
    let new_hash = str_at("messages/NEW/messageHash_sha256_of_stringify_message");
    for name in ["EDIT", "REPLY", "REACTION", "DELETE_REQUEST", "READ_RECEIVED", "READ_OPENED"] {
        let message = Message::from_value(at(&format!("messages/{name}/message")).clone()).unwrap();
        assert_eq!(message.reference_message_hash(), Some(new_hash), "{name}");
    }
}

#[test]
fn widget_attachments_keep_their_extra_fields() {
    let message =
        Message::from_value(at("messages/NEW_with_widget_style_attachment/message").clone()).unwrap();
    let attachments: Vec<Attachment> = message.parsed_attachments().into_iter().map(Result::unwrap).collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].name(), Some("pic.png"));
    assert_eq!(attachments[0].data(), "data:image/png;base64,iVBORw0KGgo=");
    let extra: Vec<&str> = attachments[0].extra_fields().map(|(key, _)| key.as_str()).collect();
    assert_eq!(extra, ["id", "isImage"]);
    assert_eq!(
        attachments[0].to_value(),
        at("messages/NEW_with_widget_style_attachment/message/attachments/0").clone()
    );
}

#[test]
fn conversation_id_matches_the_delivery_service() {
    // The DS joins the receiver's address and the sender's name (§8 step 4).
    let receiver = str_at("wallets/bob/address");
    for format in ["npm_1_7_1_format", "repo_tag_1_7_1_format"] {
        let expected = str_at(&format!("envelopes/{format}/decrypted/conversationId_on_DS"));
        assert_eq!(conversation_id(receiver, "Alice.eth").unwrap(), expected);
    }
}
