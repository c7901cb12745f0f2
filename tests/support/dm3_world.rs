//! The DM3 side of a bridge test: a chain, names, a second delivery service and a DM3 user.
//!
//! Set up as it would be in production, with nothing resolved in process:
//! - anvil with our ENS registry; the bridge's parent name has the OffchainResolver, pointed at
//!   the bridge's own CCIP-read gateway once the bridge runs ([`Dm3World::point_parent_at`]);
//! - `alice.test.eth` and `ds-b.test.eth` have a PlainResolver with records on chain: alice's
//!   signed profile (her delivery service is `ds-b.test.eth`) and that DS's profile;
//! - node B, a plain relay node (the real [`Relay`]) resolving through the chain, is alice's
//!   delivery service, and alice is registered there with a session token.
//!
//! [`Dm3User`] is alice's client, made of the SDK: it seals messages for a recipient's delivery
//! services and reads and opens what B stored for her.
#![allow(dead_code)]

use std::time::Duration;

use alloy_primitives::Address;
use alloy_sol_types::sol;
use dm3::crypto::eth::Wallet;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::SigningKeyPair;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::envelope::Envelope;
use dm3::keys::ProfileKeys;
use dm3::message::{Message, MessageBuilder, MessageHash};
use dm3::profile::{SignedUserProfile, UserProfile};
use dm3::text_record::{DELIVERY_SERVICE_KEY, USER_PROFILE_KEY};
use dm3_bridge::config::{Config, DatabaseUrl, NamesConfig};
use dm3_bridge::delivery::Relay;
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::names::directory::Directory;
use serde_json::{Value, json};

use crate::anvil::{Anvil, Ens, namehash};
use crate::support::crash::assert_exactly_once_in_order;
use crate::support::node::{TestNode, start_node};

pub const PARENT: &str = "bridge.test.eth";
pub const BRIDGE_NODE_NAME: &str = "ds.bridge.test.eth";
pub const ALICE: &str = "alice.test.eth";
pub const DS_B: &str = "ds-b.test.eth";

sol! {
    interface IPlainResolver {
        function setAddr(bytes32 node, address a) external;
        function setText(bytes32 node, string key, string value) external;
    }
}

/// Everything outside the bridge.
pub struct Dm3World {
    pub anvil: Anvil,
    pub ens: Ens,
    pub ds_b: TestNode,
    pub alice: Dm3User,
    /// The plain resolver that holds the records of alice, node B and [`Self::publish_user`]'s users.
    plain: Address,
}

impl Dm3World {
    /// Starts the chain, node B and alice; `database` is node B's (SQLite when `None`).
    pub async fn start(database: Option<DatabaseUrl>) -> Dm3World {
        let anvil = Anvil::start().await.unwrap();
        let ens = Ens::deploy(&anvil, &["http://unset.invalid/{sender}/{data}.json"], &[]).await.unwrap();
        ens.use_offchain_resolver(PARENT).await.unwrap();
        let plain = ens.rpc().deploy("PlainResolver", &[]).await.unwrap();

        let port = free_port();
        let names = names_config(&anvil, &ens);
        let ds_b = start_node(
            |config| {
                config.node.name = DS_B.to_owned();
                config.node.listen = format!("127.0.0.1:{port}");
                config.node.public_url = format!("http://127.0.0.1:{port}");
                config.names = names.clone();
                if let Some(url) = database {
                    config.database.url = Some(url);
                }
            },
            Relay::factory(build_directory(&names).unwrap()),
        )
        .await;
        let ds_b_profile = DeliveryServiceProfile::new(
            ds_b.encryption_public_key(),
            ds_b.signing_public_key(),
            ds_b.base.clone(),
        );
        set_records(&ens, plain, DS_B, None, &[(DELIVERY_SERVICE_KEY, ds_b_profile.to_text_record())]).await;

        let alice = Dm3User::new(ALICE, &[DS_B]);
        let record = alice.profile.to_text_record();
        set_records(&ens, plain, ALICE, Some(alice.wallet.address()), &[(USER_PROFILE_KEY, record)]).await;
        let mut world = Dm3World { anvil, ens, ds_b, alice, plain };
        world.alice.register(&world.ds_b).await;
        // A first registration's session lasts minutes; a client that stays keeps an hour's
        // session by answering a challenge, as the messenger does.
        let token = world.alice.login(&world.ds_b).await;
        world.alice.token = Some(token);
        world
    }

