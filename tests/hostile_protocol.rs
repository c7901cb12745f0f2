//! The hostile-client suite, protocol half: the real `dm3-bridge` binary in its own process,
//! attacked over HTTP on loopback as an outsider would, with the published reference libraries
//! (`interop/ds-client.js`) making valid profiles and envelopes (docs/security.md).
//!
//! Each scenario is a finding of issue #15 that once held and must never come back:
//! - a public, signed profile replayed to `POST /profile` opened a session on its owner's
//!   account (read every envelope's metadata, delete envelopes);
//! - a virtual identity's name could be registered as an account from outside, and a message
//!   to it landed there while the identity was disabled;
//! - `GET /auth` wrote a row per call without limit; nothing limited how often a client could
//!   make the node resolve names;
//! - one unauthenticated registration made 32 gateway fetches against slow gateways, and
//!   asking again repeated all of them;
//! - a refused fetch echoed the internal address a host name resolved to;
//! - one envelope with a tampered ciphertext made the reference client fail to read the whole
//!   inbox;
//! - `/metrics` was public.
//!
//! The transport half (timeouts, connection and body limits) is `tests/hostile_http.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anvil::{Anvil, Ens};
use bridge_process::BridgeProcess;
use dm3::profile::SignedUserProfile;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::js::JsProcess;
use support::js::user::name;

on_both_backends!(
    a_replayed_profile_opens_no_session_on_an_existing_account,
    a_virtual_identity_name_is_never_an_account,
    challenges_and_registrations_are_bounded_per_client,
    a_tampered_envelope_does_not_hide_the_rest_of_the_inbox,
);

const NODE: &str = "relay.hostile.eth";
const PARENT: &str = "bridge.hostile.eth";
const ADMIN_TOKEN: &str = "hostile-suite-admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The node under attack, the reference client, and the users it made.
struct Target {
    node: BridgeProcess,
    js: JsProcess,
    http: reqwest::Client,
}

/// A `[[names.static]]` entry for a user the reference libraries made.
fn static_entry(user: &Value) -> String {
    let profile = SignedUserProfile::from_value(user["signedUserProfile"].clone()).unwrap();
    format!(
        "{{ name = {:?}, address = {:?}, profile = {:?} }}",
        name(user),
        user["address"].as_str().unwrap(),
        profile.to_text_record()
    )
}

impl Target {
    /// A node named [`NODE`] on `db`, resolving `users` from its config, with `env` on top.
    async fn start(db: &TestDb, users: &[&Value], env: &[(&str, &str)]) -> Target {
        let mut node = BridgeProcess::init(NODE, free_port());
        node.set_env("DM3_BRIDGE_DATABASE__URL", db.url.expose());
        let entries: Vec<String> = users.iter().map(|u| static_entry(u)).collect();
        node.set_env("DM3_BRIDGE_NAMES__STATIC", format!("[{}]", entries.join(", ")));
        for (key, value) in env {
            node.set_env(*key, *value);
        }
        node.start().await;
        Target { node, js: JsProcess::spawn("ds-client.js").await, http: reqwest::Client::new() }
    }

    async fn new_user(js: &mut JsProcess) -> Value {
        js.call("new_user", json!({"deliveryServices": [NODE]})).await
    }

    fn url(&self) -> String {
        self.node.base()
    }

    async fn register(&mut self, user: &Value) -> Value {
        let args =
            json!({"url": self.url(), "ensName": name(user), "signedUserProfile": user["signedUserProfile"]});
        self.js.call("register", args).await
    }

    async fn login(&mut self, user: &Value) -> String {
        let key = &user["keys"]["signing"]["privateKey"];
        let answer = self
            .js
            .call("login", json!({"url": self.url(), "ensName": name(user), "signingPrivateKey": key}))
            .await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    async fn submit(&mut self, from: &Value, to: &Value, text: &str, extra: Value) -> Value {
        let ds_key = self.ds_encryption_key().await;
        let mut args = json!({
            "url": self.url(),
            "from": {"ensName": name(from), "signingPrivateKey": from["keys"]["signing"]["privateKey"]},
            "to": {"ensName": name(to), "publicEncryptionKey": to["keys"]["encryption"]["publicKey"]},
            "dsPublicEncryptionKey": ds_key,
            "text": text,
        });
        if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
            args.extend(extra);
        }
        self.js.call("submit", args).await
    }

    /// The node's delivery-service profile, as `dm3-bridge profile --json` prints it.
    async fn ds_profile(&self) -> Value {
        let output = self.node.run_command(&["profile", "--json"]);
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        printed.get("profile").cloned().unwrap_or(printed)
    }

