//! The bridge's application-service side wired to a real Synapse, for the Matrix test files.
//!
//! Use it with `#[path = "support/synapse.rs"] mod synapse;` and
//! `#[path = "support/matrix_bridge.rs"] mod matrix_bridge;` in the test file. [`Bridge::start`]
//! serves the routes on 127.0.0.1 with an in-memory [`TransactionSink`] that dedups by (scope,
//! txn id) the way the service's durable sink must, starts a homeserver with a fresh
//! registration pointing at them, and knows the DM3 name `alice.eth` only.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dm3_bridge_connector::{
    Accepted, BoxFuture, Inbound, InboundBatch, InboundSink, NetworkId, RemoteIdentity,
    SinkError as CoreSinkError,
};
use dm3_bridge_matrix::crypto::{GhostDevices, KeySupply, OlmStore};
use dm3_bridge_matrix::{
    Appservice, Client, DirectoryError, GhostDirectory, GhostProfile, MatrixConnector, Recorded,
    Registration, RegistrationScope, SinkError, Transaction, TransactionSink,
};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, ServerName};
use serde_json::{Value, json};
use url::Url;

use crate::synapse::{MatrixUser, SERVER_NAME, Synapse};

/// An in-memory stand-in for the service's durable sink: the same dedup contract, no database.
#[derive(Default)]
pub struct MemorySink {
    pub seen: Mutex<HashSet<(RegistrationScope, String)>>,
    /// Every transaction delivered (not the replays).
    pub delivered: Mutex<Vec<Transaction>>,
    pub replays: Mutex<usize>,
}

impl TransactionSink for MemorySink {
    async fn record(&self, transaction: Transaction) -> Result<Recorded, SinkError> {
        let key = (transaction.scope.clone(), transaction.txn_id.to_string());
        if !self.seen.lock().unwrap().insert(key) {
            *self.replays.lock().unwrap() += 1;
            return Ok(Recorded::AlreadySeen);
        }
        self.delivered.lock().unwrap().push(transaction);
        Ok(Recorded::New)
    }
}

impl MemorySink {
    /// Every delivered timeline event, as JSON, with the txn id it came in.
    pub fn events(&self) -> Vec<(String, Value)> {
        let delivered = self.delivered.lock().unwrap();
        delivered
            .iter()
            .flat_map(|t| {
                t.events.iter().map(|e| (t.txn_id.to_string(), serde_json::from_str(e.json().get()).unwrap()))
            })
            .collect()
    }
}

/// An in-memory stand-in for the engine's inbound queue: batches deduplicated by key.
#[derive(Default)]
pub struct MemoryEngine {
    pub batches: Mutex<Vec<InboundBatch>>,
}

impl InboundSink for MemoryEngine {
    fn accept(&self, batch: InboundBatch) -> BoxFuture<'_, Result<Accepted, CoreSinkError>> {
        let mut batches = self.batches.lock().unwrap();
        let accepted = if batches.iter().any(|b| b.key == batch.key) {
            Accepted::Duplicate
        } else {
            batches.push(batch);
            Accepted::New
        };
        Box::pin(async move { Ok(accepted) })
    }
}

impl MemoryEngine {
    /// Every item of every batch, in order.
    pub fn items(&self) -> Vec<Inbound> {
        self.batches.lock().unwrap().iter().flat_map(|b| b.items.clone()).collect()
    }
}

/// Knows a fixed set of DM3 names; counts the questions.
pub struct Names {
    pub known: HashSet<String>,
    pub asked: Mutex<Vec<String>>,
}

impl GhostDirectory for Names {
    fn lookup<'a>(
        &'a self,
        identity: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>> {
        self.asked.lock().unwrap().push(identity.to_string());
        let profile = self
            .known
            .contains(identity.as_str())
            .then(|| GhostProfile { display_name: identity.to_string() });
        Box::pin(async move { Ok(profile) })
    }
}

/// A homeserver and the bridge's application-service side, wired to each other.
pub struct Bridge {
    pub synapse: Synapse,
    pub registration: Registration,
    pub client: Arc<Client>,
    pub sink: Arc<MemorySink>,
    /// Fed instead of `sink` when started with [`Bridge::start_with_engine`].
    pub engine: Arc<MemoryEngine>,
    pub names: Arc<Names>,
    pub as_url: String,
    /// The ghosts' devices, when started with [`Bridge::start_with_devices`].
    pub devices: Option<Arc<GhostDevices>>,
}

impl Bridge {
    /// Transactions go to the raw [`MemorySink`].
    pub async fn start() -> Bridge {
        Self::start_inner(false, None).await
    }