    /// Publishes another DM3 user on the chain: `name` resolves to `address` and holds the
    /// signed profile `profile` (e.g. one the reference libraries made).
    /// A DM3 user `name` whose client is the reference libraries (`interop/ds-client.js`, run by
    /// `js`): made there, published on the chain and registered at node B. Their fields (as
    /// `new_user` answers) and their session token at node B.
    pub async fn npm_user(&self, js: &mut crate::support::js::JsProcess, name: &str) -> (Value, String) {
        let user = js.call("new_user", json!({"deliveryServices": [DS_B]})).await;
        let profile = SignedUserProfile::from_value(user["signedUserProfile"].clone()).unwrap();
        let address: Address = user["address"].as_str().unwrap().parse().unwrap();
        self.publish_user(name, address, &profile).await;
        let registered = js
            .call(
                "register",
                json!({"url": self.ds_b.base, "ensName": name, "signedUserProfile": user["signedUserProfile"]}),
            )
            .await;
        assert_eq!(registered["status"], 200, "{registered}");
        (user, registered["token"].as_str().unwrap().to_owned())
    }

    pub async fn publish_user(&self, name: &str, address: Address, profile: &SignedUserProfile) {
        let record = profile.to_text_record();
        set_records(&self.ens, self.plain, name, Some(address), &[(USER_PROFILE_KEY, record)]).await;
    }

    /// `[names]` for any node of this world: the chain, no cache (identities appear at run time),
    /// and loopback gateways allowed.
    pub fn names_config(&self) -> NamesConfig {
        names_config(&self.anvil, &self.ens)
    }

    /// The Directory the bridge and node B use, as a test would check names with it.
    pub fn directory(&self) -> Directory {
        build_directory(&self.names_config()).unwrap()
    }

    /// Points the parent's resolver at the gateway of the bridge with `config`, trusting its
    /// signer (the operator's steps, docs/names.md).
    pub async fn point_parent_at(&self, bridge: &TestNode) {
        self.point_parent_at_gateway(&bridge.base, bridge.config.admin.token.as_ref().unwrap().expose())
            .await;
    }

