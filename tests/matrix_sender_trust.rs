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
#[macro_use]
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::time::Duration;

use dm3_bridge::store::JobState;
use dm3_bridge_matrix::{Encryption, SenderTrust};
use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, CrossSigning, MatrixUser as SdkUser, RoomEncryption};
use dm3_world::{ALICE, Dm3World};
use reqwest::StatusCode;
use serde_json::Value;
use support::TestDb;
use support::bridge::ADMIN_TOKEN;
use support::node::TestNode;
use synapse::{SERVER_NAME, Synapse, encode};

on_both_backends!(
    with_cross_signed_trust_only_bobs_verified_device_speaks_and_a_new_identity_waits_for_an_admin,
    with_listed_trust_a_device_bob_never_verified_still_speaks,
);

/// Long enough for a loaded CI machine; a wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(60);

/// The world, the bridge on `db` with `sender_trust`, and bob: his phone, which bootstrapped
/// his cross-signing identity (so it is signed by it), and a reader device for what the ghost
/// posts.
struct Trust {
    world: Dm3World,
    bridge: TestNode,
    synapse: Synapse,
    credentials: Credentials,
    bob: SdkUser,
    bob_reader: SdkUser,
    ghost: String,
}

async fn start(db: &TestDb, sender_trust: SenderTrust) -> Trust {
    let world = Dm3World::start(None).await;
    let (bridge, synapse) = bridged_matrix::start_bridge_with(&world, Some(db.url.clone()), |config| {
        let matrix = config.matrix.as_mut().unwrap();
        matrix.encryption = Encryption::On;
        matrix.sender_trust = sender_trust;
    })
    .await;
    world.point_parent_at(&bridge).await;
    let password = synapse.register_account("bob").await.unwrap();
    let credentials = Credentials { homeserver: synapse.url().to_owned(), user: "bob".to_owned(), password };
    let bob = credentials
        .login_with("bob's phone", CrossSigning::Bootstrap)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bob_reader = credentials.login("bob's reader").await.unwrap_or_else(|e| panic!("{e}"));
    let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
    Trust { world, bridge, synapse, credentials, bob, bob_reader, ghost }
}

impl Trust {
    /// bob's encrypted DM with alice's ghost, once his client saw the ghost join.
    async fn dm(&self) -> OwnedRoomId {
        let ghost = ids::user_id(&self.ghost).unwrap();
        let room = self.bob.create_dm(&ghost, RoomEncryption::Encrypted).await.unwrap();
        self.bob
            .sync_until(WAIT, "alice's ghost joins", || async {
                Ok(self.bob.joined_members(&room).await?.contains(&ghost).then_some(()))
            })
            .await
            .unwrap();
        room
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

    async fn bob_name(&self) -> String {
        bridged_matrix::identity_name(&self.bridge, &format!("@bob:{SERVER_NAME}")).await
    }

    /// Waits until alice holds `count` messages from bob: their texts, by bob's time.
    async fn alice_has(&self, bob_name: &str, count: usize) -> Vec<String> {
        let directory = self.world.directory();
        let mut received = self.world.alice.wait_for(&self.world.ds_b, &directory, bob_name, count).await;
        received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
        received.into_iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect()
    }

    /// The texts the ghost posted in `room` that contain `words`, waiting for `count`.
    async fn ghost_notices(&self, room: &OwnedRoomId, words: &str, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.bob_reader.sync_once().await.unwrap();
            let timeline = self.bob_reader.messages(room).await.unwrap();
            let notices: Vec<String> = timeline
                .iter()
                .filter(|e| e.sender.as_ref().is_some_and(|sender| sender.as_str() == self.ghost))
                .filter_map(|e| e.body())
                .filter(|body| body.contains(words))
                .map(str::to_owned)
                .collect();
            if notices.len() >= count {
                return notices;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} notices with {words:?} in {WAIT:?}\n{}",
                notices.len(),
                self.synapse.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The value of `series` on the bridge's `/metrics`, 0 if absent.
    async fn metric(&self, series: &str) -> f64 {
        let text = self.bridge.metrics(ADMIN_TOKEN).await;
        text.lines().find_map(|line| line.strip_prefix(series)).map_or(0.0, |v| v.trim().parse().unwrap())
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
    let room = world.dm().await;
    let bob_id = format!("@bob:{SERVER_NAME}");

    // His phone, signed by his identity: believed, and his master key pinned.
    world.bob.send_text(&room, "from my verified phone").await.unwrap();
    let bob_name = world.bob_name().await;
    assert_eq!(world.alice_has(&bob_name, 1).await, ["from my verified phone"]);

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
    assert_eq!(world.alice_has(&bob_name, 1).await.len(), 1, "a refused message crossed");

    // The admin accepts: the pin of his old key is dropped, his next message crosses and pins
    // the new one.
    let (status, old) = world.accept_identity(&bob_id, Some(ADMIN_TOKEN)).await;
    assert_eq!((status, old["userId"].as_str()), (StatusCode::OK, Some(bob_id.as_str())), "{old}");
    world.bob.send_text(&room, "accepted again").await.unwrap();
    assert_eq!(world.alice_has(&bob_name, 2).await, ["from my verified phone", "accepted again"]);
    let (status, new) = world.accept_identity(&bob_id, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{new}");
    assert_ne!(old["masterKey"], new["masterKey"], "the new identity was not pinned");
    world.settled_failing(3).await;
    world.bridge.node.shutdown().await.unwrap();
}

async fn with_listed_trust_a_device_bob_never_verified_still_speaks(db: &TestDb) {
    let world = start(db, SenderTrust::Listed).await;
    let room = world.dm().await;
    let laptop = world.unverified_device(&room).await;
    laptop.send_text(&room, "from a laptop bob never verified").await.unwrap();
    let bob_name = world.bob_name().await;
    assert_eq!(world.alice_has(&bob_name, 1).await, ["from a laptop bob never verified"]);
    world.bridge.node.shutdown().await.unwrap();
}
