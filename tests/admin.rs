//! Managing virtual identities: the admin API of a real node (on SQLite and PostgreSQL), its
//! token check, its JSON errors, the `dm3-bridge identity` and `dm3-bridge portal` CLIs, keys
//! sealed at rest, and a wrong master key refused at start-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::sync::Arc;

use alloy_primitives::Address;
use dm3::encoding::hex_encode;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use dm3_bridge::config::{Config, DatabaseUrl};
use dm3_bridge::name_service::NameService;
use dm3_bridge::node::Node;
use dm3_bridge::node_keys::NodeKeys;
use dm3_bridge::store::{NewEnvelope, NewJob, NewPortal, PortalState, QueueName};
use dm3_bridge::vault::MasterKey;
use dm3_bridge_connector::{ConversationId, NetworkId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestDb;
use support::names::{Admin, NamesNode, PARENT, TOKEN, start_names_node};
use support::node::TestNode;

async fn node_on(database: Option<DatabaseUrl>) -> TestNode {
    start_names_node(NamesNode { database, ..NamesNode::default() }).await
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn every_admin_route_needs_the_token() {
    let node = node_on(None).await;
    for (method, path) in [
        (Method::GET, "/admin/identities"),
        (Method::POST, "/admin/identities"),
        (Method::GET, "/admin/gateway"),
        (Method::DELETE, "/admin/identities/tg-1.tg.bridge.example.eth"),
        (Method::GET, "/admin/portals"),
        (Method::GET, "/admin/portals/1"),
        (Method::DELETE, "/admin/portals/1"),
        (Method::DELETE, "/admin/matrix/cross-signing/@bob:example.org"),
        (Method::GET, "/admin/no-such-route"),
    ] {
        for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN), Some("Basic dXNlcjpwYXNz")] {
            let mut request = node.client.request(method.clone(), node.url(path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_of(&body).0, "unauthorized", "{body}");
        }
    }
    // With the token, an unknown route is a JSON 404.
    let (status, body) = Admin { node: &node }.get("/admin/no-such-route").await;
    assert_eq!((status, error_of(&body).0), (StatusCode::NOT_FOUND, "no_route"));

    // Without a configured token the API is off, and says how to turn it on.
    let off = start_names_node(NamesNode { token: Some(None), ..NamesNode::default() }).await;
    let response = off.client.get(off.url("/admin/identities")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body).0, "admin_disabled");
    assert!(error_of(&body).1.contains("admin.token"), "{body}");
}

#[tokio::test]
async fn identity_lifecycle_on_sqlite() {
    identity_lifecycle(node_on(None).await).await;
}

#[tokio::test]
async fn identity_lifecycle_on_postgres() {
    let db = TestDb::postgres().await;
    identity_lifecycle(node_on(Some(db.url.clone())).await).await;
}

