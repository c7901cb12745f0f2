//! A node with virtual identities enabled, and a small client for its admin API.
//!
//! The node serves `bridge.example.eth` (sub-names `tg.` and `mx.`) unless a test picks another
//! parent, and accepts the admin token [`TOKEN`].

use dm3_bridge::config::{AdminToken, DatabaseUrl};
use reqwest::StatusCode;
use serde_json::Value;

use super::node::{StubProtocol, TestNode, start_node};

pub const PARENT: &str = "bridge.example.eth";
pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Options of [`start_names_node`].
#[derive(Default)]
pub struct NamesNode {
    pub parent: Option<String>,
    pub node_name: Option<String>,
    pub database: Option<DatabaseUrl>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub token: Option<Option<String>>,
}

/// Starts a node with `[identities] parent` and `[admin] token` set.
pub async fn start_names_node(options: NamesNode) -> TestNode {
    start_node(
        |config| {
            config.identities.parent = options.parent.unwrap_or_else(|| PARENT.to_owned());
            if let Some(name) = options.node_name {
                config.node.name = name;
            }
            if let Some(url) = options.database {
                config.database.url = Some(url);
            }
            if let Some(listen) = options.listen {
                config.node.listen = listen;
            }
            if let Some(url) = options.public_url {
                config.node.public_url = url;
            }
            config.admin.token = options.token.unwrap_or_else(|| Some(TOKEN.to_owned())).map(AdminToken::new);
        },
        StubProtocol::factory(std::time::Duration::ZERO),
    )
    .await
}

/// The admin API of a node, with the right token.
pub struct Admin<'a> {
    pub node: &'a TestNode,
}

impl Admin<'_> {
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.node.client.request(method, self.node.url(path)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}"));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, body).await
    }

    /// Creates an identity; panics unless the node answers 201.
    pub async fn create(&self, network: &str, user_id: &str) -> Value {
        let body = serde_json::json!({"network": network, "userId": user_id});
        let (status, value) = self.post("/admin/identities", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        value
    }
}
