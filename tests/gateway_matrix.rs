//! Gateway mode on Matrix, end to end (docs/gateway.md sections 3 and 5): the bridge node on a
//! real Synapse, a chain with our ENS contracts and a DM3 user whose client is the SDK, as in
//! `tests/bridge_matrix.rs`. The Matrix user is driven through the client-server API.
//!
//! Bob claims his name with `!dm3 claim` in his portal with alice's ghost; from then on alice's
//! messages reach the room as `network.dm3.envelope` events from her ghost (a client without
//! DM3 support shows the fallback `body`), which bob's keys open, and bob's client sends its
//! own sealed envelopes to alice the same way. A forged envelope and a message in the clear are
//! refused in the room. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use bridged_matrix::{Bridged, bridged, wait_for_event};
use dm3::crypto::eth::Wallet;
use dm3::crypto::signing::SigningKeyPair;
use dm3::gateway_envelope::{FALLBACK_TEXT, MatrixGatewayContent};
use dm3::message::MessageBuilder;
use dm3_world::{ALICE, BRIDGE_NODE_NAME, DS_B};
use serde_json::Value;
use support::TestDb;
use support::claims::{claim_json, gateway_keys, sealed_document};

on_both_backends!(a_matrix_user_claims_their_name_and_envelopes_cross_sealed_both_ways);

impl Bridged {
    /// Bob writes `text` in the portal; the body of the ghost's next notice that says `says`.
    async fn told(&self, txn: &str, text: &str, says: &str) -> String {
        self.bob.send_text(&self.room, txn, text).await.unwrap();
        let notice = wait_for_event(&self.synapse, &self.bob, &self.room, |event| {
            event["sender"] == self.ghost.as_str()
                && event["content"]["msgtype"] == "m.notice"
                && event["content"]["body"].as_str().is_some_and(|body| body.contains(says))
        })
        .await;
        notice["content"]["body"].as_str().unwrap().to_owned()
    }

    /// Bob's client sends `content` (a gateway message) in the portal.
    async fn send_content(&self, txn: &str, content: Value) {
        let path =
            format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", synapse::encode(&self.room));
        self.bob.call(reqwest::Method::PUT, &path, Some(content)).await.unwrap();
    }
}

async fn a_matrix_user_claims_their_name_and_envelopes_cross_sealed_both_ways(db: &TestDb) {
    let b = bridged(Some(db.url.clone())).await;
    let bob_name = b.bob_name.clone();

    // The claim, in the portal: the challenge names bob's own account.
    let answer = b.told("c1", "!dm3 claim", "dm3-bridge claim").await;
    let challenge = answer[answer.find("dm3-bridge claim").unwrap()..].trim_end().to_owned();
    assert!(challenge.contains(&format!("account: matrix:{}\n", b.bob.user_id)), "{challenge}");
    let wallet = Wallet::generate();
    let claim = claim_json(&challenge, &wallet, &wallet, BRIDGE_NODE_NAME);
    let done = b.told("c2", &format!("!dm3 claim {claim}"), "now holds its own keys").await;
    assert!(done.starts_with(&format!("Done: {bob_name} now holds its own keys")), "{done}");
    let replayed = b.told("c3", &format!("!dm3 claim {claim}"), "Your claim was refused").await;
    assert!(replayed.contains("expired or was used"), "{replayed}");
    let keys = gateway_keys(&wallet);

    // DM3 → Matrix: alice's client resolves bob's new profile and seals to his keys; the ghost
    // posts the gateway message, whose body is all a client without DM3 support shows.
    let fresh = b.world.directory();
    let secret = "for bob's own client only";
    let sent = b.world.alice.send(&fresh, b.world.alice.builder(&bob_name).text(secret, None)).await;
    let event = wait_for_event(&b.synapse, &b.bob, &b.room, |event| {
        event["sender"] == b.ghost.as_str() && event["content"]["msgtype"] == "network.dm3.envelope"
    })
    .await;
    assert_eq!(event["content"]["body"], FALLBACK_TEXT);
    let content = MatrixGatewayContent::decode(&event["content"]).unwrap();
    assert_eq!(content.envelope().delivery_service().as_str(), BRIDGE_NODE_NAME);
    let opened = content.envelope().envelope().open(&keys.encryption).unwrap();
    assert_eq!((opened.message.text(), opened.message_hash), (Some(secret), sent));

    // Matrix → DM3: bob's client seals for alice's delivery service and posts the message.
    let alice_key = b.world.alice.keys.encryption.public();
    let ds_b = (DS_B, b.world.ds_b.encryption_public_key());
    let builder = MessageBuilder::now(ALICE, bob_name.clone());
    let document = sealed_document(
        builder.text("sealed by bob's client", None),
        &keys.signing,
        alice_key,
        (DS_B, &ds_b.1),
    );
    b.send_content("s1", MatrixGatewayContent::encode(document).unwrap().to_content()).await;
    let received = b.world.alice.wait_for(&b.world.ds_b, &fresh, &bob_name, 1).await;
    assert_eq!(received[0].message.text(), Some("sealed by bob's client"));

    // Signed by someone else's key: refused in the room. In the clear: refused, with the way.
    let stranger = SigningKeyPair::generate();
    let forged = sealed_document(builder.text("forged", None), &stranger, alice_key, (DS_B, &ds_b.1));
    b.send_content("s2", MatrixGatewayContent::encode(forged).unwrap().to_content()).await;
    wait_for_event(&b.synapse, &b.bob, &b.room, |event| {
        event["content"]["body"].as_str().is_some_and(|body| body.contains("is not signed with the key of"))
    })
    .await;
    b.told("t1", "hello in the clear", "your DM3 client must seal the message").await;

    // The node holds no key of bob's identity, and no plaintext of what crossed after the claim.
    let store = b.bridge.node.store();
    assert!(store.identity_keys(&bob_name.parse().unwrap()).await.unwrap().is_empty());
    let database = db.all_text().await;
    for plaintext in [secret, "sealed by bob's client"] {
        assert!(!database.contains(plaintext), "the database holds {plaintext:?}");
    }
    let received = b.world.alice.wait_for(&b.world.ds_b, &fresh, &bob_name, 1).await;
    assert_eq!(received.len(), 1, "the forgery reached nobody");
    b.bridge.node.shutdown().await.unwrap();
}
