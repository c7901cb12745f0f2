//! Live delivery against the reference client: the published `@dm3-org` 1.7.1 libraries log in
//! over HTTP (`interop/ds-client.js`) and connect with `socket.io-client` at the version the
//! reference messenger uses, as the messenger connects (websocket transport,
//! `auth = {account: {ensName}, token}`; docs/protocol.md §9.3, docs/relay.md "Live delivery").
//! Another DM3 user submits; the socket must get each new envelope once, in order, in time,
//! opened and verified by the libraries, and nothing that is not its account's, nothing after
//! its session ended, and nothing for a wrong token. The scenarios that store run on SQLite and
//! on PostgreSQL.
//!
//! Sessions that end within seconds are written through the store as the relay writes them
//! (a random token, its SHA-256 kept): the node's own sessions last five minutes or an hour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dm3_bridge::clock::now_ms;
use dm3_bridge::config::Config;
use dm3_bridge::names::static_resolver::StaticResolver;
use dm3_bridge::store::TokenHash;
use serde_json::{Value, json};
use support::TestDb;
use support::js::JsProcess;
use support::js::user::{address, ens, name, profile};
use support::node::{TestNode, start_relay};

on_both_backends!(
    a_logged_in_client_gets_each_new_envelope_once_in_order_and_in_time,
    wrong_expired_foreign_or_malformed_handshakes_are_refused,
    nothing_arrives_after_logout_or_once_the_session_expired,
);

/// Envelopes one sender submits while the receiver listens.
const ENVELOPES: usize = 40;
/// The most a submit may take to reach the listening client (debug build, shared machine);
/// docs/relay.md reports what it measured.
const LATENCY_BOUND_MS: f64 = 1_000.0;

/// The client process, the node, and three users: Bob listens, Alice sends, Carol listens too
/// and must get nothing of Bob's.
struct World {
    js: JsProcess,
    node: TestNode,
    bob: Value,
    alice: Value,
    carol: Value,
}

