//! The `dm3` command's contract: JSON in on stdin, JSON out plus one newline,
//! exit 0 / 1 (a check failed) / 2 (malformed input or usage), one stderr line
//! per failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod vectors;

use serde_json::{Value, json};
use support::cli::{dm3, json_out};
use support::oracle::with_oracle;
use vectors::{at, str_at};

fn bob_key() -> &'static str {
    str_at("users/bob/keys/encryptionKeyPair/privateKey")
}

fn ds_key() -> &'static str {
    str_at("deliveryService/keys/encryptionKeyPair/privateKey")
}

#[test]
fn canonical_and_hash_message() {
    let run = dm3(&["canonical"], r#"{"b":[1.0,1e21,"\u00e9"],"a":null}"#);
    assert_eq!(run.stdout, "{\"a\":null,\"b\":[1,1e+21,\"é\"]}\n");
    for kind in ["NEW", "EDIT", "REPLY", "REACTION", "DELETE_REQUEST", "READ_RECEIVED", "READ_OPENED"] {
        let message = at(&format!("messages/{kind}/message")).to_string();
        let run = dm3(&["hash-message"], &message);
        assert_eq!(
            run.stdout.trim(),
            str_at(&format!("messages/{kind}/messageHash_sha256_of_stringify_message"))
        );
    }
}

#[test]
fn keys_from_seed_and_from_signature() {
    let out = json_out(&dm3(&["keys", "from-seed", str_at("primitives/seed_base64")], ""));
    assert_eq!(out["encryption"]["publicKey"], at("primitives/kxKeyPairFromSeed/publicKey").clone());
    assert_eq!(out["signing"]["privateKey"], at("primitives/signKeyPairFromSeed/privateKey").clone());
    let out = json_out(&dm3(&["keys", "from-signature", str_at("users/alice/storageKeySignature")], ""));
    assert_eq!(out["storageKey"], at("users/alice/storageKey_base64").clone());
    assert_eq!(
        out["encryption"],
        json!({
            "publicKey": str_at("users/alice/keys/encryptionKeyPair/publicKey"),
            "privateKey": str_at("users/alice/keys/encryptionKeyPair/privateKey"),
        })
    );
    assert_eq!(out["signing"]["publicKey"], at("users/alice/keys/signingKeyPair/publicKey").clone());
    assert_eq!(dm3(&["keys", "from-seed", "not base64!"], "").code, 2);
    assert_eq!(dm3(&["keys", "from-signature", "0x1234"], "").code, 2);
}

#[test]
fn sign_and_verify_message() {
    let signed = at("messages/NEW/message");
    let mut unsigned = signed.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let key = str_at("users/alice/keys/signingKeyPair/privateKey");
    let out = json_out(&dm3(&["sign-message", "--key", key], &unsigned.to_string()));
    assert_eq!(&out, signed);
    let public = str_at("users/alice/keys/signingKeyPair/publicKey");
    assert_eq!(dm3(&["verify-message", "--key", public], &signed.to_string()).stdout, "valid\n");
    let mut tampered = signed.clone();
    tampered["message"] = json!("something else");
    assert_eq!(dm3(&["verify-message", "--key", public], &tampered.to_string()).code, 1);
    let bob = str_at("users/bob/keys/signingKeyPair/publicKey");
    assert_eq!(dm3(&["verify-message", "--key", bob], &signed.to_string()).code, 1);
    assert_eq!(dm3(&["verify-message", "--key", public], "{\"not\":\"a message\"}").code, 2);
    assert_eq!(dm3(&["verify-message", "--key", "short"], &signed.to_string()).code, 2);
}

#[test]
fn verify_profile() {
    let profile = at("users/alice/signedUserProfile").to_string();
    let alice = str_at("wallets/alice/address");
    assert_eq!(dm3(&["verify-profile", "--address", alice], &profile).stdout, "valid\n");
    assert_eq!(dm3(&["verify-profile", "--address", str_at("wallets/bob/address")], &profile).code, 1);
    assert_eq!(dm3(&["verify-profile", "--address", "0xnope"], &profile).code, 2);
    assert_eq!(dm3(&["verify-profile", "--address", alice], "[]").code, 2);
}

#[test]
fn open_decrypts_every_envelope_of_the_shared_vectors() {
    for format in ["npm_1_7_1_format", "repo_tag_1_7_1_format"] {
        let envelope = at(&format!("envelopes/{format}/encryptedEnvelop")).to_string();
        let out = json_out(&dm3(&["open", "--key", bob_key(), "--ds-key", ds_key()], &envelope));
        assert_eq!(out["message"], at(&format!("envelopes/{format}/decrypted/message")).clone(), "{format}");
        assert_eq!(out["deliveryInformation"], json!({"to": "bob.eth", "from": "alice.eth"}));
        assert_eq!(out["messageHash"], at("messages/NEW/messageHash_sha256_of_stringify_message").clone());
        // Without the DS key the delivery information stays closed.
        let out = json_out(&dm3(&["open", "--key", bob_key()], &envelope));
        assert!(out.get("deliveryInformation").is_none());
    }
    // The stored form: plain delivery information and a postmark.
    let stored = at("postmark/storedEnvelope_as_returned_by_GET_incoming").to_string();
    let out = json_out(&dm3(&["open", "--key", bob_key()], &stored));
    assert_eq!(out["postmark"], at("postmark/postmarkPlaintext").clone());
    assert_eq!(out["deliveryInformation"]["to"], "bob.eth");
    // The library's random envelope, sealed with the unmodified random code path.
    let random = at("library_random");
    assert!(random.get("decryptedMessage").is_some());
    let envelope = random["encryptedEnvelop"].to_string();
    let out = json_out(&dm3(&["open", "--key", bob_key(), "--ds-key", ds_key()], &envelope));
    assert_eq!(out["message"], random["decryptedMessage"]);
    assert_eq!(out["deliveryInformation"], random["decryptedDeliveryInformation"]);
}

#[test]
fn open_fails_checks_with_1_and_malformed_input_with_2() {
    let envelope = at("envelopes/repo_tag_1_7_1_format/encryptedEnvelop");
    let alice = str_at("users/alice/keys/encryptionKeyPair/privateKey");
    assert_eq!(dm3(&["open", "--key", alice], &envelope.to_string()).code, 1, "wrong key");
    let mut tampered = envelope.clone();
    tampered["metadata"]["messageHash"] = json!(format!("0x{}", "ab".repeat(32)));
    assert_eq!(dm3(&["open", "--key", bob_key()], &tampered.to_string()).code, 1, "hash mismatch");
    let mut broken = envelope.clone();
    let message: Value = serde_json::from_str(envelope["message"].as_str().unwrap()).unwrap();
    let mut ciphertext = message["ciphertext"].as_str().unwrap().to_owned();
    ciphertext.replace_range(10..14, if &ciphertext[10..14] == "AAAA" { "BBBB" } else { "AAAA" });
    broken["message"] = json!(json!({"ciphertext": ciphertext, "ephemPublicKey": message["ephemPublicKey"], "nonce": message["nonce"]}).to_string());
    assert_eq!(dm3(&["open", "--key", bob_key()], &broken.to_string()).code, 1, "tampered ciphertext");
    assert_eq!(dm3(&["open", "--key", bob_key()], "{").code, 2);
    assert_eq!(dm3(&["open", "--key", bob_key()], "{\"message\":1}").code, 2);
    assert_eq!(dm3(&["open"], "").code, 2, "usage");
    assert_eq!(dm3(&["frobnicate"], "").code, 2, "usage");
}

#[test]
fn what_seal_writes_the_reference_opens() {
    let message = at("messages/NEW/message").to_string();
    let bob_public = str_at("users/bob/keys/encryptionKeyPair/publicKey");
    let ds_public = str_at("deliveryService/keys/encryptionKeyPair/publicKey");
    let sender = str_at("users/alice/keys/signingKeyPair/privateKey");
    let run = dm3(
        &["seal", "--sender-key", sender, "--recipient-key", bob_public, "--ds-key", ds_public],
        &message,
    );
    let envelope = json_out(&run);
    let metadata = envelope["metadata"].as_object().unwrap();
    let mut keys: Vec<_> = metadata.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["deliveryInformation", "encryptionScheme", "messageHash", "signature", "version"]);
    let opened = with_oracle(|o| {
        o.must(
            "open",
            json!({
                "envelope": envelope,
                "receiverEncryptionKeyPair": at("users/bob/keys/encryptionKeyPair"),
                "dsEncryptionKeyPair": at("deliveryService/keys/encryptionKeyPair"),
            }),
        )
    });
    assert_eq!(&opened["message"], at("messages/NEW/message"));
    let verified = with_oracle(|o| {
        o.must(
            "verify_envelope_metadata",
            json!({"envelope": envelope, "senderPublicSigningKey": str_at("users/alice/keys/signingKeyPair/publicKey")}),
        )
    });
    assert_eq!(verified, json!(true));
    // And our own open reads it back.
    let out = json_out(&dm3(&["open", "--key", bob_key(), "--ds-key", ds_key()], &run.stdout));
    assert_eq!(&out["message"], at("messages/NEW/message"));
    // An unsigned message cannot be sealed.
    let mut unsigned: Value = serde_json::from_str(&message).unwrap();
    unsigned.as_object_mut().unwrap().remove("signature");
    let run = dm3(
        &["seal", "--sender-key", sender, "--recipient-key", bob_public, "--ds-key", ds_public],
        &unsigned.to_string(),
    );
    assert_eq!(run.code, 2);
}

