//! The reference client against the real node: the published `@dm3-org` 1.7.1 libraries
//! (`interop/ds-client.js`) register, log in, send in both envelope formats, fetch, decrypt,
//! verify postmarks and acknowledge, all over HTTP, exactly as the messenger does
//! (docs/protocol.md §9, §10). Every scenario runs on SQLite and on PostgreSQL.
//!
//! Users are made by the libraries (`createProfile` with a random wallet); the node knows
//! their names, addresses and profile records through a static resolver, as it would
//! through ENS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::BTreeSet;

use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use dm3_bridge::clock::now_ms;
use dm3_bridge::config::UnresolvedSenderPolicy;
use dm3_bridge::names::static_resolver::StaticResolver;
use serde_json::{Value, json};
use support::TestDb;
use support::js::JsProcess;
use support::js::user::{address, ens, name, profile};
use support::node::{TestNode, relay, start_relay};

on_both_backends!(
    reference_client_registers_logs_in_sends_fetches_and_acknowledges,
    bad_requests_get_their_error_and_change_nothing,
    nothing_submitted_is_lost_across_a_restart,
);

/// The client, the node, and three users: Bob receives, Alice sends, and a stranger whose
/// name the node cannot resolve.
struct World {
    js: JsProcess,
    node: TestNode,
    resolver: StaticResolver,
    bob: Value,
    alice: Value,
    stranger: Value,
}

async fn world(db: &TestDb, adjust: impl FnOnce(&mut dm3_bridge::config::Config)) -> World {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let mut user = async || js.call("new_user", json!({"deliveryServices": ["relay.example.eth"]})).await;
    let (bob, alice, stranger) = (user().await, user().await, user().await);
    let resolver = StaticResolver::new().with_user(ens(&bob), address(&bob), &profile(&bob)).with_user(
        ens(&alice),
        address(&alice),
        &profile(&alice),
    );
    let node = start_relay(db.url.clone(), resolver.clone(), adjust).await;
    World { js, node, resolver, bob, alice, stranger }
}

fn signing_key(user: &Value) -> &Value {
    &user["keys"]["signing"]["privateKey"]
}

impl World {
    fn url(&self) -> String {
        self.node.base.clone()
    }

