//! A real node for HTTP tests: a data directory made by `init`, served on `127.0.0.1:0`.
//!
//! [`start_relay`] runs the real delivery service ([`Relay`]) with names from a
//! [`StaticResolver`]; [`TestNode::restart`] stops a node and starts it again on the same data
//! directory and database.
//!
//! [`StubProtocol`] stands in for the DM3 protocol code: it stores `params[0]` of a submit as
//! the envelope (after an optional delay, to hold a request in flight) and accepts the bearer
//! token `token-<name>`. It exercises the HTTP and storage plumbing, not DM3 itself, and refuses
//! the DM3 envelopes the engine posts in process, as it would over HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::message::MessageHash;
use dm3_bridge::clock::now_ms;
use dm3_bridge::config::{Config, DatabaseUrl};
use dm3_bridge::delivery::Relay;
use dm3_bridge::init::{InitOptions, init};
use dm3_bridge::names::directory::{Directory, NoLinks};
use dm3_bridge::names::static_resolver::StaticResolver;
use dm3_bridge::node::Node;
use dm3_bridge::protocol::{DeliveryError, DeliveryProtocol, LocalSubmit, ProtocolContext, ProtocolFactory};
use dm3_bridge::store::{NewEnvelope, Store};
use dm3_bridge_connector::BoxFuture;
use serde_json::Value;

/// A node serving on a free port, with its data directory.
pub struct TestNode {
    pub node: Node,
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The node's `/metrics` text now, read with the admin token `token`.
    pub async fn metrics(&self, token: &str) -> String {
        let response = self.client.get(self.url("/metrics")).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The node's X25519 public key (`publicEncryptionKey` of its DS profile), base64.
    pub fn encryption_public_key(&self) -> String {
        STANDARD.encode(self.node.node_keys().encryption_public_key().as_bytes())
    }

    /// The node's Ed25519 public key (`publicSigningKey`, checks postmarks), base64.
    pub fn signing_public_key(&self) -> String {
        STANDARD.encode(self.node.node_keys().signing_public_key().as_bytes())
    }

    /// Stops the node gracefully and starts a new one on the same data directory, config
    /// and database (on a new port).
    pub async fn restart(self, protocol: ProtocolFactory) -> TestNode {
        let TestNode { node, client, config, dir, .. } = self;
        node.shutdown().await.unwrap();
        let node = Node::start(&config, &[], protocol).await.unwrap();
        let base = format!("http://{}", node.local_addr());
        TestNode { node, base, client, config, dir }
    }
}

/// The real delivery service, resolving names with `resolver` only.
pub fn relay(resolver: StaticResolver) -> ProtocolFactory {
    Relay::factory(Directory::new(Arc::new(resolver), Arc::new(NoLinks)))
}

/// A node with the real delivery service on the database `url`; `adjust` may change the
/// config first.
pub async fn start_relay(
    url: DatabaseUrl,
    resolver: StaticResolver,
    adjust: impl FnOnce(&mut Config),
) -> TestNode {
    start_node(
        move |config| {
            config.database.url = Some(url);
            adjust(config);
        },
        relay(resolver),
    )
    .await
}

/// Runs `init` in a new temporary directory, listening on port 0.
pub fn init_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let report = init(
        &InitOptions {
            data_dir: dir.path().to_owned(),
            name: "relay.example.eth".to_owned(),
            public_url: "http://127.0.0.1:1".to_owned(),
            listen: Some("127.0.0.1:0".to_owned()),
        },
        &[],
    )
    .unwrap();
    (dir, report.config_file)
}

/// Starts a node on a fresh data directory; `adjust` may change the config first.
pub async fn start_node(adjust: impl FnOnce(&mut Config), protocol: ProtocolFactory) -> TestNode {
    let (dir, config_file) = init_data_dir();
    let mut config = Config::load(&config_file, []).unwrap();
    adjust(&mut config);
    let node = Node::start(&config, &[], protocol).await.unwrap();
    let base = format!("http://{}", node.local_addr());
    TestNode { node, base, client: reqwest::Client::new(), config, dir }
}

/// A protocol stand-in for plumbing tests.
pub struct StubProtocol {
    pub store: Store,
    pub submit_delay: Duration,
}

impl StubProtocol {
    pub fn factory(submit_delay: Duration) -> ProtocolFactory {
        Box::new(move |ctx: ProtocolContext| Arc::new(StubProtocol { store: ctx.store, submit_delay }))
    }
}

impl LocalSubmit for StubProtocol {
    fn submit_envelope<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), DeliveryError>> {
        // What its `submit_message` answers a real envelope: no `to`/`from`/`hash` of its own schema.
        Box::pin(async { Err(DeliveryError::InvalidRequest("invalid schema".to_owned())) })
    }
}

impl DeliveryProtocol for StubProtocol {
    /// `params[0]` is a JSON string `{"to":…, "from":…, "hash":…}`, stored verbatim.
    fn submit_message<'a>(&'a self, params: &'a [Value]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let text = params
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| DeliveryError::InvalidRequest("Envelop missing".to_owned()))?;
            let v: Value = serde_json::from_str(text)
                .map_err(|_| DeliveryError::InvalidRequest("Error parsing envelop".to_owned()))?;
            let field = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| DeliveryError::InvalidRequest("invalid schema".to_owned()))
            };
            let envelope = NewEnvelope {
                receiver: name(&field("to")?)?,
                sender: name(&field("from")?)?,
                message_hash: field("hash")?
                    .parse::<MessageHash>()
                    .map_err(|e| DeliveryError::InvalidRequest(e.to_string()))?,
                envelope: text.to_owned(),
                received_at_ms: now_ms(),
                expires_at_ms: None,
            };
            tokio::time::sleep(self.submit_delay).await;
            self.store.insert_envelope(envelope).await?;
            Ok(())
        })
    }

    fn profile_extension<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(async { Ok(serde_json::json!({"encryptionAlgorithm": []})) })
    }

    fn get_profile<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(async move { Err(DeliveryError::NotFound(format!("no account {name}"))) })
    }

    fn register_profile<'a>(
        &'a self,
        name: &'a str,
        _: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async move { Ok(format!("token-{name}")) })
    }

    fn issue_challenge<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async { Ok("challenge".to_owned()) })
    }

    fn redeem_challenge<'a>(
        &'a self,
        name: &'a str,
        _: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async move { Ok(format!("token-{name}")) })
    }

    fn authorize<'a>(
        &'a self,
        name: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<EnsName, DeliveryError>> {
        Box::pin(async move {
            if bearer == Some(format!("token-{name}").as_str()) {
                self::name(name)
            } else {
                Err(DeliveryError::Unauthorized("invalid token".to_owned()))
            }
        })
    }

    fn normalize_name(&self, name: &str) -> Result<EnsName, DeliveryError> {
        self::name(&name.to_lowercase())
    }
}

/// The stub's names: taken as they are, so they must be normal already.
fn name(text: &str) -> Result<EnsName, DeliveryError> {
    EnsName::from_normalized(text).map_err(|e| DeliveryError::InvalidRequest(e.to_string()))
}