#[test]
fn bridge_payload_encode_decode_validate_round_trip() {
    let event = json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html", "formatted_body": "<b>hi</b>"}});
    let attachment = json_out(&dm3(&["bridge-payload", "encode", "--network", "matrix"], &event.to_string()));
    assert_eq!(attachment["name"], "bridge-payload.json");
    let uri = attachment["data"].as_str().unwrap();
    assert!(uri.starts_with("data:application/vnd.dm3.bridge-payload+json;base64,"), "{uri}");
    let document =
        json!({"version": 1, "network": "matrix", "type": "m.room.message", "content": event["content"]});
    // decode reads the attachment object, its URI as a JSON string, or the bare URI.
    for input in [attachment.to_string(), json!(uri).to_string(), format!("{uri}\n")] {
        assert_eq!(json_out(&dm3(&["bridge-payload", "decode"], &input)), document, "{input}");
        assert_eq!(dm3(&["bridge-payload", "validate"], &input).stdout, "valid\n");
    }
    // What decode prints, encode takes back, from a file too.
    let path = std::env::temp_dir().join(format!("dm3-cli-bridge-payload-{}.json", std::process::id()));
    std::fs::write(&path, document.to_string()).unwrap();
    let again = json_out(&dm3(&["bridge-payload", "encode", path.to_str().unwrap()], ""));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(again, attachment);

    let call = json!({"method": "sendMessage", "parameters": {"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]}});
    let attachment =
        json_out(&dm3(&["bridge-payload", "encode", "--network", "telegram"], &call.to_string()));
    let decoded = json_out(&dm3(&["bridge-payload", "decode"], &attachment.to_string()));
    assert_eq!(
        decoded,
        json!({"version": 1, "network": "telegram", "method": "sendMessage", "parameters": call["parameters"]})
    );
}

#[test]
fn bridge_payload_refusals_exit_1_and_malformed_input_exits_2() {
    let reaction = json!({"type": "m.reaction", "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e", "key": "👍"}}}).to_string();
    let refused = dm3(&["bridge-payload", "encode", "--network", "matrix"], &reaction);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("m.reaction"), "{}", refused.stderr);
    // --unchecked writes it anyway (the reverse direction carries such content); validate then refuses it.
    let attachment = dm3(&["bridge-payload", "encode", "--network", "matrix", "--unchecked"], &reaction);
    let refused = dm3(&["bridge-payload", "validate"], &attachment.stdout);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("not allowed"), "{}", refused.stderr);
    let chat = json!({"method": "sendMessage", "parameters": {"text": "x", "chat_id": 5}}).to_string();
    let refused = dm3(&["bridge-payload", "encode", "--network", "telegram"], &chat);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("parameters.chat_id"), "{}", refused.stderr);

    let text = json!({"method": "sendMessage", "parameters": {"text": "x"}}).to_string();
    assert_eq!(dm3(&["bridge-payload", "encode"], &text).code, 2, "no --network");
    assert_eq!(dm3(&["bridge-payload", "encode", "--network", "irc"], &text).code, 2, "unknown network");
    assert_eq!(dm3(&["bridge-payload", "encode", "--network", "telegram", "--encrypted"], &text).code, 2);
    assert_eq!(dm3(&["bridge-payload", "encode", "--network", "telegram"], "[]").code, 2);
    assert_eq!(dm3(&["bridge-payload", "encode", "/nonexistent/payload.json"], "").code, 2);
    assert_eq!(dm3(&["bridge-payload", "decode"], "data:image/png;base64,iVBO").code, 2);
    assert_eq!(dm3(&["bridge-payload", "decode"], "{\"name\":\"x\"}").code, 2);
    assert_eq!(dm3(&["bridge-payload", "validate"], "42").code, 2);
}