    /// `POST /profile/:name` with the library's signed profile; the session token.
    async fn register(&mut self, user: &Value) -> String {
        let args =
            json!({"url": self.url(), "ensName": name(user), "signedUserProfile": user["signedUserProfile"]});
        let answer = self.js.call("register", args).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// `GET /auth` → sign → `POST /auth`; the raw answer.
    async fn login_with(&mut self, user: &Value, key: &Value, replay: bool) -> Value {
        let args =
            json!({"url": self.url(), "ensName": name(user), "signingPrivateKey": key, "replay": replay});
        self.js.call("login", args).await
    }

    async fn login(&mut self, user: &Value) -> String {
        let answer = self.login_with(user, &signing_key(user).clone(), false).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Builds an envelope from `from` to `to` with the libraries and submits it as the
    /// messenger does; `extra` adds `format`, `tamper`, `metadataSigningPrivateKey`.
    async fn submit(&mut self, from: &Value, to: &Value, text: &str, extra: Value) -> Value {
        let mut args = json!({
            "url": self.url(),
            "from": {"ensName": name(from), "signingPrivateKey": signing_key(from)},
            "to": {"ensName": name(to), "publicEncryptionKey": to["keys"]["encryption"]["publicKey"]},
            "dsPublicEncryptionKey": self.node.encryption_public_key(),
            "text": text,
        });
        if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
            args.extend(extra);
        }
        self.js.call("submit", args).await
    }

    /// `GET /delivery/messages/incoming/:name`, each envelope opened by the libraries.
    async fn incoming(&mut self, user: &Value, token: &str) -> Value {
        let args = json!({
            "url": self.url(),
            "ensName": name(user),
            "token": token,
            "encryptionKeyPair": user["keys"]["encryption"],
            "dsPublicSigningKey": self.node.signing_public_key(),
            "senderSigningKeys": {name(&self.alice): self.alice["keys"]["signing"]["publicKey"]},
        });
        self.js.call("incoming", args).await
    }

    async fn ack(&mut self, user: &Value, token: &str, acknowledgements: Value) -> Value {
        let args = json!({"url": self.url(), "ensName": name(user), "token": token, "acknowledgements": acknowledgements});
        self.js.call("ack", args).await
    }

    async fn stored(&self) -> u64 {
        self.node.node.store().count_envelopes().await.unwrap()
    }

    /// Acknowledges everything listed and checks that the list is then empty.
    async fn acknowledge_all(&mut self, user: &Value, token: &str, listed: &Value) {
        let acks: Vec<Value> = listed["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!({"contactAddress": e["from"], "messageHash": e["ackHash"]}))
            .collect();
        let answer = self.ack(user, token, json!(acks)).await;
        assert_eq!(answer["status"], 200, "{answer}");
        let after = self.incoming(user, token).await;
        assert_eq!(after["envelopes"], json!([]), "acknowledged envelopes are gone");
        assert_eq!(self.stored().await, 0);
    }
}

/// The JSON-RPC error code of an error answer.
fn code(answer: &Value) -> i64 {
    answer["body"]["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error code in {answer}"))
}

fn message(answer: &Value) -> &str {
    answer["body"]["error"]["message"].as_str().unwrap_or_default()
}

/// Checks one opened envelope: text, sender, the hash a client acknowledges by, a postmark
/// that opens and verifies against the node's key, and the sender's message signature.
fn check_opened(opened: &Value, sent: &Value, from: &Value, to: &Value, before_ms: i64) {
    assert_eq!(opened["text"], sent["message"]["message"]);
    assert_eq!(opened["from"], name(from));
    assert_eq!(opened["messageHash"], sent["messageHash"]);
    let expected_ack = match opened["format"].as_str().unwrap() {
        "current" => sent["messageHash"].clone(),
        _ => sent["envelope"]["metadata"]["encryptedMessageHash"].clone(),
    };
    assert_eq!(opened["ackHash"], expected_ack);
    assert_eq!(opened["deliveryInformation"], json!({"to": name(to), "from": name(from)}), "P9 stored form");
    assert_eq!(opened["postmarkValid"], true, "postmark signed by the node: {opened}");
    assert_eq!(opened["messageSignatureValid"], true);
    let stamped = opened["postmark"]["incommingTimestamp"].as_i64().unwrap();
    assert!((before_ms..=now_ms()).contains(&stamped), "incommingTimestamp is the receive time in ms");
}

async fn reference_client_registers_logs_in_sends_fetches_and_acknowledges(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let (bob, alice) = (w.bob.clone(), w.alice.clone());
    let registered = w.register(&bob).await;
    assert_eq!(registered.len(), 43, "an opaque base64url token");

    // The challenge flow, and a replayed answer gets nothing.
    let answer = w.login_with(&bob, &signing_key(&bob).clone(), true).await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["replayStatus"], 400, "a challenge is single use");
    let token = answer["token"].as_str().unwrap().to_owned();
    assert_ne!(token, registered);

    let extension = w
        .js
        .call("rpc", json!({"url": w.url(), "method": "dm3_getProfileExtension", "params": [name(&bob)]}))
        .await;
    assert_eq!(extension["status"], 200);
    let extension: Value = serde_json::from_str(extension["body"]["result"].as_str().unwrap()).unwrap();
    assert_eq!(extension, json!({"notSupportedMessageTypes": ["NEW"]}), "the SDK default (P20)");

    let before = now_ms();
    let current = w.submit(&alice, &bob, "hello in the current format", json!({"format": "current"})).await;
    assert_eq!((&current["status"], &current["body"]), (&json!(200), &json!("OK")), "{current}");
    let npm = w.submit(&alice, &bob, "hello in the npm format", json!({"format": "npm"})).await;
    assert_eq!(npm["status"], 200, "{npm}");

    // A replay (same text, and params[0] as an object) is accepted and stored once.
    for as_object in [false, true] {
        let again =
            w.js.call(
                "post_envelope",
                json!({"url": w.url(), "envelope": current["envelope"], "asObject": as_object}),
            )
            .await;
        assert_eq!(again["status"], 200, "{again}");
    }
    assert_eq!(w.stored().await, 2);

