//! `[matrix] sender_trust`: which of a Matrix user's devices their encrypted messages are
//! believed from, against a real Synapse with bob on matrix-sdk (`clients/matrix`, his own
//! cross-signing) and alice a DM3 user on a chain, on both backends:
//! - with `cross-signed`, bob's device that his cross-signing identity signed speaks for him; a
//!   second device of his that he never verified (a new login, as a stolen access token would
//!   make) is refused, he is told in the room, and nothing of it reaches alice;
//! - bob resets his cross-signing identity (a new master key): his messages are refused as an
//!   identity change, also after the bridge restarted (the pin is durable), until an admin drops
//!   the pin (`DELETE /admin/matrix/cross-signing/{userId}`, which refuses no token, a wrong
//!   token, a malformed or oversized user id, and answers 404 for a user with no pin); then his
//!   next message crosses and pins the new key;
//! - with `listed` (the default), the device he never verified still speaks for him.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridged_matrix.rs"]
mod bridged_matrix;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/encrypted_dm.rs"]
mod encrypted_dm;
#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::time::Duration;

use dm3_bridge::store::JobState;
use dm3_bridge_matrix::{Encryption, SenderTrust};
use dm3_matrix_client::ids::OwnedRoomId;
use dm3_matrix_client::{CrossSigning, MatrixUser as SdkUser, RoomEncryption};
use encrypted_dm::{EncryptedDm, WAIT};
use reqwest::StatusCode;
use serde_json::Value;
use support::TestDb;
use support::bridge::ADMIN_TOKEN;
use synapse::{SERVER_NAME, encode};

on_both_backends!(
    with_cross_signed_trust_only_bobs_verified_device_speaks_and_a_new_identity_waits_for_an_admin,
    with_listed_trust_a_device_bob_never_verified_still_speaks,
);

/// The scene with bob's phone cross-signed by his own identity (bootstrapped at its login).
type Trust = EncryptedDm;

async fn start(db: &TestDb, sender_trust: SenderTrust) -> Trust {
    EncryptedDm::start(db, CrossSigning::Bootstrap, |matrix| {
        matrix.encryption = Encryption::On;
        matrix.sender_trust = sender_trust;
    })
    .await
}

impl EncryptedDm {
    /// Waits until alice holds `count` messages from bob: their texts, by bob's time.
    async fn alice_texts(&self, bob_name: &str, count: usize) -> Vec<String> {
        let messages = self.alice_has(bob_name, count).await;
        messages.iter().map(|message| message.text().unwrap_or_default().to_owned()).collect()
    }

    /// A new login of bob's that he never verified: what a stolen access token makes.
    async fn unverified_device(&self, room: &OwnedRoomId) -> SdkUser {
        let laptop =
            self.credentials.login("bob's unverified laptop").await.unwrap_or_else(|e| panic!("{e}"));
        laptop
            .sync_until(WAIT, "the laptop knows the encrypted DM", || async {
                Ok(laptop.is_encrypted(room).await.ok().filter(|encrypted| *encrypted).map(|_| ()))
            })
            .await
            .unwrap();
        laptop
    }

