//! The scene of the tests of encrypted DMs from the Matrix side (`matrix_encrypted_inbound`,
//! `matrix_sender_trust`): a node bridging a real Synapse, alice a DM3 user on a chain, and bob
//! on matrix-sdk (`clients/matrix`: his own Olm/Megolm, nothing of the bridge's code) with a
//! second device that only reads what the ghost posts.
//!
//! The including test declares the `anvil`, `bridged_matrix`, `dm3_world`, `support` and
//! `synapse` modules.

use std::time::Duration;

use dm3_bridge_matrix::MatrixConfig;
use dm3_matrix_client::ids::{self, OwnedRoomId};
use dm3_matrix_client::{Credentials, CrossSigning, MatrixUser as SdkUser, RoomEncryption};

use crate::bridged_matrix;
use crate::dm3_world::{ALICE, Dm3World};
use crate::support::TestDb;
use crate::support::bridge::ADMIN_TOKEN;
use crate::support::node::TestNode;
use crate::synapse::{SERVER_NAME, Synapse};

/// Long enough for a loaded CI machine; a wait ends as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct EncryptedDm {
    pub world: Dm3World,
    pub bridge: TestNode,
    pub synapse: Synapse,
    pub credentials: Credentials,
    /// bob's phone, his cross-signing bootstrapped on it or not as the test asked.
    pub bob: SdkUser,
    /// Another device of bob's, only for reading what the ghost posts: the ghost encrypts for
    /// it too, and it never answers a key request for bob's messages (it did not make their
    /// sessions), so reading never helps a key that must stay lost.
    pub bob_reader: SdkUser,
    /// alice's ghost's user id.
    pub ghost: String,
}

impl EncryptedDm {
    /// The world, the bridge on `db` with its `[matrix]` section adjusted, and bob, whose phone
    /// logs in with `cross_signing`.
    pub async fn start(
        db: &TestDb,
        cross_signing: CrossSigning,
        adjust: impl FnOnce(&mut MatrixConfig),
    ) -> Self {
        let world = Dm3World::start(None).await;
        let (bridge, synapse) = bridged_matrix::start_bridge_with(&world, Some(db.url.clone()), |config| {
            adjust(config.matrix.as_mut().unwrap());
        })
        .await;
        world.point_parent_at(&bridge).await;
        let password = synapse.register_account("bob").await.unwrap();
        let credentials =
            Credentials { homeserver: synapse.url().to_owned(), user: "bob".to_owned(), password };
        let bob =
            credentials.login_with("bob's phone", cross_signing).await.unwrap_or_else(|e| panic!("{e}"));
        let bob_reader = credentials.login("bob's reader").await.unwrap_or_else(|e| panic!("{e}"));
        let ghost = format!("@_dm3_{ALICE}:{SERVER_NAME}");
        Self { world, bridge, synapse, credentials, bob, bob_reader, ghost }
    }

    /// bob's DM with alice's ghost, once his client saw the ghost join.
    pub async fn dm(&self, encryption: RoomEncryption) -> OwnedRoomId {
        let ghost = ids::user_id(&self.ghost).unwrap();
        let room = self.bob.create_dm(&ghost, encryption).await.unwrap();
        self.bob
            .sync_until(WAIT, "alice's ghost joins", || async {
                Ok(self.bob.joined_members(&room).await?.contains(&ghost).then_some(()))
            })
            .await
            .unwrap();
        room
    }

    /// bob's DM3 name, once the bridge made it.
    pub async fn bob_name(&self) -> String {
        bridged_matrix::identity_name(&self.bridge, &format!("@bob:{SERVER_NAME}")).await
    }

    /// Waits until alice holds `count` messages from bob; all of them, by bob's time.
    pub async fn alice_has(&self, bob_name: &str, count: usize) -> Vec<dm3::message::Message> {
        let directory = self.world.directory();
        let mut received = self.world.alice.wait_for(&self.world.ds_b, &directory, bob_name, count).await;
        received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
        received.into_iter().map(|r| r.message).collect()
    }

    /// The texts of what the ghost posted in `room` that contain `words` (encrypted or not, as
    /// a client of bob's shows them), waiting for `count`.
    pub async fn ghost_notices(&self, room: &OwnedRoomId, words: &str, count: usize) -> Vec<String> {
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
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.bridge.metrics(ADMIN_TOKEN).await;
        text.lines().find_map(|line| line.strip_prefix(series)).map_or(0.0, |v| v.trim().parse().unwrap())
    }
}