async fn identity_lifecycle(node: TestNode) {
    let admin = Admin { node: &node };
    let created = admin.create("telegram", "12345").await;
    assert_eq!(created["name"], "tg-12345.tg.bridge.example.eth");
    assert_eq!(created["label"], "tg-12345");
    assert_eq!((created["network"].as_str(), created["userId"].as_str()), (Some("telegram"), Some("12345")));
    assert_eq!((created["keyVersion"].as_u64(), created["enabled"].as_bool()), (Some(1), Some(true)));
    let first_address: Address = created["address"].as_str().unwrap().parse().unwrap();

    // A Telegram id may come as a JSON number; the same user twice is a conflict.
    let (status, body) =
        admin.post("/admin/identities", Some(json!({"network": "telegram", "userId": 12345}))).await;
    assert_eq!((status, error_of(&body).0), (StatusCode::CONFLICT, "exists"), "{body}");
    assert!(error_of(&body).1.contains("tg-12345.tg.bridge.example.eth"), "{body}");
    let matrix = admin.create("matrix", "@bob:example.org").await;
    assert_eq!(matrix["name"], "bob-sexample-porg.mx.bridge.example.eth");

    // Show: by name, by network:userId, percent-encoded or not.
    for id in ["tg-12345.tg.bridge.example.eth", "telegram:12345", "TG-12345.tg.bridge.example.eth"] {
        let (status, shown) = admin.get(&format!("/admin/identities/{id}")).await;
        assert_eq!((status, &shown), (StatusCode::OK, &created), "{id}");
    }
    let (status, shown) = admin.get("/admin/identities/matrix:%40bob%3Aexample.org").await;
    assert_eq!((status, &shown), (StatusCode::OK, &matrix));

    // Paging, in name order.
    for id in 1..=5 {
        admin.create("telegram", &id.to_string()).await;
    }
    let (status, page) = admin.get("/admin/identities?page=2&perPage=3").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["page"].as_u64(), page["perPage"].as_u64(), page["total"].as_u64()),
        (Some(2), Some(3), Some(7))
    );
    let names: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    // Byte order: bob-…mx, tg-1., tg-12345. make page 1 ('.' sorts before the digits).
    assert_eq!(
        names,
        ["tg-2.tg.bridge.example.eth", "tg-3.tg.bridge.example.eth", "tg-4.tg.bridge.example.eth"]
    );
    let (_, last) = admin.get("/admin/identities?page=3&perPage=3").await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    let (_, beyond) = admin.get("/admin/identities?page=9").await;
    assert_eq!(beyond["items"], json!([]));

    // Disable and enable.
    let (status, disabled) = admin.post("/admin/identities/telegram:12345/disable", None).await;
    assert_eq!((status, disabled["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    assert!(disabled["disabledAt"].as_i64().is_some());
    let (_, profile) = admin.get("/admin/identities/telegram:12345/profile").await;
    assert_eq!(profile["published"], false);
    let (_, enabled) = admin.post("/admin/identities/telegram:12345/enable", None).await;
    assert_eq!((enabled["enabled"].as_bool(), &enabled["disabledAt"]), (Some(true), &Value::Null));

    // Rotation: a new wallet, so a new address, and a profile signed by it.
    let (status, rotated) = admin.post("/admin/identities/telegram:12345/rotate", None).await;
    assert_eq!((status, rotated["keyVersion"].as_u64()), (StatusCode::OK, Some(2)));
    let new_address: Address = rotated["address"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_address, first_address);
    let (_, profile) = admin.get("/admin/identities/telegram:12345/profile").await;
    assert_eq!((profile["keyVersion"].as_u64(), profile["published"].as_bool()), (Some(2), Some(true)));
    let signed = SignedUserProfile::from_value(profile["profile"].clone()).unwrap();
    signed.verify_against_address(&new_address).unwrap();
    assert!(signed.verify_against_address(&first_address).is_err());
    assert_eq!(profile["record"], signed.to_text_record());
    // The old key is kept to open envelopes in flight; the new one signs.
    let name = EnsName::parse("tg-12345.tg.bridge.example.eth").unwrap();
    let vault = &node.node.names().vault;
    let versions: Vec<(u32, Address)> =
        vault.opening_keys(&name).await.unwrap().iter().map(|k| (k.version(), k.address())).collect();
    assert_eq!(versions, [(2, new_address), (1, first_address)]);
    assert_eq!(vault.current_keys(&name).await.unwrap().address(), new_address);

    // Conversations: the senders of the envelopes stored for it.
    for (sender, hash) in [("alice.eth", 1), ("alice.eth", 2), ("carol.eth", 3)] {
        node.node
            .store()
            .insert_envelope(NewEnvelope {
                receiver: name.clone(),
                sender: EnsName::from_normalized(sender).unwrap(),
                message_hash: format!("0x{hash:064x}").parse().unwrap(),
                envelope: "{}".to_owned(),
                received_at_ms: if sender == "carol.eth" { 10 } else { 5 },
                expires_at_ms: None,
            })
            .await
            .unwrap();
    }
    let (status, conversations) = admin.get("/admin/identities/telegram:12345/conversations").await;
    assert_eq!(status, StatusCode::OK, "{conversations}");
    assert_eq!(
        conversations["conversations"],
        json!([
            {"counterparty": "carol.eth", "envelopes": 1, "lastReceivedAt": 10},
            {"counterparty": "alice.eth", "envelopes": 2, "lastReceivedAt": 5},
        ])
    );

    // Delete: gone, with its keys.
    let (status, deleted) = admin.request(Method::DELETE, "/admin/identities/telegram:12345", None).await;
    assert_eq!((status, deleted["name"].as_str()), (StatusCode::OK, Some(name.as_str())));
    let (status, body) = admin.get("/admin/identities/telegram:12345").await;
    assert_eq!((status, error_of(&body).0), (StatusCode::NOT_FOUND, "not_found"));
    assert!(vault.opening_keys(&name).await.is_err());
    // The user can get a new identity, with a fresh wallet.
    let again = admin.create("telegram", "12345").await;
    assert_eq!(again["keyVersion"], 1);
    assert_ne!(again["address"], created["address"]);
}

#[tokio::test]
async fn bad_requests_say_what_was_wrong() {
    let node = node_on(None).await;
    let admin = Admin { node: &node };
    let creates = [
        (json!({"network": "irc", "userId": "x"}), "unknown network \"irc\""),
        (json!({"userId": "1"}), "missing \"network\""),
        (json!({"network": "telegram"}), "missing \"userId\""),
        (json!({"network": "telegram", "userId": "0123"}), "not a Telegram user id"),
        (json!({"network": "telegram", "userId": -5}), "not a Telegram user id"),
        (json!({"network": "matrix", "userId": "bob"}), "does not start with @"),
        (json!({"network": "matrix", "userId": 5}), "missing \"userId\""),
        (json!({"network": "matrix", "userId": format!("@{}:x", "a".repeat(300))}), "longer than 255 bytes"),
    ];
    for (body, needle) in creates {
        let (status, answer) = admin.post("/admin/identities", Some(body.clone())).await;
        assert_eq!((status, error_of(&answer).0), (StatusCode::BAD_REQUEST, "invalid_request"), "{body}");
        assert!(error_of(&answer).1.contains(needle), "{body}: {answer}");
    }
    let response = node
        .client
        .post(node.url("/admin/identities"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&response.json::<Value>().await.unwrap()).1.contains("not JSON"));
    let response = node
        .client
        .post(node.url("/admin/identities"))
        .bearer_auth(TOKEN)
        .body("x".repeat(dm3_bridge::admin::custody::PROFILE_BODY_LIMIT + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    for (path, status, needle) in [
        ("/admin/identities?page=0", StatusCode::BAD_REQUEST, "pages start at 1"),
        ("/admin/identities?perPage=5000", StatusCode::BAD_REQUEST, "1 to 1000 per page"),
        ("/admin/identities?page=x", StatusCode::BAD_REQUEST, "not a whole number"),
        ("/admin/identities?sort=name", StatusCode::BAD_REQUEST, "unknown query parameter"),
        ("/admin/identities/Not%20A%20Name", StatusCode::BAD_REQUEST, "neither an identity name"),
        ("/admin/identities/telegram:abc", StatusCode::BAD_REQUEST, "not a Telegram user id"),
        ("/admin/identities/irc:bob", StatusCode::BAD_REQUEST, "unknown network"),
        ("/admin/identities/tg-9.tg.bridge.example.eth", StatusCode::NOT_FOUND, "no identity tg-9"),
        ("/admin/identities/%FF%FE", StatusCode::BAD_REQUEST, "unreadable"),
    ] {
        let (answer_status, answer) = admin.get(path).await;
        assert_eq!(answer_status, status, "{path}: {answer}");
        assert!(error_of(&answer).1.contains(needle), "{path}: {answer}");
    }
    for route in ["disable", "enable", "rotate"] {
        let (status, answer) = admin.post(&format!("/admin/identities/telegram:77/{route}"), None).await;
        assert_eq!((status, error_of(&answer).0), (StatusCode::NOT_FOUND, "not_found"), "{route}");
    }

    // No parent configured: identities are off, and the error says so.
    let off = start_names_node(NamesNode { parent: Some(String::new()), ..NamesNode::default() }).await;
    let (status, answer) = Admin { node: &off }
        .post("/admin/identities", Some(json!({"network": "telegram", "userId": "1"})))
        .await;
    assert_eq!((status, error_of(&answer).0), (StatusCode::CONFLICT, "identities_disabled"));
    assert!(error_of(&answer).1.contains("identities.parent"));
}

/// Keys are sealed at rest: neither the database file nor any API answer holds a secret.
#[tokio::test]
async fn secrets_stay_sealed_and_out_of_answers() {
    let node = node_on(None).await;
    let admin = Admin { node: &node };
    let mut answers = String::new();
    let created = admin.create("matrix", "@carol:example.org").await;
    let name = EnsName::parse(created["name"].as_str().unwrap()).unwrap();
    for path in ["", "/profile", "/conversations"] {
        answers.push_str(&admin.get(&format!("/admin/identities/{name}{path}")).await.1.to_string());
    }
    answers.push_str(&admin.get("/admin/identities").await.1.to_string());
    answers.push_str(&admin.get("/admin/gateway").await.1.to_string());
    let keys = node.node.names().vault.current_keys(&name).await.unwrap();
    let wallet = keys.wallet().secret_bytes();
    let secrets = [
        hex_encode(wallet.as_ref())[2..].to_owned(),
        keys.profile_keys().encryption.secret_b64().to_string(),
        keys.profile_keys().signing.secret_b64().to_string(),
    ];
    for secret in &secrets {
        assert!(!answers.contains(secret.as_str()), "an API answer contains a secret");
    }
    // The SQLite files (database and WAL) do not contain the wallet secret in the clear.
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(node.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("sqlite") {
            on_disk.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(on_disk.windows(32).all(|w| w != wallet.as_ref()), "the wallet secret is on disk in the clear");
    assert!(!format!("{keys:?}").contains(&secrets[0]));
}

/// A master key that does not open the gateway signer or the identity keys stops the node.
#[tokio::test]
async fn a_wrong_master_key_stops_the_node_with_the_reason() {
    let node = node_on(None).await;
    Admin { node: &node }.create("telegram", "1").await;
    let config: Config = node.config.clone();
    let TestNode { node: running, dir, .. } = node;
    running.shutdown().await.unwrap();

    // The operator replaced master.key (and re-made the node keys with it), keeping the data.
    let other = MasterKey::generate().unwrap();
    let env = vec![("DM3_BRIDGE_MASTER_KEY".to_owned(), other.to_base64().to_string())];
    std::fs::remove_file(dir.path().join("node-keys.sealed")).unwrap();
    NodeKeys::generate().unwrap().write_new_file(&other, &dir.path().join("node-keys.sealed")).unwrap();
    let error = Node::start(&config, &env, support::node::StubProtocol::factory(std::time::Duration::ZERO))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("master key does not open the sealed gateway signer"), "{error}");

    // Without the signer file (it would be made again), the identity keys still refuse.
    std::fs::remove_file(dir.path().join("gateway-signer.sealed")).unwrap();
    let error = Node::start(&config, &env, support::node::StubProtocol::factory(std::time::Duration::ZERO))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("master key does not open the sealed keys of tg-1.tg.bridge.example.eth"),
        "{error}"
    );

    // The same check guards the CLI's NameService.
    let store = dm3_bridge::store::Store::open(&config.database_url(), &Default::default()).await.unwrap();
    let keys = NodeKeys::read_file(&other, &dir.path().join("node-keys.sealed")).unwrap();
    let result = NameService::open(&config, Arc::new(other), store, &keys).await;
    assert!(result.err().unwrap().to_string().contains("wrong master key"));
}

fn cli(config: &std::path::Path, args: &[&str]) -> (bool, Value, String) {
    cli_of("identity", config, args)
}

fn cli_of(command: &str, config: &std::path::Path, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dm3-bridge"))
        .env("DM3_BRIDGE_IDENTITIES__PARENT", PARENT)
        .arg("--config")
        .arg(config)
        .arg(command)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.success(), value, String::from_utf8_lossy(&output.stderr).into_owned())
}

// Multi-threaded: `cli` blocks its thread while the CLI process runs, and the node must go on
// meanwhile (a write of its own may hold SQLite's write lock that the CLI waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_offers_the_same_operations() {
    let node = node_on(None).await;
    let config = node.dir.path().join("config.toml");
    let admin = Admin { node: &node };

    let (ok, created, err) =
        cli(&config, &["create", "--network", "matrix", "--user-id", "@Dave:example.org"]);
    assert!(ok, "{err}");
    assert_eq!(created["name"], "-44ave-sexample-porg.mx.bridge.example.eth");
    // The running node sees what the CLI wrote, and vice versa.
    let (status, shown) = admin.get("/admin/identities/matrix:@Dave:example.org").await;
    assert_eq!((status, &shown), (StatusCode::OK, &created));
    admin.create("telegram", "42").await;

    let (ok, page, _) = cli(&config, &["list", "--page", "1", "--per-page", "1"]);
    assert!(ok);
    assert_eq!((page["total"].as_u64(), page["items"].as_array().map(Vec::len)), (Some(2), Some(1)));
    let (_, shown, _) = cli(&config, &["show", "telegram:42"]);
    assert_eq!(shown["name"], "tg-42.tg.bridge.example.eth");
    let (_, disabled, _) = cli(&config, &["disable", "telegram:42"]);
    assert_eq!(disabled["enabled"], false);
    let (_, enabled, _) = cli(&config, &["enable", "tg-42.tg.bridge.example.eth"]);
    assert_eq!(enabled["enabled"], true);
    let (_, rotated, _) = cli(&config, &["rotate", "telegram:42"]);
    assert_eq!(rotated["keyVersion"], 2);
    let (_, profile, _) = cli(&config, &["profile", "telegram:42"]);
    assert_eq!(profile["address"], rotated["address"]);
    let (_, conversations, _) = cli(&config, &["conversations", "telegram:42"]);
    assert_eq!(conversations["conversations"], json!([]));
    let (_, gateway, _) = cli(&config, &["gateway"]);
    assert_eq!(gateway, admin.get("/admin/gateway").await.1);
    assert!(gateway["urlTemplate"].as_str().unwrap().ends_with("/ccip/{sender}/{data}.json"));

    let (ok, _, err) = cli(&config, &["delete", "telegram:42"]);
    assert!(!ok && err.contains("add --yes"), "{err}");
    let (ok, _, _) = cli(&config, &["delete", "telegram:42", "--yes"]);
    assert!(ok);
    let (ok, _, err) = cli(&config, &["show", "telegram:42"]);
    assert!(!ok && err.contains("no identity telegram:42"), "{err}");
    let (ok, _, err) = cli(&config, &["create", "--network", "irc", "--user-id", "x"]);
    assert!(!ok && err.contains("unknown network"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_are_listed_and_unlinked_by_api_and_cli_on_sqlite() {
    portals_listed_and_unlinked(node_on(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_are_listed_and_unlinked_by_api_and_cli_on_postgres() {
    let db = TestDb::postgres().await;
    portals_listed_and_unlinked(node_on(Some(db.url.clone())).await).await;
}

/// What an admin sees of portals and how one is unlinked; the stand-in leaving the room is
/// shown on Synapse in `tests/portal_lifecycle.rs`.
async fn portals_listed_and_unlinked(node: TestNode) {
    let store = node.node.store();
    let portal = |room: &str, remote: &str| NewPortal {
        network: NetworkId::new("matrix").unwrap(),
        conversation: ConversationId::new(room).unwrap(),
        local_name: EnsName::parse("bob.mx.bridge.example.eth").unwrap(),
        remote_name: EnsName::parse(remote).unwrap(),
        consent: dm3_bridge::store::Consent::Given,
    };
    let (first, _) = store.insert_or_get_portal(&portal("!one:hs", "alice.eth"), 1).await.unwrap();
    let (second, _) = store.insert_or_get_portal(&portal("!two:hs", "carol.eth"), 2).await.unwrap();
    let suspended = PortalState::Suspended { reason: "@eve:hs joined".to_owned() };
    store.set_portal_state(second.id, &suspended, 3).await.unwrap();
    let admin = Admin { node: &node };

    let (status, page) = admin.get("/admin/portals?network=matrix&limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["portals"][0]["conversation"], "!one:hs");
    assert_eq!(page["portals"][0]["state"], "live");
    assert_eq!(page["next"], first.id);
    let (_, rest) = admin.get(&format!("/admin/portals?after={}", first.id)).await;
    assert_eq!(rest["portals"][0]["state"], "suspended");
    assert_eq!(rest["portals"][0]["reason"], "@eve:hs joined");
    assert_eq!(rest["portals"][0]["remoteName"], "carol.eth");
    assert_eq!(rest["next"], Value::Null, "the last page");
    let (_, none) = admin.get("/admin/portals?network=telegram").await;
    assert_eq!(none["portals"], json!([]));
    let (status, shown) = admin.get(&format!("/admin/portals/{}", first.id)).await;
    assert_eq!((status, shown["localName"].as_str()), (StatusCode::OK, Some("bob.mx.bridge.example.eth")));
    for bad in ["/admin/portals?limit=x", "/admin/portals?sort=id", "/admin/portals/abc"] {
        let (status, body) = admin.get(bad).await;
        assert_eq!(
            (status, error_of(&body).0),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}: {body}"
        );
    }
    let (status, body) = admin.get("/admin/portals/999999").await;
    assert_eq!((status, error_of(&body).0), (StatusCode::NOT_FOUND, "not_found"));

    // Unlinked through the API: gone, and a job has the stand-in leave the room.
    let response = node
        .client
        .delete(node.url(&format!("/admin/portals/{}", first.id)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(store.portal(first.id).await.unwrap().is_none());
    let job =
        store.get_job(QueueName::Outbox, &format!("unlink:{}:!one:hs", first.id)).await.unwrap().unwrap();
    assert_eq!(job.conversation, "matrix:!one:hs", "ordered after the room's own events");
    let (status, _) = admin.get(&format!("/admin/portals/{}", first.id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The CLI: the same views, on the same database, next to the running node (its config file
    // names the SQLite database; the PostgreSQL URL of the other run is the node's own).
    if node.config.database.url.is_some() {
        return;
    }
    let config = node.dir.path().join("config.toml");
    let (ok, listed, err) = cli_of("portal", &config, &["list", "--network", "matrix"]);
    assert!(ok, "{err}");
    assert_eq!(listed, admin.get("/admin/portals?network=matrix").await.1);
    let (_, shown, _) = cli_of("portal", &config, &["show", &second.id.to_string()]);
    assert_eq!(shown["state"], "suspended");
    let (ok, _, _) = cli_of("portal", &config, &["unlink", &second.id.to_string()]);
    assert!(ok);
    assert!(store.portal(second.id).await.unwrap().is_none());
    let (ok, _, err) = cli_of("portal", &config, &["unlink", &second.id.to_string()]);
    assert!(!ok && err.contains(&format!("no portal {}", second.id)), "{err}");
}

/// `dm3-bridge job …`: the admin API's job views and operations on the node's database, next
/// to the running node, whose workers fail the two unreadable jobs queued here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_retries_and_drops_jobs() {
    let node = node_on(None).await;
    let store = node.node.store();
    let job = |key: &str| NewJob {
        queue: QueueName::Inbox,
        idempotency_key: key.to_owned(),
        conversation: format!("tg-1.tg.bridge.example.eth:{key}.eth"),
        payload: r#"{"kind":"envelope"}"#.to_owned(),
        expires_at_ms: None,
    };
    let now = dm3_bridge::clock::now_ms();
    let mut ids = Vec::new();
    for key in ["retried", "dropped"] {
        store.enqueue_job(&job(key), now).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let record = store.get_job(QueueName::Inbox, key).await.unwrap().unwrap();
            if record.state == dm3_bridge::store::JobState::Failed {
                ids.push(record.id.get());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not failed: {record:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let (retried, dropped) = (ids[0].to_string(), ids[1].to_string());
    let config = node.dir.path().join("config.toml");

    let (ok, listed, err) = cli_of("job", &config, &["list", "--state", "failed"]);
    assert!(ok, "{err}");
    assert_eq!(listed, Admin { node: &node }.get("/admin/jobs?state=failed").await.1, "the API's view");
    assert!(listed["jobs"][0]["lastError"].as_str().unwrap().contains("unreadable"), "{listed}");
    let (_, shown, _) = cli_of("job", &config, &["show", &retried]);
    assert_eq!((shown["status"].as_str(), shown["kind"].as_str()), (Some("failed"), Some("envelope")));
    let (ok, after, err) = cli_of("job", &config, &["retry", &retried]);
    assert!(ok, "{err}");
    assert_eq!((after["status"].as_str(), after["attempts"].as_u64()), (Some("pending"), Some(0)));
    let (ok, gone, err) = cli_of("job", &config, &["drop", &dropped]);
    assert!(ok && gone["id"].as_i64() == Some(ids[1]), "{err}");
    for (args, refusal) in [
        (vec!["show", dropped.as_str()], format!("no job {dropped}")),
        (vec!["retry", dropped.as_str()], format!("no job {dropped}")),
        (vec!["list", "--state", "running"], "unknown job state".to_owned()),
        (vec!["list", "--limit", "100000"], "limit".to_owned()),
    ] {
        let (ok, _, err) = cli_of("job", &config, &args);
        assert!(!ok && err.contains(&refusal), "{args:?}: {err}");
    }
}

#[test]
fn identities_and_admin_settings_come_from_file_or_environment() {
    let text = "[node]\nname = \"relay.example.eth\"\npublic_url = \"https://relay.example.org\"\n\
                [identities]\nparent = \"bridge.example.eth\"\n";
    let env = [
        ("DM3_BRIDGE_ADMIN__TOKEN", "environment-token-0123456789"),
        ("DM3_BRIDGE_IDENTITIES__ANSWER_TTL_SECS", "120"),
        ("DM3_BRIDGE_IDENTITIES__MATRIX_LABEL", "matrix"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let config = Config::from_toml(text, &std::env::temp_dir().join("config.toml"), env).unwrap();
    assert_eq!(config.identities.parent, PARENT);
    assert_eq!((config.identities.answer_ttl_secs, config.identities.matrix_label.as_str()), (120, "matrix"));
    assert_eq!(config.admin.token.as_ref().map(|t| t.expose()), Some("environment-token-0123456789"));
    assert!(!format!("{config:?}").contains("environment-token"), "the token is printed by Debug");
    assert!(config.problems().is_empty(), "{:?}", config.problems());

    let short = [("DM3_BRIDGE_ADMIN__TOKEN".to_owned(), "short-secret".to_owned())];
    let config = Config::from_toml(text, &std::env::temp_dir().join("config.toml"), short).unwrap();
    let problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("admin.token: is shorter than 16") && !problems[0].contains("short-secret")
    );
    let bad = Config::from_toml(
        "[node]\nname = \"relay.example.eth\"\npublic_url = \"https://relay.example.org\"\n[identities]\nparent = \"Bridge.eth\"\n",
        &std::env::temp_dir().join("config.toml"),
        [],
    )
    .unwrap();
    assert_eq!(bad.problems()[0].key, "identities.parent");
}

/// A user's own wallet and the profile it signed, naming `ds` (docs/gateway.md section 2),
/// written to a file as `dm3-bridge identity … --profile` reads it.
fn own_wallet(dir: &std::path::Path, file: &str, ds: &str) -> (String, std::path::PathBuf) {
    let wallet = dm3::crypto::eth::Wallet::generate();
    let keys = dm3::keys::ProfileKeys::from_wallet(&wallet, "0x123");
    let signed = dm3::profile::UserProfile::from_keys(&keys, [ds]).sign(&wallet);
    let path = dir.join(file);
    std::fs::write(&path, signed.canonical()).unwrap();
    (dm3::crypto::eth::checksum(&wallet.address()), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_switches_custody_after_the_inbox_drained() {
    let node = node_on(None).await;
    let config = node.dir.path().join("config.toml");
    let store = node.node.store();
    let ds = node.config.node.name.clone();
    let (address, profile) = own_wallet(node.dir.path(), "erin.json", &ds);
    let profile = profile.to_str().unwrap();
    let (_, stranger_profile) = own_wallet(node.dir.path(), "stranger.json", &ds);

    let (ok, created, err) = cli(
        &config,
        &[
            "create",
            "--network",
            "matrix",
            "--user-id",
            "@erin:example.org",
            "--address",
            &address,
            "--profile",
            profile,
        ],
    );
    assert!(ok, "{err}");
    assert_eq!((&created["custody"], &created["address"]), (&json!("self"), &json!(address)));
    let (ok, _, err) = cli(
        &config,
        &["create", "--network", "matrix", "--user-id", "@x:example.org", "--address", &address],
    );
    assert!(!ok && err.contains("--profile"), "half a wallet: {err}");
    let stranger = stranger_profile.to_str().unwrap();
    let (ok, _, err) = cli(
        &config,
        &["self-custody", "matrix:@erin:example.org", "--address", &address, "--profile", stranger],
    );
    assert!(!ok && err.contains("not signed by"), "someone else's profile for Erin's wallet: {err}");

    // A custodial identity with a message waiting in the inbox (due in an hour, so no worker
    // takes it): the switch waits for it, and writes nothing meanwhile.
    let (_, custodial, _) = cli(&config, &["create", "--network", "telegram", "--user-id", "7"]);
    let name = custodial["name"].as_str().unwrap().to_owned();
    let waiting = NewJob {
        queue: QueueName::Inbox,
        idempotency_key: "waiting".to_owned(),
        conversation: format!("{name}:alice.eth"),
        payload: r#"{"kind":"envelope"}"#.to_owned(),
        expires_at_ms: None,
    };
    store.enqueue_job(&waiting, dm3_bridge::clock::now_ms() + 3_600_000).await.unwrap();
    let (ok, _, err) =
        cli(&config, &["self-custody", "telegram:7", "--address", &address, "--profile", profile]);
    assert!(!ok && err.contains("1 message(s) to tg-7.tg.bridge.example.eth wait"), "{err}");
    let keys = store.identity_keys(&EnsName::parse(&name).unwrap()).await.unwrap();
    assert_eq!(keys.len(), 1, "refused, so the keys are still there");

    let job = store.get_job(QueueName::Inbox, "waiting").await.unwrap().unwrap();
    let (status, _) =
        Admin { node: &node }.request(Method::DELETE, &format!("/admin/jobs/{}", job.id.get()), None).await;
    assert_eq!(status, StatusCode::OK);
    let (ok, switched, err) =
        cli(&config, &["self-custody", "telegram:7", "--address", &address, "--profile", profile]);
    assert!(ok, "{err}");
    assert_eq!((&switched["custody"], switched.get("keyVersion")), (&json!("self"), None));
    assert!(store.identity_keys(&EnsName::parse(&name).unwrap()).await.unwrap().is_empty());
    let (ok, back, err) = cli(&config, &["custodial", "tg-7.tg.bridge.example.eth"]);
    assert!(ok, "{err}");
    assert_eq!((&back["custody"], &back["keyVersion"]), (&json!("custodial"), &json!(2)));
    let (_, shown) = Admin { node: &node }.get("/admin/identities/telegram:7").await;
    assert_eq!(shown, back, "the running node sees what the CLI wrote");
}
