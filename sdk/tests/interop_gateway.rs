//! Gateway mode's promise, with the reference libraries on both ends: an envelope sealed by
//! `@dm3-org/dm3-lib-messaging` crosses `dm3 gateway wrap` → a network (Matrix content
//! re-serialized as a homeserver does; a Telegram document's file) → `dm3 gateway unwrap` and
//! comes out as the very text the libraries wrote, which they then open and verify
//! (docs/gateway.md section 1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::cli::{dm3, json_out};
use support::oracle::with_oracle;

const DS: &str = "ds.bridge.example.eth";

/// An envelope from a random user to another, as `JSON.stringify` puts it on the wire, and
/// what the receiver needs to check it: the reference's users.
fn reference_envelope(format: &str) -> (String, Value, Value) {
    with_oracle(|o| {
        let alice = o.must("random_user", json!({}));
        let bob = o.must("random_user", json!({}));
        let ds = o.must("random_user", json!({}));
        let message = o.must(
            "create_message",
            json!({
                "type": "NEW", "to": bob["ensName"], "from": alice["ensName"],
                "text": "grüße 👋 \"q\" \\ \u{2028} line\nbreak",
                "signingPrivateKey": alice["keys"]["signing"]["privateKey"],
            }),
        );
        let text = o.must(
            "seal",
            json!({
                "message": message["message"], "format": format, "asText": true,
                "senderSigningPrivateKey": alice["keys"]["signing"]["privateKey"],
                "recipientPublicEncryptionKey": bob["keys"]["encryption"]["publicKey"],
                "dsPublicEncryptionKey": ds["keys"]["encryption"]["publicKey"],
            }),
        );
        (text.as_str().unwrap().to_owned(), alice, bob)
    })
}

/// What the receiving side gets from the network, and `dm3 gateway unwrap` of it.
fn unwrap(network: &str, carried: &str) -> String {
    let run = dm3(&["gateway", "unwrap", "--network", network], carried);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.strip_suffix('\n').unwrap().to_owned()
}

#[test]
fn reference_envelopes_cross_both_networks_byte_exact() {
    for format in ["current", "npm"] {
        let (text, alice, bob) = reference_envelope(format);
        let wrap = |network| {
            json_out(&dm3(&["gateway", "wrap", "--network", network, "--delivery-service", DS], &text))
        };

        // A homeserver stores the content and serves it re-serialized, keys in its own order.
        let content = wrap("matrix");
        assert_eq!(content["msgtype"], "network.dm3.envelope");
        let from_matrix = unwrap("matrix", &serde_json::to_string_pretty(&content).unwrap());
        assert_eq!(from_matrix, text, "{format}: Matrix changed the envelope");

        let document = wrap("telegram");
        assert_eq!(document["fileName"], "dm3-envelope.json");
        let from_telegram = unwrap("telegram", document["file"].as_str().unwrap());
        assert_eq!(from_telegram, text, "{format}: Telegram changed the envelope");

        with_oracle(|o| {
            let opened = o.must(
                "open",
                json!({"envelope": from_telegram, "receiverEncryptionKeyPair": bob["keys"]["encryption"]}),
            );
            assert_eq!(opened["message"]["message"], "grüße 👋 \"q\" \\ \u{2028} line\nbreak");
            let verified = o.must(
                "verify_envelope_metadata",
                json!({"envelope": from_matrix, "senderPublicSigningKey": alice["keys"]["signing"]["publicKey"]}),
            );
            assert_eq!(verified, json!(true), "{format}: the sender's signature no longer verifies");
        });
    }
}

#[test]
fn what_no_gateway_can_carry_is_refused_with_the_reason() {
    let (text, _, _) = reference_envelope("current");
    let refused = |args: &[&str], stdin: &str, says: &str| {
        let run = dm3(args, stdin);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    };
    let wrap = ["gateway", "wrap", "--network", "matrix", "--delivery-service", DS];
    refused(&wrap, "{\"message\": 1}", "not an envelope");
    refused(
        &["gateway", "wrap", "--network", "matrix", "--delivery-service", "a..b"],
        &text,
        "--delivery-service",
    );
    let mut stored: Value = serde_json::from_str(&text).unwrap();
    stored["metadata"]["deliveryInformation"] = json!({"to": "bob.eth", "from": "alice.eth"});
    refused(&wrap, &stored.to_string(), "stored form");
    let mut large: Value = serde_json::from_str(&text).unwrap();
    large["padding"] = json!("x".repeat(48 * 1024));
    refused(&wrap, &large.to_string(), "more than the 49152");

    let content = json_out(&dm3(&wrap, &text));
    let mut newer = content.clone();
    newer["network.dm3.envelope"]["version"] = json!(2);
    refused(
        &["gateway", "unwrap", "--network", "matrix"],
        &newer.to_string(),
        "unsupported gateway document version 2",
    );
    let mut plain = content;
    plain["msgtype"] = json!("m.text");
    refused(&["gateway", "unwrap", "--network", "matrix"], &plain.to_string(), "msgtype");
    refused(&["gateway", "unwrap", "--network", "telegram"], &text, "field `version`");
    refused(&["gateway", "unwrap", "--network", "irc"], "{}", "irc");
}

#[test]
fn unwrap_json_names_the_delivery_service() {
    let (text, _, _) = reference_envelope("current");
    let content = json_out(&dm3(
        &["gateway", "wrap", "--network", "matrix", "--delivery-service", "DS.Bridge.Example.ETH"],
        &text,
    ));
    let out = json_out(&dm3(&["gateway", "unwrap", "--network", "matrix", "--json"], &content.to_string()));
    assert_eq!(out, json!({"deliveryService": DS, "envelope": text}));
}