    /// Transactions go to the [`MemoryEngine`], as the node hands them to the engine's queue.
    pub async fn start_with_engine() -> Bridge {
        Self::start_inner(true, None).await
    }

    /// Transactions go to the raw [`MemorySink`]; the registration asks for the encryption
    /// extensions, and ghost devices keep their accounts in `accounts` and are topped up from
    /// the transactions' key counts, as the node does with `[matrix] encryption = "on"`.
    pub async fn start_with_devices(accounts: Arc<dyn OlmStore>) -> Bridge {
        Self::start_inner(false, Some(accounts)).await
    }

    async fn start_inner(through_engine: bool, accounts: Option<Arc<dyn OlmStore>>) -> Bridge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let as_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server_name = <&ServerName>::try_from(SERVER_NAME).unwrap();
        let registration = Registration::builder("dm3-test", Url::parse(&as_url).unwrap(), server_name)
            .build()
            .unwrap()
            .with_encryption_extensions(accounts.is_some());
        let synapse =
            Synapse::start(&registration.to_yaml().unwrap()).await.unwrap_or_else(|e| panic!("{e:#}"));
        let client = Arc::new(
            Client::new(
                &Url::parse(synapse.url()).unwrap(),
                registration.as_token().clone(),
                registration.id(),
            )
            .unwrap(),
        );
        let sink = Arc::new(MemorySink::default());
        let engine = Arc::new(MemoryEngine::default());
        let names =
            Arc::new(Names { known: HashSet::from(["alice.eth".to_owned()]), asked: Mutex::default() });
        let devices = accounts.map(|accounts| Arc::new(GhostDevices::new(client.clone(), accounts)));
        let router = if through_engine {
            Appservice::new(&registration, client.clone(), engine.clone(), names.clone()).router()
        } else {
            let appservice = Appservice::new(&registration, client.clone(), sink.clone(), names.clone());
            match &devices {
                Some(devices) => appservice
                    .ghost_devices(devices.clone())
                    .key_supply(KeySupply::start(devices.clone()).0)
                    .router(),
                None => appservice.router(),
            }
        };
        tokio::spawn(async move { axum::serve(listener, router).await });
        Bridge { synapse, registration, client, sink, engine, names, as_url, devices }
    }

    pub fn ghost(&self, name: &str) -> OwnedUserId {
        self.registration.ghosts().user_id(&RemoteIdentity::new(name).unwrap()).unwrap()
    }

    /// PUTs a transaction to the bridge as the homeserver would, with `token`.
    pub async fn put_transaction(&self, txn_id: &str, body: &Value, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/_matrix/app/v1/transactions/{txn_id}", self.as_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// A real user `bob` in a DM with the ghost of alice.eth, which joined; answers (bob, room).
    pub async fn dm_with_alice(&self) -> (MatrixUser, OwnedRoomId) {
        let bob = self.synapse.register_user("bob").await.unwrap();
        let ghost = self.ghost("alice.eth");
        let room = bob
            .create_room(
                json!({"is_direct": true, "preset": "trusted_private_chat", "invite": [ghost.as_str()]}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.synapse.log_tail()));
        let room = RoomId::parse(&room).unwrap();
        // The invite reaches the bridge as a transaction; the engine would then join the ghost.
        self.wait_for("the invite of the ghost", |events| {
            events.iter().any(|(_, e)| {
                e["type"] == "m.room.member"
                    && e["state_key"] == ghost.as_str()
                    && e["content"]["membership"] == "invite"
            })
        })
        .await;
        self.client.join(&ghost, &room).await.unwrap();
        (bob, room)
    }

    pub async fn wait_for(&self, what: &str, done: impl Fn(&[(String, Value)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.sink.events();
            if done(&events) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} did not reach the bridge within 30 s; events: {events:#?}\n{}",
                    self.synapse.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The connector acting through this bridge's client and ghosts.
    pub fn connector(&self) -> MatrixConnector {
        MatrixConnector::new(
            NetworkId::new("matrix").unwrap(),
            self.client.clone(),
            self.registration.ghosts().clone(),
        )
    }

    /// Waits until the engine holds an item that `matches`; answers it.
    pub async fn wait_for_item(&self, what: &str, matches: impl Fn(&Inbound) -> bool) -> Inbound {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let items = self.engine.items();
            if let Some(item) = items.iter().find(|i| matches(i)) {
                return item.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} did not reach the engine within 30 s; items: {items:#?}\n{}",
                    self.synapse.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