    /// Waits until `failures` jobs failed (each refusal is one), and the bridge settled.
    async fn refused(&self, failures: u64) {
        let store = self.bridge.node.store();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let counts = store.count_jobs().await.unwrap();
            let failed: u64 = counts.iter().filter(|c| c.state == JobState::Failed).map(|c| c.count).sum();
            if failed >= failures {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{failed} of {failures} refusals in {WAIT:?}: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.settled_failing(failures).await;
    }

    /// `DELETE /admin/matrix/cross-signing/{user}` with `token`: the status and JSON body.
    async fn accept_identity(&self, user: &str, token: Option<&str>) -> (StatusCode, Value) {
        let url = self.bridge.url(&format!("/admin/matrix/cross-signing/{}", encode(user)));
        let mut request = self.bridge.client.delete(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the bridge settled with `failures` failed jobs (each refusal is one).
    async fn settled_failing(&self, failures: u64) {
        let log = || self.synapse.log_tail();
        support::bridge::settled_failing(self.bridge.node.store(), WAIT, failures, log).await;
    }
}

fn refusals(reason: &str) -> String {
    format!("dm3_matrix_sender_trust_refusals_total{{reason=\"{reason}\"}} ")
}

async fn with_cross_signed_trust_only_bobs_verified_device_speaks_and_a_new_identity_waits_for_an_admin(
    db: &TestDb,
) {
    let mut world = start(db, SenderTrust::CrossSigned).await;
    let room = world.dm(RoomEncryption::Encrypted).await;
    let bob_id = format!("@bob:{SERVER_NAME}");

    // His phone, signed by his identity: believed, and his master key pinned.
    world.bob.send_text(&room, "from my verified phone").await.unwrap();
    let bob_name = world.bob_name().await;
    assert_eq!(world.alice_texts(&bob_name, 1).await, ["from my verified phone"]);

    // A device he never verified: listed by the homeserver, refused by the bridge, he is told.
    let laptop = world.unverified_device(&room).await;
    laptop.send_text(&room, "from a laptop bob never verified").await.unwrap();
    let refused = world.ghost_notices(&room, "refused your encrypted message", 1).await;
    assert!(refused[0].contains("has not verified"), "{refused:?}");
    world.refused(1).await;
    // At least: the tests of the other backend, in the same process, count there too.
    assert!(world.metric(&refusals("not_cross_signed")).await >= 1.0);

    // bob resets his identity: a new master key, which the pin does not match.
    world.bob.reset_cross_signing(&world.credentials.password).await.unwrap();
    world.bob.send_text(&room, "after my reset").await.unwrap();
    let changed = world.ghost_notices(&room, "cross-signing identity changed", 1).await;
    assert!(changed[0].contains(&bob_id) && changed[0].contains("an admin must accept it"), "{changed:?}");
    world.refused(2).await;
    assert!(world.metric(&refusals("identity_changed")).await >= 1.0);

    // The pin survives a restart: still refused (the notice, the same words, is not repeated).
    let stopped = support::bridge::stop(world.bridge).await;
    world.bridge = stopped.start().await;
    world.bob.send_text(&room, "after my reset and the bridge's restart").await.unwrap();
    world.refused(3).await;

    // The admin route, attacked: no token, a wrong one, a malformed or oversized id, no pin.
    let (status, _) = world.accept_identity(&bob_id, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = world.accept_identity(&bob_id, Some("wrong-token-wrong-token-wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let oversized = format!("@{}:{SERVER_NAME}", "b".repeat(300));
    for bad in ["bob", "@bob", "bob:localhost", oversized.as_str()] {
        let (status, body) = world.accept_identity(bad, Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{bad:?}: {body}"
        );
    }
    let (status, body) = world.accept_identity(&format!("@nobody:{SERVER_NAME}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    assert_eq!(world.alice_texts(&bob_name, 1).await.len(), 1, "a refused message crossed");

    // The admin accepts: the pin of his old key is dropped, his next message crosses and pins
    // the new one.
    let (status, old) = world.accept_identity(&bob_id, Some(ADMIN_TOKEN)).await;
    assert_eq!((status, old["userId"].as_str()), (StatusCode::OK, Some(bob_id.as_str())), "{old}");
    world.bob.send_text(&room, "accepted again").await.unwrap();
    assert_eq!(world.alice_texts(&bob_name, 2).await, ["from my verified phone", "accepted again"]);
    let (status, new) = world.accept_identity(&bob_id, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{new}");
    assert_ne!(old["masterKey"], new["masterKey"], "the new identity was not pinned");
    world.settled_failing(3).await;
    world.bridge.node.shutdown().await.unwrap();
}

async fn with_listed_trust_a_device_bob_never_verified_still_speaks(db: &TestDb) {
    let world = start(db, SenderTrust::Listed).await;
    let room = world.dm(RoomEncryption::Encrypted).await;
    let laptop = world.unverified_device(&room).await;
    laptop.send_text(&room, "from a laptop bob never verified").await.unwrap();
    let bob_name = world.bob_name().await;
    assert_eq!(world.alice_texts(&bob_name, 1).await, ["from a laptop bob never verified"]);
    world.bridge.node.shutdown().await.unwrap();
}