    // Both login paths give a working token.
    let listed = w.incoming(&bob, &registered).await;
    assert_eq!(listed["status"], 200, "{listed}");
    let listed = w.incoming(&bob, &token).await;
    let envelopes = listed["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 2, "{listed}");
    let formats: BTreeSet<&str> = envelopes.iter().map(|e| e["format"].as_str().unwrap()).collect();
    assert_eq!(formats, BTreeSet::from(["current", "npm"]));
    for opened in envelopes {
        let sent = if opened["format"] == "current" { &current } else { &npm };
        check_opened(opened, sent, &alice, &bob, before);
    }
    w.acknowledge_all(&bob, &token, &listed).await;
    w.node.node.shutdown().await.unwrap();
}

async fn bad_requests_get_their_error_and_change_nothing(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let (bob, alice, stranger) = (w.bob.clone(), w.alice.clone(), w.stranger.clone());
    let token = w.register(&bob).await;
    let alice_token = w.register(&alice).await;
    let kept = w.submit(&alice, &bob, "the one that is kept", json!({})).await;
    assert_eq!(kept["status"], 200, "{kept}");
    assert_eq!(w.stored().await, 1);

    let mut refused = Vec::new();
    for (what, extra, status, code_) in [
        ("tampered delivery information", json!({"tamper": "deliveryInformation"}), 400, -32000),
        ("tampered signed metadata", json!({"tamper": "messageHash"}), 400, -32003),
        ("tampered npm ciphertext", json!({"format": "npm", "tamper": "message"}), 400, -32000),
        (
            "metadata signed by another key",
            json!({"metadataSigningPrivateKey": signing_key(&stranger)}),
            400,
            -32003,
        ),
    ] {
        let answer = w.submit(&alice, &bob, what, extra).await;
        assert_eq!((answer["status"].as_i64().unwrap(), code(&answer)), (status, code_), "{what}: {answer}");
        refused.push(answer);
    }
    assert!(message(&refused[3]).starts_with("bad signature"), "{}", message(&refused[3]));

    // Over size_limit once parsed, and over the raw body limit before any parsing.
    let oversized = w.submit(&alice, &bob, &"x".repeat(120_000), json!({})).await;
    assert_eq!((oversized["status"].as_i64().unwrap(), code(&oversized)), (413, -32011), "{oversized}");
    assert_eq!(message(&oversized), "Message is too large");
    let huge =
        format!(r#"{{"jsonrpc":"2.0","method":"dm3_submitMessage","params":["{}"]}}"#, "x".repeat(400_000));
    let answer = w.js.call("post_raw", json!({"url": w.url(), "path": "/rpc", "body": huge})).await;
    assert_eq!((answer["status"].as_i64().unwrap(), code(&answer)), (413, -32011), "raw limit");

    let unknown_receiver = w.submit(&alice, &stranger, "to nobody here", json!({})).await;
    assert_eq!((unknown_receiver["status"].as_i64().unwrap(), code(&unknown_receiver)), (400, -32001));
    assert_eq!(message(&unknown_receiver), "unknown account");
    let unresolved_sender = w.submit(&stranger, &bob, "from nowhere", json!({})).await;
    assert_eq!((unresolved_sender["status"].as_i64().unwrap(), code(&unresolved_sender)), (400, -32003));
    assert!(message(&unresolved_sender).starts_with("unknown sender"), "{unresolved_sender}");

    for (path, body, code_) in [
        ("/rpc", r#"{"jsonrpc":"2.0","method":"dm3_submitMessage","params":["#, -32700),
        ("/rpc", r#"{"jsonrpc":"2.0","method":"dm3_submitMessage","params":["{not json"]}"#, -32602),
        ("/rpc", r#"{"jsonrpc":"2.0","method":"dm3_submitMessage","params":[]}"#, -32602),
        ("/rpc", r#"{"jsonrpc":"2.0","method":"dm3_submitMessage","params":["{\"message\":1}"]}"#, -32602),
        (&format!("/profile/{}", name(&bob)), "{", -32700),
        (&format!("/auth/{}", name(&bob)), r#"{"signature":"x"}"#, -32602),
    ] {
        let answer = w.js.call("post_raw", json!({"url": w.url(), "path": path, "body": body})).await;
        assert_eq!(
            (answer["status"].as_i64().unwrap(), code(&answer)),
            (400, code_),
            "{path} {body}: {answer}"
        );
    }

    // Wrong tokens: garbage, another account's, none at all for acknowledging.
    let forged = "A".repeat(43);
    for bad in [forged.as_str(), alice_token.as_str(), "not-a-token"] {
        let answer = w.incoming(&bob, bad).await;
        assert_eq!((answer["status"].as_i64().unwrap(), code(&answer)), (401, -32003), "{answer}");
        let acks = json!([{"contactAddress": name(&alice), "messageHash": kept["messageHash"]}]);
        assert_eq!(w.ack(&bob, bad, acks).await["status"], 401);
    }

    // Logins that must fail: a challenge signed with the wrong key, a profile that is not
    // signed by the name's address, a name that does not resolve.
    let wrong_key = w.login_with(&bob, &signing_key(&alice).clone(), false).await;
    assert_eq!(
        (wrong_key["status"].as_i64().unwrap(), wrong_key["body"]["error"]["code"].as_i64()),
        (400, Some(-32003))
    );
    assert_eq!(wrong_key["body"]["error"]["message"], "Signature invalid", "the reference's words (§9.2)");
    let foreign_profile =
        json!({"url": w.url(), "ensName": name(&bob), "signedUserProfile": alice["signedUserProfile"]});
    let answer = w.js.call("register", foreign_profile).await;
    assert_eq!((answer["status"].as_i64().unwrap(), code(&answer)), (400, -32003), "{answer}");
    let unresolvable = json!({"url": w.url(), "ensName": name(&stranger), "signedUserProfile": stranger["signedUserProfile"]});
    let answer = w.js.call("register", unresolvable).await;
    assert_eq!((answer["status"].as_i64().unwrap(), code(&answer)), (400, -32001), "{answer}");
    let no_account = w.login_with(&stranger, &signing_key(&stranger).clone(), false).await;
    assert_eq!(no_account["status"], 404);

    // Nothing of it changed what is stored: Bob still has exactly the one envelope.
    assert_eq!(w.stored().await, 1);
    let listed = w.incoming(&bob, &token).await;
    let envelopes = listed["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 1, "{listed}");
    assert_eq!(envelopes[0]["text"], "the one that is kept");
    // And the first profile is still Bob's own.
    let stored = w
        .node
        .node
        .store()
        .get_account(&EnsName::from_normalized(name(&bob)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(SignedUserProfile::parse(&stored.profile).unwrap(), profile(&bob));
    w.node.node.shutdown().await.unwrap();
}

async fn nothing_submitted_is_lost_across_a_restart(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let (bob, alice) = (w.bob.clone(), w.alice.clone());
    let token = w.register(&bob).await;
    let before = now_ms();
    let current = w.submit(&alice, &bob, "before the restart", json!({"format": "current"})).await;
    let npm = w.submit(&alice, &bob, "before the restart, npm", json!({"format": "npm"})).await;
    assert_eq!((&current["status"], &npm["status"]), (&json!(200), &json!(200)));

    w.node = w.node.restart(relay(w.resolver.clone())).await;

    // The session survived too: tokens live in the database.
    let listed = w.incoming(&bob, &token).await;
    let envelopes = listed["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 2, "{listed}");
    for opened in envelopes {
        let sent = if opened["format"] == "current" { &current } else { &npm };
        check_opened(opened, sent, &alice, &bob, before);
    }
    let fresh = w.login(&bob).await;
    w.acknowledge_all(&bob, &fresh, &listed).await;
    w.node.node.shutdown().await.unwrap();
}

/// With `relay.unresolved_sender = "accept"` an unauthenticated sender's envelope is stored
/// (and postmarked) like any other; the metrics count it as unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_policy_stores_envelopes_of_unresolved_senders() {
    let db = TestDb::sqlite();
    let mut w = world(&db, |c| {
        c.relay.unresolved_sender = UnresolvedSenderPolicy::Accept;
        c.admin.public_metrics = true;
    })
    .await;
    let (bob, stranger) = (w.bob.clone(), w.stranger.clone());
    let token = w.register(&bob).await;
    let answer = w.submit(&stranger, &bob, "unverified but welcome", json!({})).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let listed = w.incoming(&bob, &token).await;
    assert_eq!(listed["envelopes"][0]["text"], "unverified but welcome");
    assert_eq!(listed["envelopes"][0]["postmarkValid"], true);
    // A resolvable sender with a bad signature is still refused.
    let alice = w.alice.clone();
    let forged =
        w.submit(&alice, &bob, "forged", json!({"metadataSigningPrivateKey": signing_key(&stranger)})).await;
    assert_eq!(forged["status"], 400);
    let metrics = w.node.client.get(w.node.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"dm3_envelopes_accepted_total{sender="unverified"}"#), "{metrics}");
    assert!(metrics.contains(r#"dm3_envelopes_rejected_total{reason="bad_signature"}"#), "{metrics}");
    w.node.node.shutdown().await.unwrap();
}