    async fn ds_encryption_key(&self) -> Value {
        self.ds_profile().await["publicEncryptionKey"].clone()
    }

    async fn incoming(&mut self, user: &Value, token: &str) -> Value {
        let ds = self.ds_profile().await;
        let args = json!({
            "url": self.url(),
            "ensName": name(user),
            "token": token,
            "encryptionKeyPair": user["keys"]["encryption"],
            "dsPublicSigningKey": ds["publicSigningKey"],
        });
        self.js.call("incoming", args).await
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(self.node.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(self.node.url(path)).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// `GET /profile` is public; posting what it returns must not make the poster the owner.
async fn a_replayed_profile_opens_no_session_on_an_existing_account(db: &TestDb) {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let (bob, alice) = (Target::new_user(&mut js).await, Target::new_user(&mut js).await);
    let mut t = Target::start(db, &[&bob, &alice], &[]).await;

    // Bob signs up as the messenger does; his session works.
    let registered = t.register(&bob).await;
    assert_eq!(registered["status"], 200, "{registered}");
    let sent = t.submit(&alice, &bob, "for bob's eyes", json!({})).await;
    assert_eq!(sent["status"], 200, "{sent}");

    // The attacker reads bob's public profile and posts it back.
    let (status, public) = t.get(&format!("/profile/{}", name(&bob)), None).await;
    assert_eq!(status, StatusCode::OK);
    let public: Value = serde_json::from_str(&public).unwrap();
    let (status, token) = t.post(&format!("/profile/{}", name(&bob)), &public).await;
    assert_eq!(status, StatusCode::OK, "the reference's answer: a token, bound to the address");
    let stolen = token.as_str().unwrap();
    // ... which opens nothing: not the inbox, not the acknowledgements.
    let (status, body) = t.get(&format!("/delivery/messages/incoming/{}", name(&bob)), Some(stolen)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let ack =
        json!({"acknowledgements": [{"contactAddress": name(&alice), "messageHash": sent["messageHash"]}]});
    let response = t
        .http
        .post(t.node.url(&format!("/delivery/messages/{}/syncAcknowledgements", name(&bob))))
        .bearer_auth(stolen)
        .json(&ack)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Bob, who holds the key, still logs in and finds his message.
    let token = t.login(&bob).await;
    let listed = t.incoming(&bob, &token).await;
    assert_eq!(listed["envelopes"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["envelopes"][0]["text"], "for bob's eyes");

    // A profile that does not name this node as a delivery service registers nothing here.
    let stranger = js.call("new_user", json!({"deliveryServices": ["elsewhere.eth"]})).await;
    let mut elsewhere = Target::start(&TestDb::sqlite(), &[&stranger], &[]).await;
    let refused = elsewhere.register(&stranger).await;
    assert_eq!(refused["status"], 400, "{refused}");
}

/// The node's own names (its virtual identities, enabled or not) are never accounts.
async fn a_virtual_identity_name_is_never_an_account(db: &TestDb) {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let alice = Target::new_user(&mut js).await;
    let mut t = Target::start(
        db,
        &[&alice],
        &[("DM3_BRIDGE_IDENTITIES__PARENT", PARENT), ("DM3_BRIDGE_ADMIN__TOKEN", ADMIN_TOKEN)],
    )
    .await;
    // The admin API takes the Bearer scheme in any case (RFC 9110).
    let (http, base) = (t.http.clone(), t.node.base());
    let admin = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}")).header("authorization", format!("BEARER {ADMIN_TOKEN}"))
    };
    let created = admin(reqwest::Method::POST, "/admin/identities")
        .json(&json!({"network": "telegram", "userId": 12345}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let identity = format!("tg-12345.tg.{PARENT}");
    let profile: Value = admin(reqwest::Method::GET, "/admin/identities/telegram:12345/profile")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed = profile["profile"].clone();

    let victim = json!({
        "ensName": identity,
        "keys": {"encryption": {"publicKey": signed["profile"]["publicEncryptionKey"]}},
    });
    for state in ["enabled", "disabled"] {
        // No [telegram] on this node: a message to a Telegram user's identity is refused at
        // once, whether the identity is enabled or not, never accepted to wait for a connector
        // that never comes (nor stored for someone to collect).
        let sent = t.submit(&alice, &victim, &format!("to a Telegram identity, {state}"), json!({})).await;
        assert_eq!(sent["status"], 400, "{state}: {sent}");
        if state == "enabled" {
            let message = sent["body"]["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("does not bridge telegram"), "{sent}");
        }
        let (status, body) = t.post(&format!("/profile/{identity}"), &signed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{state}: {body}");
        assert_eq!(body["error"]["code"], -32003, "{state}: {body}");
        let (status, body) = t.get(&format!("/auth/{identity}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{state}: no account, no challenge: {body}");
        if state == "enabled" {
            // A Telegram username's alias (docs/names.md section 8) is no recipient on a node
            // without `[telegram]`, and no account anyone can register: a DM3 sender is told
            // at once, and an outsider cannot take the name to collect what is sent to it.
            let alias = json!({"ensName": format!("u-carol-x.tg.{PARENT}"), "keys": victim["keys"]});
            let sent = t.submit(&alice, &alias, "to a username's alias", json!({})).await;
            assert_eq!(sent["status"], 400, "{sent}");
            assert_eq!(sent["body"]["error"]["code"], -32001, "{sent}");
            assert_eq!(sent["body"]["error"]["message"], "unknown account", "{sent}");
            let (status, body) =
                t.post(&format!("/profile/u-carol-x.tg.{PARENT}"), &alice["signedUserProfile"]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let disabled = admin(reqwest::Method::POST, "/admin/identities/telegram:12345/disable")
                .send()
                .await
                .unwrap();
            assert_eq!(disabled.status(), StatusCode::OK);
        }
    }
}

/// An outsider's writes and fetches are bounded: a flood of challenges keeps a few rows, and
/// each client gets a budget of calls while another client keeps its own.
async fn challenges_and_registrations_are_bounded_per_client(db: &TestDb) {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let bob = Target::new_user(&mut js).await;
    // Generous auth budget first, to show the rows stay bounded whatever the rate.
    let mut t = Target::start(db, &[&bob], &[("DM3_BRIDGE_RATE_LIMITS__AUTH_PER_MINUTE", "0")]).await;
    assert_eq!(t.register(&bob).await["status"], 200);
    for _ in 0..200 {
        let (status, _) = t.get(&format!("/auth/{}", name(&bob)), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(live_challenges(db).await, 8, "each name keeps its newest eight");
    // The newest still works.
    t.login(&bob).await;
    t.node.terminate().await;

    // With the default budgets: one client is cut off with 429 and Retry-After...
    let t = Target::start(db, &[&bob], &[]).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    let flood_started = Instant::now();
    for _ in 0..60 {
        let response = t.http.get(t.node.url(&format!("/auth/{}", name(&bob)))).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(response.status());
    }
    let served = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    // A burst of 20, then one per half second of the flood (however slow this machine is).
    let refilled = (flood_started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!((20..=21 + refilled).contains(&served), "{served} served in {:?}", flood_started.elapsed());
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
    assert!(
        retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{retry_after:?}"
    );
    let mut refused_registrations = 0;
    let registrations_started = Instant::now();
    for _ in 0..30 {
        let (status, _) = t.post(&format!("/profile/{}", name(&bob)), &bob["signedUserProfile"]).await;
        refused_registrations += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    // A burst of 10, then one per two seconds of the flood.
    let refilled = (registrations_started.elapsed().as_secs_f64() / 2.0).ceil() as usize;
    assert!(
        refused_registrations + 11 + refilled >= 30,
        "a burst of 10 registrations: {refused_registrations} refused in {:?}",
        registrations_started.elapsed()
    );
    // ... while another client (another loopback address) has its own budget.
    let other =
        reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).build().unwrap();
    let response = other.get(t.node.url(&format!("/auth/{}", name(&bob)))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = t.get("/health", None).await;
    assert_eq!(status, StatusCode::OK, "probes have no budget");
    // The metrics are not for outsiders.
    let (status, _) = t.get("/metrics", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Challenges issued and not used, read straight from the node's database.
async fn live_challenges(db: &TestDb) -> i64 {
    const SQL: &str = "SELECT COUNT(*) FROM challenges WHERE used_at IS NULL";
    let url = db.url.expose();
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let count = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        count
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let count = sqlx::query_scalar(SQL).fetch_one(&pool).await.unwrap();
        pool.close().await;
        count
    }
}

/// A sender can seal garbage the node cannot see through (the current format signs the
/// plaintext's hash, not the ciphertext). The reference client skips what it cannot open and
/// reads the rest, and can acknowledge the bad one away.
async fn a_tampered_envelope_does_not_hide_the_rest_of_the_inbox(db: &TestDb) {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let (bob, alice) = (Target::new_user(&mut js).await, Target::new_user(&mut js).await);
    let mut t = Target::start(db, &[&bob, &alice], &[]).await;
    assert_eq!(t.register(&bob).await["status"], 200);
    let bad = t.submit(&alice, &bob, "garbled", json!({"tamper": "message"})).await;
    assert_eq!(bad["status"], 200, "the node cannot tell: {bad}");
    let good = t.submit(&alice, &bob, "readable", json!({})).await;
    assert_eq!(good["status"], 200, "{good}");

    let token = t.login(&bob).await;
    let listed = t.incoming(&bob, &token).await;
    assert_eq!(listed["status"], 200, "{listed}");
    let envelopes = listed["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 1, "{listed}");
    assert_eq!(envelopes[0]["text"], "readable");
    let undecryptable = listed["undecryptable"].as_array().unwrap();
    assert_eq!(undecryptable.len(), 1, "{listed}");
    assert_eq!(undecryptable[0]["from"], name(&alice));

    let acknowledgements: Vec<Value> = [&envelopes[0], &undecryptable[0]]
        .iter()
        .map(|e| json!({"contactAddress": name(&alice), "messageHash": e["ackHash"]}))
        .collect();
    let acked = t
        .js
        .call(
            "ack",
            json!({"url": t.url(), "ensName": name(&bob), "token": token, "acknowledgements": acknowledgements}),
        )
        .await;
    assert_eq!(acked["status"], 200, "{acked}");
    let after = t.incoming(&bob, &token).await;
    assert_eq!(after["envelopes"].as_array().unwrap().len(), 0, "{after}");
    assert_eq!(after["undecryptable"].as_array().unwrap().len(), 0, "{after}");
}

/// A gateway that counts the requests it gets and answers none of them in time.
async fn counting_gateway(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (addr, hits)
}

/// Names whose resolver points at hostile gateways: eight slow ones, then one on an internal
/// host. A registration for such a name makes the node fetch; the work is bounded, a failure
/// is remembered, and the refusal names no internal address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_lookups_are_bounded_remembered_and_reveal_no_internal_address() {
    let anvil = Anvil::start().await.unwrap();
    let (gateway, hits) = counting_gateway(Duration::from_secs(5)).await;
    let urls: Vec<String> =
        (0..8).map(|i| format!("http://{gateway}/{i}/{{sender}}/{{data}}.json")).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let ens = Ens::deploy(&anvil, &url_refs, &[]).await.unwrap();
    ens.use_offchain_resolver("evil.test.eth").await.unwrap();
    let chain = [
        ("DM3_BRIDGE_NAMES__ENS_RPC_URL", anvil.url().to_owned()),
        ("DM3_BRIDGE_NAMES__ENS_REGISTRY", ens.registry.to_string()),
        ("DM3_BRIDGE_NAMES__REQUEST_TIMEOUT_MS", "300".to_owned()),
        ("DM3_BRIDGE_NAMES__LOOKUP_TIMEOUT_MS", "4000".to_owned()),
    ];
    let db = TestDb::sqlite();
    let mut env: Vec<(&str, &str)> = chain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("DM3_BRIDGE_NAMES__ALLOW_PRIVATE_ADDRESSES", "true"));
    let t = Target::start(&db, &[], &env).await;
    let profile = json!({"profile": {"publicEncryptionKey": "x", "publicSigningKey": "y", "deliveryServices": [NODE]}, "signature": "0x"});

    let started = Instant::now();
    let (status, body) = t.post("/profile/victim.evil.test.eth", &profile).await;
    let first = started.elapsed();
    assert!(status.is_client_error() || status.is_server_error(), "{status} {body}");
    assert!(first < Duration::from_secs(6), "one lookup is bounded: {first:?}");
    let fetched = hits.load(Ordering::SeqCst);
    assert!((1..=8).contains(&fetched), "at most 8 gateway requests for one lookup, not 32: {fetched}");

    // Asking again, even many times, repeats none of that work for a while.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = t.post("/profile/victim.evil.test.eth", &profile).await;
        assert!(status.is_client_error() || status.is_server_error());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "answered from the cache: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), fetched, "the failure was remembered");
    drop(t);

    // A gateway on an internal host: refused, and the answer does not say where it points.
    let internal_port = free_port();
    ens.set_gateway_urls(&[&format!("http://localhost:{internal_port}/{{sender}}/{{data}}.json")])
        .await
        .unwrap();
    let env: Vec<(&str, &str)> = chain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t = Target::start(&TestDb::sqlite(), &[], &env).await;
    let (status, body) = t.post("/profile/probe.evil.test.eth", &profile).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(text.contains("localhost"), "the host the name's owner wrote may be named: {text}");
    for internal in ["127.0.0.1", "[::1]"] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }
}