async fn world(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> World {
    let mut js = JsProcess::spawn("ds-client.js").await;
    let mut user = async || js.call("new_user", json!({"deliveryServices": ["relay.example.eth"]})).await;
    let (bob, alice, carol) = (user().await, user().await, user().await);
    let mut resolver = StaticResolver::new();
    for user in [&bob, &alice, &carol] {
        resolver = resolver.with_user(ens(user), address(user), &profile(user));
    }
    let node = start_relay(db.url.clone(), resolver, adjust).await;
    let mut w = World { js, node, bob, alice, carol };
    for user in [w.bob.clone(), w.alice.clone(), w.carol.clone()] {
        w.register(&user).await;
    }
    w
}

impl World {
    fn url(&self) -> String {
        self.node.base.clone()
    }

    /// `POST /profile/:name`; the token of the registration's short session.
    async fn register(&mut self, user: &Value) -> String {
        let args =
            json!({"url": self.url(), "ensName": name(user), "signedUserProfile": user["signedUserProfile"]});
        let answer = self.js.call("register", args).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// The messenger's login: `GET /auth` → sign → `POST /auth`; the session token.
    async fn login(&mut self, user: &Value) -> String {
        let key = &user["keys"]["signing"]["privateKey"];
        let args = json!({"url": self.url(), "ensName": name(user), "signingPrivateKey": key});
        let answer = self.js.call("login", args).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// A session for `user` ending at `expires_at_ms`, written as the relay writes one.
    async fn session_until(&self, user: &Value, expires_at_ms: i64) -> String {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = TokenHash::from_bytes(dm3::hash::sha256(token.as_bytes()));
        self.node.node.store().create_session(&hash, &ens(user), now_ms(), expires_at_ms).await.unwrap();
        token
    }

    /// Opens a socket as the messenger does; the answer of `live_connect`.
    async fn connect(&mut self, user: &Value, token: &str) -> Value {
        let args = json!({"url": self.url(), "ensName": name(user), "token": token});
        self.js.call("live_connect", args).await
    }

    /// A socket that must be admitted; its id.
    async fn listen(&mut self, user: &Value, token: &str) -> Value {
        let answer = self.connect(user, token).await;
        assert_eq!(answer["outcome"], "authorized", "{answer}");
        answer["socket"].clone()
    }

    /// A handshake with `auth` as given; the `connect_error` message it must get.
    async fn refused(&mut self, auth: Value) -> String {
        let answer = self.js.call("live_connect", json!({"url": self.url(), "auth": auth})).await;
        assert_eq!(answer["outcome"], "connect_error", "{auth} must be refused: {answer}");
        answer["error"].as_str().unwrap().to_owned()
    }

    /// What `socket` of `user` received, opened by the libraries: waits until it has `count`
    /// messages or `wait` passed.
    async fn received(&mut self, socket: &Value, user: &Value, count: usize, wait: Duration) -> Value {
        let args = json!({
            "socket": socket,
            "count": count,
            "timeoutMs": u64::try_from(wait.as_millis()).unwrap(),
            "encryptionKeyPair": user["keys"]["encryption"],
            "dsPublicSigningKey": self.node.signing_public_key(),
            "senderSigningKeys": {name(&self.alice): self.alice["keys"]["signing"]["publicKey"]},
        });
        let answer = self.js.call("live_messages", args).await;
        assert_eq!(answer["undecryptable"], json!([]), "{answer}");
        answer
    }

    /// Alice sends `text` to `to` as the messenger does; the submit's answer, with its times.
    async fn send(&mut self, to: &Value, text: &str, format: &str) -> Value {
        let args = json!({
            "url": self.url(),
            "from": {"ensName": name(&self.alice), "signingPrivateKey": self.alice["keys"]["signing"]["privateKey"]},
            "to": {"ensName": name(to), "publicEncryptionKey": to["keys"]["encryption"]["publicKey"]},
            "dsPublicEncryptionKey": self.node.encryption_public_key(),
            "text": text,
            "format": format,
        });
        let answer = self.js.call("submit", args).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer
    }

    /// How many envelopes `user` can fetch by polling.
    async fn polled(&mut self, user: &Value, token: &str) -> usize {
        let args = json!({
            "url": self.url(),
            "ensName": name(user),
            "token": token,
            "encryptionKeyPair": user["keys"]["encryption"],
            "dsPublicSigningKey": self.node.signing_public_key(),
        });
        let answer = self.js.call("incoming", args).await;
        assert_eq!(answer["status"], 200, "{answer}");
        answer["envelopes"].as_array().unwrap().len()
    }
}

fn messages(received: &Value) -> &Vec<Value> {
    received["messages"].as_array().unwrap()
}

/// The `q` quantile (nearest rank) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn a_logged_in_client_gets_each_new_envelope_once_in_order_and_in_time(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let (bob, carol) = (w.bob.clone(), w.carol.clone());
    let bob_token = w.login(&bob).await;
    let carol_token = w.login(&carol).await;
    let bob_socket = w.listen(&bob, &bob_token).await;
    let carol_socket = w.listen(&carol, &carol_token).await;

    // Both envelope formats, one after the other, as two versions of the client send them.
    let mut sent = Vec::new();
    for i in 0..ENVELOPES {
        let format = if i % 4 == 3 { "npm" } else { "current" };
        sent.push(w.send(&bob, &format!("live {i}"), format).await);
    }
    // A replay is stored once, and so pushed once.
    let replay = w.js.call("post_envelope", json!({"url": w.url(), "envelope": sent[0]["envelope"]})).await;
    assert_eq!(replay["status"], 200, "{replay}");

    // One more than sent: the wait for it shows that nothing else comes.
    let got = w.received(&bob_socket, &bob, ENVELOPES + 1, Duration::from_millis(1_500)).await;
    let got = messages(&got);
    assert_eq!(got.len(), ENVELOPES, "each envelope once, the replay not again");
    let (mut latencies, mut round_trips) = (Vec::new(), Vec::new());
    for (i, (opened, sent)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(opened["text"], format!("live {i}"), "in the order sent");
        assert_eq!(opened["messageHash"], sent["messageHash"]);
        assert_eq!(opened["from"], name(&w.alice));
        assert_eq!(
            opened["deliveryInformation"],
            json!({"to": name(&bob), "from": name(&w.alice)}),
            "the stored form (P9)"
        );
        assert_eq!(opened["postmarkValid"], true, "postmarked by the node: {opened}");
        assert_eq!(opened["messageSignatureValid"], true);
        latencies.push(opened["receivedAt"].as_f64().unwrap() - sent["sentAt"].as_f64().unwrap());
        round_trips.push(sent["answeredAt"].as_f64().unwrap() - sent["sentAt"].as_f64().unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    round_trips.sort_by(f64::total_cmp);
    let (p50, p99, max) =
        (quantile(&latencies, 0.5), quantile(&latencies, 0.99), latencies[latencies.len() - 1]);
    println!(
        "live delivery, submit to event over {ENVELOPES} envelopes ({}): p50 {p50:.1} ms, p99 {p99:.1} ms, \
         max {max:.1} ms; the submit's own round trip (to its 200 OK): p50 {:.1} ms, p99 {:.1} ms",
        w.node.node.store().backend(),
        quantile(&round_trips, 0.5),
        quantile(&round_trips, 0.99),
    );
    assert!(max < LATENCY_BOUND_MS, "submit to event: {latencies:?} ms");

    let carols = w.received(&carol_socket, &carol, 1, Duration::from_millis(300)).await;
    assert_eq!(carols["messages"], json!([]), "another account's envelopes never reach Carol");
    assert_eq!(carols["connected"], true);
    // Pushing is not acknowledging: polling still has every envelope.
    assert_eq!(w.polled(&bob, &bob_token).await, ENVELOPES);
    // And Carol's own envelope reaches her, not Bob.
    w.send(&carol, "for carol", "current").await;
    let carols = w.received(&carol_socket, &carol, 1, Duration::from_secs(5)).await;
    assert_eq!(messages(&carols).len(), 1);
    assert_eq!(messages(&carols)[0]["text"], "for carol");
    let bobs = w.received(&bob_socket, &bob, ENVELOPES + 1, Duration::from_millis(300)).await;
    assert_eq!(messages(&bobs).len(), ENVELOPES);
}

async fn wrong_expired_foreign_or_malformed_handshakes_are_refused(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let (bob, carol) = (w.bob.clone(), w.carol.clone());
    let token = w.login(&bob).await;
    let auth = |user: &Value, token: &str| json!({"account": {"ensName": name(user)}, "token": token});

    let wrong = URL_SAFE_NO_PAD.encode([7u8; 32]);
    assert!(w.refused(auth(&bob, &wrong)).await.contains("invalid token"));
    assert!(w.refused(auth(&bob, "not a token")).await.contains("invalid token"));
    let expired = w.session_until(&bob, now_ms() - 1).await;
    assert!(w.refused(auth(&bob, &expired)).await.contains("expired"));
    assert!(w.refused(auth(&carol, &token)).await.contains("not valid for"), "Bob's token opens only Bob's");
    // A profile posted again gets a token bound to nothing (docs/relay.md, "Who gets a session").
    let address_bound = w.register(&bob).await;
    assert!(w.refused(auth(&bob, &address_bound)).await.contains("invalid token"));
    for malformed in [json!(null), json!({"token": token}), json!({"account": name(&bob), "token": token})] {
        assert!(w.refused(malformed).await.contains("auth must be"));
    }
    // The name as the client writes it is normalized, as on the HTTP routes.
    let upper = json!({"account": {"ensName": name(&bob).to_uppercase()}, "token": token});
    let answer = w.js.call("live_connect", json!({"url": w.url(), "auth": upper})).await;
    assert_eq!(answer["outcome"], "authorized", "{answer}");

    // None of the refused ones hears anything; the admitted one does.
    let socket = answer["socket"].clone();
    w.send(&bob, "after the refusals", "current").await;
    let got = w.received(&socket, &bob, 1, Duration::from_secs(5)).await;
    assert_eq!(messages(&got).len(), 1);
}

async fn nothing_arrives_after_logout_or_once_the_session_expired(db: &TestDb) {
    let mut w = world(db, |_| {}).await;
    let bob = w.bob.clone();
    let token = w.login(&bob).await;

    // Logout: the messenger closes its socket, and nothing more reaches it.
    let socket = w.listen(&bob, &token).await;
    w.send(&bob, "before logout", "current").await;
    assert_eq!(messages(&w.received(&socket, &bob, 1, Duration::from_secs(5)).await).len(), 1);
    w.js.call("live_close", json!({"socket": socket})).await;
    w.send(&bob, "after logout", "current").await;
    let after = w.received(&socket, &bob, 2, Duration::from_millis(500)).await;
    assert_eq!(messages(&after).len(), 1);
    assert_eq!(after["connected"], false);

    // Expiry: a session that ends in three seconds.
    let ends_at = now_ms() + 3_000;
    let short = w.session_until(&bob, ends_at).await;
    let socket = w.listen(&bob, &short).await;
    w.send(&bob, "while the session runs", "current").await;
    let got = w.received(&socket, &bob, 1, Duration::from_secs(5)).await;
    assert_eq!(messages(&got).len(), 1, "only what was stored after it connected: {got}");
    assert_eq!(messages(&got)[0]["text"], "while the session runs");
    // At its end the node closes the socket (Socket.IO clients do not reconnect after that).
    let left = u64::try_from(ends_at - now_ms()).unwrap_or(0);
    let closed = w.received(&socket, &bob, 2, Duration::from_millis(left + 1_500)).await;
    assert!(now_ms() >= ends_at);
    assert_eq!(closed["connected"], false, "{closed}");
    assert_eq!(closed["disconnectReason"], "io server disconnect");
    w.send(&bob, "after the session ended", "current").await;
    let after = w.received(&socket, &bob, 2, Duration::from_millis(500)).await;
    assert_eq!(messages(&after).len(), 1, "nothing after the session ended");
    // Polling, with a session that runs, still has everything.
    assert_eq!(w.polled(&bob, &token).await, 4);
}

/// The resident memory of this process (the node runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Floods of handshakes from one client: the login's rate budget refuses most before the node
/// reads them, the seats refuse the rest, and memory stays put. Sessions are read, not written:
/// one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connection_attempts_is_refused_with_bounded_memory() {
    let db = TestDb::sqlite();
    let mut w = world(&db, |config| {
        config.limits.max_live_sockets = 6;
        config.limits.max_live_sockets_per_account = 4;
    })
    .await;
    let (bob, carol) = (w.bob.clone(), w.carol.clone());
    let (bob_token, carol_token) = (w.login(&bob).await, w.login(&carol).await);
    let auth = |user: &Value, token: &str| json!({"account": {"ensName": name(user)}, "token": token});
    let before = rss_kib();

    // 300 handshakes at once with a wrong token, from another client (127.0.0.2): the /auth
    // budget (a burst of 20) lets 20 reach the session check, the others get 429.
    let wrong = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let flood_began = std::time::Instant::now();
    let flood =
        w.js.call(
            "live_flood",
            json!({"url": w.url(), "auths": vec![auth(&bob, &wrong); 300], "localAddress": "127.0.0.2"}),
        )
        .await;
    println!("live delivery flood, wrong token: {}", flood["outcomes"]);
    assert_eq!(flood["authorized"], 0, "{flood}");
    let outcomes = flood["outcomes"].as_object().unwrap();
    let checked = outcomes
        .iter()
        .filter(|(k, _)| k.contains("invalid token"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum::<u64>();
    // The budget refills at 120 a minute while the flood runs: on a busy machine 300 handshakes
    // take long enough for a few more to pass.
    let refilled = (flood_began.elapsed().as_secs_f64() * 2.0).ceil() as u64;
    assert!(
        (1..=20 + refilled).contains(&checked),
        "at most the burst, and what refilled in {:?}, reaches the session check: {flood}",
        flood_began.elapsed()
    );
    assert_eq!(outcomes.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 300);
    assert!(
        outcomes.keys().all(|k| k.starts_with("connect_error")),
        "every one refused, none left hanging: {flood}"
    );

    // Valid tokens, ten each for two accounts, from a third client: four sockets per account,
    // six in all.
    let mut auths = vec![auth(&bob, &bob_token); 10];
    auths.extend(vec![auth(&carol, &carol_token); 10]);
    let flood =
        w.js.call("live_flood", json!({"url": w.url(), "auths": auths, "localAddress": "127.0.0.3"})).await;
    println!("live delivery flood, valid tokens: {}", flood["outcomes"]);
    assert_eq!(flood["authorized"], 6, "{flood}");
    for (outcome, _) in flood["outcomes"].as_object().unwrap() {
        assert!(
            outcome == "authorized" || outcome.contains("as many live sockets"),
            "refused for the caps: {flood}"
        );
    }
    // Their seats come back when they close: the node takes six again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut auths = vec![auth(&bob, &bob_token); 3];
    auths.extend(vec![auth(&carol, &carol_token); 3]);
    let again =
        w.js.call("live_flood", json!({"url": w.url(), "auths": auths, "localAddress": "127.0.0.5"})).await;
    assert_eq!(again["authorized"], 6, "{again}");

    let grown = rss_kib().saturating_sub(before);
    println!("live delivery flood: RSS grew {grown} KiB");
    assert!(grown < 32 * 1024, "memory stays bounded: grew {grown} KiB");
}

/// A live socket keeps its connection: it counts against `limits.max_connections_per_ip` until
/// it closes, so one client cannot hold more connections through websockets than through
/// requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_socket_holds_its_connection_under_the_per_address_cap() {
    let db = TestDb::sqlite();
    let mut w = world(&db, |config| config.limits.max_connections_per_ip = 3).await;
    let bob = w.bob.clone();
    let token = w.login(&bob).await;
    let (url, ens_name) = (w.url(), name(&bob).to_owned());
    let connect = |token: &str| json!({"url": url, "ensName": ens_name, "token": token, "localAddress": "127.0.0.4", "timeoutMs": 3000});
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let answer = w.js.call("live_connect", connect(&token)).await;
        assert_eq!(answer["outcome"], "authorized", "{answer}");
        sockets.push(answer["socket"].clone());
    }
    let fourth = w.js.call("live_connect", connect(&token)).await;
    assert_eq!(fourth["outcome"], "connect_error", "the address has all its connections: {fourth}");
    let from_there =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 4])).build().unwrap();
    assert!(from_there.get(w.node.url("/hello")).send().await.is_err(), "nor does a request get one");

    w.js.call("live_close", json!({"socket": sockets[0]})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = w.js.call("live_connect", connect(&token)).await;
    assert_eq!(answer["outcome"], "authorized", "a closed socket gives its connection back: {answer}");
}