    /// [`point_parent_at`](Self::point_parent_at) for a bridge at `base` (e.g. one running as
    /// its own process), asking its admin API with `admin_token`.
    pub async fn point_parent_at_gateway(&self, base: &str, admin_token: &str) {
        let gateway: Value = reqwest::Client::new()
            .get(format!("{base}/admin/gateway"))
            .bearer_auth(admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.ens.set_gateway_url(gateway["urlTemplate"].as_str().unwrap()).await.unwrap();
        self.ens.set_signer(gateway["signer"].as_str().unwrap().parse().unwrap(), true).await.unwrap();
    }

    /// Sets up `config` as the bridge node of this world (name, names, a fixed port).
    pub fn configure_bridge(&self, config: &mut Config) {
        let port = free_port();
        config.node.name = BRIDGE_NODE_NAME.to_owned();
        config.node.listen = format!("127.0.0.1:{port}");
        config.node.public_url = format!("http://127.0.0.1:{port}");
        config.names = self.names_config();
        config.identities.parent = PARENT.to_owned();
        // The scenarios send floods from one DM3 sender on purpose; the budgets of senders and
        // bridged users (issue #19) are tested in tests/bridge_abuse.rs, which sets them.
        config.rate_limits.dm3_sender_per_minute = 0;
        config.rate_limits.bridged_user_per_minute = 0;
    }

    /// What [`configure_bridge`](Self::configure_bridge) sets but the node's name, as the
    /// `DM3_BRIDGE_…` variables of a bridge running as its own process (made by `init` with
    /// the name [`BRIDGE_NODE_NAME`] and its port).
    pub fn bridge_env(&self) -> Vec<(String, String)> {
        let names = self.names_config();
        [
            ("NAMES__ENS_RPC_URL", names.ens_rpc_url.unwrap_or_default()),
            ("NAMES__ENS_REGISTRY", names.ens_registry),
            ("NAMES__CACHE_TTL_SECS", names.cache_ttl_secs.to_string()),
            ("NAMES__REQUEST_TIMEOUT_MS", names.request_timeout_ms.to_string()),
            ("NAMES__ALLOW_PRIVATE_ADDRESSES", names.allow_private_addresses.to_string()),
            ("IDENTITIES__PARENT", PARENT.to_owned()),
            // As in configure_bridge: floods from one sender are what these scenarios do.
            ("RATE_LIMITS__DM3_SENDER_PER_MINUTE", "0".to_owned()),
            ("RATE_LIMITS__BRIDGED_USER_PER_MINUTE", "0".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("DM3_BRIDGE_{key}"), value))
        .collect()
    }
}

fn names_config(anvil: &Anvil, ens: &Ens) -> NamesConfig {
    NamesConfig {
        ens_rpc_url: Some(anvil.url().to_owned()),
        ens_registry: ens.registry.to_string(),
        cache_ttl_secs: 0,
        request_timeout_ms: 5_000,
        allow_private_addresses: true,
        ..NamesConfig::default()
    }
}

async fn set_records(
    ens: &Ens,
    resolver: Address,
    name: &str,
    addr: Option<Address>,
    text: &[(&str, String)],
) {
    ens.claim(name).await.unwrap();
    ens.set_resolver(name, resolver).await.unwrap();
    let node = namehash(name);
    if let Some(a) = addr {
        ens.rpc().transact(resolver, &IPlainResolver::setAddrCall { node, a }).await.unwrap();
    }
    for (key, value) in text {
        let call = IPlainResolver::setTextCall { node, key: (*key).to_owned(), value: value.clone() };
        ens.rpc().transact(resolver, &call).await.unwrap();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where a message to one recipient goes: their encryption key and their delivery services'
/// URLs and keys, resolved through the chain.
pub struct Route {
    recipient_key: [u8; 32],
    delivery_services: Vec<(String, [u8; 32])>,
}

impl Route {
    async fn resolve(directory: &Directory, to: &str) -> Route {
        let to: dm3::ens::EnsName = to.parse().unwrap();
        let recipient = directory.user_profile(&to).await.unwrap().expect("the recipient has a profile");
        let profile = recipient.profile.profile();
        let mut delivery_services = Vec::new();
        for ds_name in profile.delivery_services() {
            let ds = directory
                .delivery_service(&ds_name.parse().unwrap())
                .await
                .unwrap()
                .expect("the recipient's delivery service resolves");
            delivery_services.push((ds.url().to_owned(), ds.encryption_key().unwrap()));
        }
        Route { recipient_key: profile.encryption_key().unwrap(), delivery_services }
    }
}

/// A message alice received, opened and checked.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: Message,
    /// The hash alice acknowledges with.
    pub ack_hash: String,
}

/// A DM3 user with a wallet, keys, a published profile and a session at her delivery service.
pub struct Dm3User {
    pub name: String,
    pub wallet: Wallet,
    pub keys: ProfileKeys,
    pub profile: SignedUserProfile,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Dm3User {
    pub fn new(name: &str, delivery_services: &[&str]) -> Dm3User {
        let wallet = Wallet::generate();
        let keys = ProfileKeys::from_wallet(&wallet, "0");
        let profile = UserProfile::from_keys(&keys, delivery_services.iter().copied()).sign(&wallet);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Dm3User { name: name.to_owned(), wallet, keys, profile, token: None, http }
    }

    fn signing(&self) -> &SigningKeyPair {
        &self.keys.signing
    }

    fn encryption(&self) -> &KxKeyPair {
        &self.keys.encryption
    }

    /// `POST /profile/<name>` at `ds`; the session token.
    pub async fn register(&self, ds: &TestNode) -> String {
        let response = self
            .http
            .post(ds.url(&format!("/profile/{}", self.name)))
            .json(&self.profile.to_value())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "registering {}: {status} {body}", self.name);
        body.as_str().or_else(|| body["token"].as_str()).unwrap().to_owned()
    }

    /// `GET /auth/<name>`, the challenge signed with the profile key, `POST /auth/<name>`; the
    /// session token.
    pub async fn login(&self, ds: &TestNode) -> String {
        let url = ds.url(&format!("/auth/{}", self.name));
        let challenge: String = self.http.get(&url).send().await.unwrap().json().await.unwrap();
        let answer = dm3::auth::ChallengeAnswer::sign(&self.keys.signing, &challenge);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(answer.to_json())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "logging in {}: {status} {body}", self.name);
        body.as_str().unwrap().to_owned()
    }

    /// A message builder from this user to `to`.
    pub fn builder(&self, to: &str) -> MessageBuilder {
        MessageBuilder::now(to, self.name.clone())
    }

    /// Signs `message`, seals it for every delivery service of `to` (resolved through
    /// `directory`) and posts it; the message hash.
    pub async fn send(&self, directory: &Directory, message: Message) -> MessageHash {
        let route = Route::resolve(directory, message.to()).await;
        self.send_on(&route, message).await
    }

    /// Sends `messages`, all to one recipient, one after the other, resolving the recipient's
    /// profile and delivery services once (as a client caches them); their hashes.
    pub async fn send_all(&self, directory: &Directory, messages: Vec<Message>) -> Vec<MessageHash> {
        let Some(to) = messages.first().map(|m| m.to().to_owned()) else { return Vec::new() };
        let route = Route::resolve(directory, &to).await;
        let mut hashes = Vec::with_capacity(messages.len());
        for message in messages {
            assert_eq!(message.to(), to, "send_all sends to one recipient");
            hashes.push(self.send_on(&route, message).await);
        }
        hashes
    }

    /// Where messages to `to` go, resolved once through `directory` (as a client caches it).
    pub async fn route(&self, directory: &Directory, to: &str) -> Route {
        Route::resolve(directory, to).await
    }

    /// Signs `message` as this user, as a client does once before its first attempt.
    pub fn sign(&self, message: Message) -> Message {
        message.sign(self.signing())
    }

    /// Sends `texts` to `route`'s recipient one after the other, `pace` apart, as a client
    /// that retries a failed send: each message is signed once and submitted until the node
    /// answers 200, for up to `give_up` per message. `accepted` counts the messages accepted
    /// so far (for a test to act mid-stream); answers how many submits were retried.
    pub async fn send_each_until_accepted(
        &self,
        route: &Route,
        to: &str,
        texts: &[String],
        pace: Duration,
        give_up: Duration,
        accepted: &std::sync::atomic::AtomicUsize,
    ) -> usize {
        let mut retries = 0;
        for (i, text) in texts.iter().enumerate() {
            let signed = self.sign(self.builder(to).text(text, None));
            let deadline = std::time::Instant::now() + give_up;
            while let Err(error) = self.try_submit(route, &signed).await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} could not submit {text}: {error}",
                    self.name
                );
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            accepted.store(i + 1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(pace).await;
        }
        retries
    }