#[test]
fn bridge_payload_find_reads_a_message() {
    let call = json!({"method": "sendMessage", "parameters": {"text": "hi"}}).to_string();
    let attachment = json_out(&dm3(&["bridge-payload", "encode", "--network", "telegram"], &call));
    let message = |attachments: Value| {
        json!({
            "message": "hi",
            "attachments": attachments,
            "metadata": {"to": "tg-1.bridge.eth", "from": "alice.eth", "timestamp": 1, "type": "NEW"},
        })
        .to_string()
    };
    let with_payload = message(json!([{"name": "a.png", "data": "data:image/png;base64,iVBO"}, attachment]));
    let found = json_out(&dm3(&["bridge-payload", "find", "--network", "telegram"], &with_payload));
    assert_eq!(
        found,
        json!({"version": 1, "network": "telegram", "method": "sendMessage", "parameters": {"text": "hi"}})
    );
    assert_eq!(dm3(&["bridge-payload", "find", "--network", "matrix"], &with_payload).stdout, "null\n");
    let twice = message(json!([attachment, attachment]));
    assert_eq!(dm3(&["bridge-payload", "find", "--network", "telegram"], &twice).code, 1);
    let broken = message(json!(["data:application/vnd.dm3.bridge-payload+json;base64,*"]));
    assert_eq!(dm3(&["bridge-payload", "find", "--network", "telegram"], &broken).code, 2);
    assert_eq!(dm3(&["bridge-payload", "find", "--network", "telegram"], "{}").code, 2);
}
