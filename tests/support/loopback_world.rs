//! A node whose virtual identities stand for loopback users (`[loopback]`,
//! `connectors/loopback`), and alice.eth, a DM3 user with an account on it: the world of
//! `tests/engine_loopback.rs` and `tests/admin_console.rs`. Included with `#[path]` beside
//! `support`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dm3::ens::EnsName;
use dm3::message::MessageBuilder;
use dm3::text_record::ProfileRecord;
use dm3_bridge::bridges::loopback::LoopbackNetwork;
use dm3_bridge::clock::now_ms;
use dm3_bridge::config::{Config, NamesConfig, StaticNameConfig};
use dm3_bridge::delivery::Relay;
use dm3_bridge::engine::dm3::deliver::{DeliveryReport, HttpDeliveryTarget, HttpTargetOptions, deliver};
use dm3_bridge::engine::dm3::open::{OpenedMessage, open_inbound};
use dm3_bridge::identities::keys::IdentityKeys;
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::names::directory::Directory;
use dm3_bridge_loopback::{LoopbackConfig, LoopbackConnector, Record};
use serde_json::Value;

use crate::support::TestDb;
use crate::support::node::{TestNode, start_node};

pub const NODE: &str = "relay.example.eth";
pub const PARENT: &str = "bridge.example.eth";
pub const ALICE: &str = "alice.eth";

/// The node with `[loopback]`, and alice with an account on it.
pub struct World {
    pub node: TestNode,
    pub alice: IdentityKeys,
    pub token: String,
    /// Names as the node sees them: its own identities first, then alice.
    pub directory: Directory,
}

impl World {
    pub async fn start(db: &TestDb, echo: bool) -> World {
        Self::start_with(db, echo, |_| {}).await
    }

    /// [`World::start`], `adjust` changing the node's config last.
    pub async fn start_with(db: &TestDb, echo: bool, adjust: impl FnOnce(&mut Config)) -> World {
        let alice = IdentityKeys::generate(1);
        let profile = alice.signed_profile(&NODE.parse().unwrap());
        let names = NamesConfig {
            static_names: vec![StaticNameConfig {
                name: ALICE.to_owned(),
                address: Some(format!("{:#x}", alice.address())),
                profile: Some(ProfileRecord::inline(&profile.to_value())),
                delivery_service: None,
            }],
            ..NamesConfig::default()
        };
        let base = build_directory(&names).unwrap();
        let port = free_port();
        let node = start_node(
            |config| {
                config.database.url = Some(db.url.clone());
                config.node.listen = format!("127.0.0.1:{port}");
                config.node.public_url = format!("http://127.0.0.1:{port}");
                config.identities.parent = PARENT.to_owned();
                config.names = names;
                config.loopback = Some(LoopbackConfig { echo, ..LoopbackConfig::default() });
                config.admin.metrics_listen = Some("127.0.0.1:0".to_owned());
                adjust(config);
            },
            Relay::factory(base.clone()),
        )
        .await;
        let resolver = node.node.names().local_names.clone().with_fallback(base.resolver().clone());
        let directory = base.with_resolver(Arc::new(resolver));
        let response = node
            .client
            .post(node.url(&format!("/profile/{ALICE}")))
            .json(&profile.to_value())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let token = response.json::<String>().await.unwrap();
        World { node, alice, token, directory }
    }

    pub fn loopback(&self) -> Arc<LoopbackConnector> {
        self.node.node.bridge::<LoopbackNetwork>().expect("[loopback] runs").connector().clone()
    }

    /// Alice writes `text` to `to` as a DM3 client does: sealed for its delivery service (this
    /// node) and posted over HTTP.
    pub async fn alice_writes(&self, to: &EnsName, text: &str) {
        let report = self.alice_sends(to, text).await;
        assert_eq!(report.outcome(), Ok(()), "{report:?}");
    }

    /// Alice's message to `to`, posted to each of its delivery services; what each answered.
    pub async fn alice_sends(&self, to: &EnsName, text: &str) -> DeliveryReport {
        let message = MessageBuilder::new(to.as_str(), ALICE, now_ms().try_into().unwrap())
            .text(text, None)
            .sign(&self.alice.profile_keys().signing);
        let http = HttpDeliveryTarget::new(HttpTargetOptions {
            allow_private_addresses: true,
            ..HttpTargetOptions::default()
        })
        .unwrap();
        let signing = &self.alice.profile_keys().signing;
        deliver(&message, signing, &self.directory, &http, &[]).await.unwrap()
    }

    /// Waits until alice has `count` envelopes stored; answers them opened.
    pub async fn alice_receives(&self, count: usize) -> Vec<OpenedMessage> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = self
                .node
                .client
                .get(self.node.url(&format!("/delivery/messages/incoming/{ALICE}")))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let stored: Vec<Value> = response.json().await.unwrap();
            if stored.len() >= count {
                let mut opened = Vec::new();
                for envelope in &stored {
                    let keys = [self.alice.clone()];
                    let alice = ALICE.parse().unwrap();
                    opened.push(
                        open_inbound(&envelope.to_string(), &alice, &keys, &self.directory).await.unwrap(),
                    );
                }
                return opened;
            }
            assert!(Instant::now() < deadline, "alice got {} of {count} messages", stored.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the loopback network was sent `count` messages; answers what it recorded.
    pub async fn loopback_receives(&self, count: usize) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let records = self.loopback().records();
            if self.loopback().sent().len() >= count {
                return records;
            }
            assert!(Instant::now() < deadline, "the loopback network got {records:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