    /// One attempt to submit the signed `message` to every delivery service of `route`: an
    /// error (the transport's, or a status other than 2xx) as a client would see it and
    /// retry the same message.
    pub async fn try_submit(&self, route: &Route, signed: &Message) -> Result<(), String> {
        for (ds_url, ds_key) in &route.delivery_services {
            let envelope =
                Envelope::seal(signed, self.signing(), &route.recipient_key, ds_key).expect("sealing");
            self.try_post(ds_url, &envelope).await?;
        }
        Ok(())
    }

    async fn send_on(&self, route: &Route, message: Message) -> MessageHash {
        let message = message.sign(self.signing());
        for (ds_url, ds_key) in &route.delivery_services {
            let envelope =
                Envelope::seal(&message, self.signing(), &route.recipient_key, ds_key).expect("sealing");
            self.post(ds_url, &envelope).await;
        }
        message.hash()
    }

    /// Posts a sealed envelope to `<ds_url>/rpc`, asserting `200 OK`.
    pub async fn post(&self, ds_url: &str, envelope: &Envelope) {
        self.try_post(ds_url, envelope).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Posts a sealed envelope to `<ds_url>/rpc` once; an error unless it answered `2xx`.
    pub async fn try_post(&self, ds_url: &str, envelope: &Envelope) -> Result<(), String> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "dm3_submitMessage",
            "params": [envelope.to_json(), ""],
        });
        let failed = |e: reqwest::Error| format!("submitting to {ds_url}: {e}");
        let response = self.http.post(format!("{ds_url}/rpc")).json(&body).send().await.map_err(failed)?;
        let status = response.status();
        let text = response.text().await.map_err(failed)?;
        if status.is_success() { Ok(()) } else { Err(format!("submitting to {ds_url}: {status} {text}")) }
    }

    /// How many envelopes `ds` stores for this user, unopened (cheap enough to poll).
    pub async fn stored_count(&self, ds: &TestNode) -> usize {
        let url = ds.url(&format!("/delivery/messages/incoming/{}", self.name));
        let response = self.http.get(url).bearer_auth(self.token.as_deref().unwrap()).send().await.unwrap();
        assert!(response.status().is_success(), "incoming: {}", response.status());
        let envelopes: Vec<Value> = response.json().await.unwrap();
        envelopes.len()
    }

    /// Everything `ds` stores for this user from `from`, opened; the message signature is
    /// checked with `from`'s profile resolved through `directory`. The delivery service answers
    /// every incoming envelope of the account whatever `contactAddress` says (as the reference
    /// does), so those of other senders are left out here, by the opened message's `from`.
    pub async fn incoming(&self, ds: &TestNode, directory: &Directory, from: &str) -> Vec<Received> {
        let url = ds.url(&format!("/delivery/messages/incoming/{}?contactAddress={from}", self.name));
        let response = self.http.get(url).bearer_auth(self.token.as_deref().unwrap()).send().await.unwrap();
        assert!(response.status().is_success(), "incoming: {}", response.status());
        let envelopes: Vec<Value> = response.json().await.unwrap();
        let sender: dm3::ens::EnsName = from.parse().unwrap();
        let sender_key = directory
            .user_profile(&sender)
            .await
            .unwrap()
            .expect("the sender has a profile")
            .profile
            .profile()
            .verify_key()
            .unwrap();
        // The relay answers everything it holds for this user (the query names no filter the
        // DM3 API has), so the messages of other senders are left out here.
        envelopes
            .into_iter()
            .map(|stored| {
                let envelope = Envelope::from_value(stored).expect("a stored envelope");
                envelope.open(self.encryption()).expect("opens with alice's key")
            })
            .filter(|opened| opened.message.from() == from)
            .map(|opened| {
                opened.message.verify(&sender_key, from).expect("signed by the sender");
                Received { ack_hash: opened.message.hash().to_string(), message: opened.message }
            })
            .collect()
    }

    /// Asserts that `ds` holds exactly `sent` from `from`, each once and in order, both as
    /// stored and by the sender's time; `what` names the stream in a failure.
    pub async fn assert_incoming_once_in_order(
        &self,
        ds: &TestNode,
        directory: &Directory,
        from: &str,
        what: &str,
        sent: &[String],
    ) {
        let mut received = self.incoming(ds, directory, from).await;
        received.reverse(); // the delivery service lists newest first
        let texts = |received: &[Received]| -> Vec<String> {
            received.iter().map(|r| r.message.text().unwrap_or_default().to_owned()).collect()
        };
        assert_exactly_once_in_order(&format!("{what} (as stored)"), &texts(&received), sent);
        received.sort_by(|a, b| a.message.timestamp().total_cmp(&b.message.timestamp()));
        assert_exactly_once_in_order(&format!("{what} (by the sender's time)"), &texts(&received), sent);
    }

    /// Waits until `ds` holds at least `count` messages from `from`; all of them, in order.
    pub async fn wait_for(
        &self,
        ds: &TestNode,
        directory: &Directory,
        from: &str,
        count: usize,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.incoming(ds, directory, from).await;
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} messages from {from} arrived in 60 s",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
