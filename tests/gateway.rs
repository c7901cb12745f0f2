//! The CCIP-read gateway of a real node: signed answers for its identities and its own name,
//! "not found" for everything else, clear 400s for malformed requests, and no panic on any
//! calldata (a property test drives the handler with random bytes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolValue, sol};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::ccip::{GatewayResponse, Query, ResolveRequest};
use dm3::data_uri::decode_json;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::encoding::hex_encode;
use dm3::ens::{EnsName, namehash};
use dm3::profile::SignedUserProfile;
use dm3_bridge::gateway::{Gateway, GatewayError, GatewaySigner};
use dm3_bridge::identities::{IdentityVault, LocalNames, NameScheme, NetworkUserId};
use dm3_bridge::store::StoreOptions;
use dm3_bridge::vault::MasterKey;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::names::{Admin, NamesNode, PARENT, start_names_node};
use support::node::TestNode;

sol! {
    function resolve(bytes name, bytes data) external view returns (bytes);
}

const TTL: u64 = 600;

fn resolver() -> Address {
    Address::repeat_byte(0x42)
}

fn name(text: &str) -> EnsName {
    EnsName::parse(text).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn calldata(name_text: &str, query: Query, context: Option<Vec<u8>>) -> Vec<u8> {
    ResolveRequest::new(name(name_text), query, context).unwrap().encode()
}

async fn ask(node: &TestNode, calldata: &[u8]) -> (StatusCode, String) {
    let url = node.url(&format!("/ccip/{}/{}.json", hex_encode(resolver().as_slice()), hex_encode(calldata)));
    let response = node.client.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The verified `result` of a gateway answer, checked as the resolver contract checks it.
async fn result_of(node: &TestNode, signer: Address, calldata: &[u8]) -> Vec<u8> {
    let (status, body) = ask(node, calldata).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = GatewayResponse::from_json_body(&body).unwrap();
    response.verify(&resolver(), calldata, &[signer], now()).unwrap();
    let ttl = response.valid_until.saturating_sub(now());
    assert!((TTL - 5..=TTL + 5).contains(&ttl), "validUntil is now + {ttl} s, not now + {TTL} s");
    response.result
}

async fn signer(admin: &Admin<'_>) -> Address {
    let (status, gateway) = admin.get("/admin/gateway").await;
    assert_eq!(status, StatusCode::OK, "{gateway}");
    gateway["signer"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn identities_resolve_to_signed_profiles_and_addresses() {
    let node = start_names_node(NamesNode::default()).await;
    let admin = Admin { node: &node };
    let signer = signer(&admin).await;
    let identity = admin.create("matrix", "@Bob_x:example.org").await;
    let full = identity["name"].as_str().unwrap();
    assert_eq!(full, "-42ob-ux-sexample-porg.mx.bridge.example.eth");
    let address: Address = identity["address"].as_str().unwrap().parse().unwrap();

    // text(network.dm3.profile): abi.encode(string) of the data: URI, signed.
    let text = calldata(full, Query::text(&name(full), "network.dm3.profile"), None);
    let record = String::abi_decode(&result_of(&node, signer, &text).await).unwrap();
    let (_, published) = admin.get(&format!("/admin/identities/{full}/profile")).await;
    assert_eq!(record, published["record"].as_str().unwrap());
    let profile = SignedUserProfile::from_value(decode_json(&record).unwrap()).unwrap();
    profile.verify_against_address(&address).unwrap();
    assert_eq!(profile.profile().delivery_services(), ["relay.example.eth"]);

    // addr: a 32-byte word for resolve() (the ENS design), raw 20 bytes for resolveWithContext (DM3's).
    let word = result_of(&node, signer, &calldata(full, Query::addr(&name(full)), None)).await;
    assert_eq!(Address::abi_decode(&word).unwrap(), address);
    let context = Some(Address::repeat_byte(7).to_vec());
    let raw = result_of(&node, signer, &calldata(full, Query::addr(&name(full)), context.clone())).await;
    assert_eq!(raw, address.to_vec());
    let with_context = calldata(full, Query::text(&name(full), "network.dm3.profile"), context);
    assert_eq!(String::abi_decode(&result_of(&node, signer, &with_context).await).unwrap(), record);

    // ENSIP-9 addr(node, 60) is the same address; other coins are not set.
    let coin =
        |coin_type: u64| Query::AddrCoin { node: namehash(&name(full)), coin_type: U256::from(coin_type) };
    let eth = result_of(&node, signer, &calldata(full, coin(60), None)).await;
    assert_eq!(Bytes::abi_decode(&eth).unwrap().as_ref(), address.as_slice());
    assert!(result_of(&node, signer, &calldata(full, coin(0), None)).await.is_empty());

    // The path without .json, and POST {sender, data}, give the same record.
    let url = node.url(&format!("/ccip/{}/{}", hex_encode(resolver().as_slice()), hex_encode(&text)));
    let body = node.client.get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(GatewayResponse::from_json_body(&body).unwrap().result, String::abi_encode(&record));
    let post = json!({"data": hex_encode(&text), "sender": hex_encode(resolver().as_slice())});
    let response = node.client.post(node.url("/ccip")).json(&post).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = GatewayResponse::from_json_body(&response.text().await.unwrap()).unwrap();
    response.verify(&resolver(), &text, &[signer], now()).unwrap();
    assert_eq!(response.result, String::abi_encode(&record));
}

#[tokio::test]
async fn unknown_disabled_and_foreign_names_are_not_found() {
    let node = start_names_node(NamesNode::default()).await;
    let admin = Admin { node: &node };
    let signer = signer(&admin).await;
    let full = admin.create("telegram", "12345").await["name"].as_str().unwrap().to_owned();
    assert_eq!(full, "tg-12345.tg.bridge.example.eth");
    let profile_of = |n: &str| calldata(n, Query::text(&name(n), "network.dm3.profile"), None);
    let addr_of = |n: &str| calldata(n, Query::addr(&name(n)), None);

    // A Telegram username's alias is answered only by a node that runs Telegram, which this one
    // does not (docs/names.md section 8; `tests/bridge_telegram_alias.rs` resolves one).
    for absent in [
        "tg-999.tg.bridge.example.eth",
        "alice.eth",
        PARENT,
        "tg.bridge.example.eth",
        "x.bridge.example.eth",
        "u-carol-x.tg.bridge.example.eth",
    ] {
        assert!(result_of(&node, signer, &profile_of(absent)).await.is_empty(), "{absent}");
        assert!(result_of(&node, signer, &addr_of(absent)).await.is_empty(), "{absent}");
    }
    // Only the profile key is published.
    let avatar = calldata(&full, Query::text(&name(&full), "avatar"), None);
    assert!(result_of(&node, signer, &avatar).await.is_empty());
    // The node's own name has no user profile, and users have no delivery-service record.
    let ds_of_user = calldata(&full, Query::text(&name(&full), "network.dm3.deliveryService"), None);
    assert!(result_of(&node, signer, &ds_of_user).await.is_empty());

    // Disabled: not found; enabled again: back; deleted: gone.
    assert!(!result_of(&node, signer, &profile_of(&full)).await.is_empty());
    let (status, _) = admin.post(&format!("/admin/identities/{full}/disable"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(result_of(&node, signer, &profile_of(&full)).await.is_empty());
    assert!(result_of(&node, signer, &addr_of(&full)).await.is_empty());
    admin.post("/admin/identities/telegram:12345/enable", None).await;
    assert!(!result_of(&node, signer, &addr_of(&full)).await.is_empty());
    let (status, _) =
        admin.request(reqwest::Method::DELETE, &format!("/admin/identities/{full}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(result_of(&node, signer, &addr_of(&full)).await.is_empty());
}

#[tokio::test]
async fn the_node_name_publishes_its_delivery_service_profile() {
    let node = start_names_node(NamesNode::default()).await;
    let admin = Admin { node: &node };
    let signer = signer(&admin).await;
    let own = "relay.example.eth";
    let query = calldata(own, Query::text(&name(own), "network.dm3.deliveryService"), None);
    let record = String::abi_decode(&result_of(&node, signer, &query).await).unwrap();
    let profile = DeliveryServiceProfile::from_value(decode_json(&record).unwrap()).unwrap();
    let keys = node.node.node_keys();
    assert_eq!(profile.public_encryption_key(), STANDARD.encode(keys.encryption_public_key().as_bytes()));
    assert_eq!(profile.public_signing_key(), STANDARD.encode(keys.signing_public_key().as_bytes()));
    assert_eq!(profile.url(), node.config.node.public_url);
    let profile_query = calldata(own, Query::text(&name(own), "network.dm3.profile"), None);
    assert!(result_of(&node, signer, &profile_query).await.is_empty());
}

/// A `resolve(bytes,bytes)` call with raw (possibly invalid) DNS bytes and record call.
fn raw_resolve(dns: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
    resolveCall { name: dns.into(), data: data.into() }.abi_encode()
}

#[tokio::test]
async fn malformed_requests_get_clear_400s() {
    let node = start_names_node(NamesNode::default()).await;
    let sender = hex_encode(resolver().as_slice());
    let good = calldata("tg-1.tg.bridge.example.eth", Query::addr(&name("tg-1.tg.bridge.example.eth")), None);
    let mut huge_dns = Vec::new();
    for _ in 0..5 {
        huge_dns.push(63);
        huge_dns.extend([b'a'; 63]);
    }
    huge_dns.push(0);
    let contenthash = [&[0xbc, 0x1c, 0x58, 0xd1][..], namehash(&name(PARENT)).as_bytes()].concat();
    let mismatch = raw_resolve(
        dm3::ens::dns_encode(&name("tg-1.tg.bridge.example.eth")),
        Query::addr(&name("tg-2.tg.bridge.example.eth")).encode(),
    );
    let label = |n: &str| calldata(n, Query::addr(&name(n)), None);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (format!("/ccip/0x1234/{}", hex_encode(&good)), StatusCode::BAD_REQUEST, "resolver address"),
        (format!("/ccip/{sender}/nothex.json"), StatusCode::BAD_REQUEST, "not 0x-prefixed hex"),
        (format!("/ccip/{sender}/0x123.json"), StatusCode::BAD_REQUEST, "not 0x-prefixed hex"),
        (format!("/ccip/{sender}/0x12.json"), StatusCode::BAD_REQUEST, "shorter than a 4-byte selector"),
        (
            format!("/ccip/{sender}/0xdeadbeef00.json"),
            StatusCode::BAD_REQUEST,
            "neither resolve nor resolveWithContext",
        ),
        (format!("/ccip/{sender}/0x9061b923ff.json"), StatusCode::BAD_REQUEST, "malformed ABI"),
        (
            format!(
                "/ccip/{sender}/{}.json",
                hex_encode(&raw_resolve(huge_dns, Query::addr(&name(PARENT)).encode()))
            ),
            StatusCode::BAD_REQUEST,
            "DNS-encoded name is invalid",
        ),
        (
            format!(
                "/ccip/{sender}/{}.json",
                hex_encode(&raw_resolve(dm3::ens::dns_encode(&name(PARENT)), contenthash))
            ),
            StatusCode::BAD_REQUEST,
            "unsupported record query 0xbc1c58d1",
        ),
        (
            format!("/ccip/{sender}/{}.json", hex_encode(&mismatch)),
            StatusCode::BAD_REQUEST,
            "but the name hashes to",
        ),
        (
            format!("/ccip/{sender}/{}.json", hex_encode(&label("tg-0123.tg.bridge.example.eth"))),
            StatusCode::BAD_REQUEST,
            "not a valid identity name",
        ),
        (
            format!("/ccip/{sender}/{}.json", hex_encode(&label("u-carol-.tg.bridge.example.eth"))),
            StatusCode::BAD_REQUEST,
            "not a valid identity name",
        ),
        (
            format!("/ccip/{sender}/{}.json", hex_encode(&label("bob-x.mx.bridge.example.eth"))),
            StatusCode::BAD_REQUEST,
            "not a valid identity name",
        ),
        (
            format!("/ccip/{sender}/{}.json", hex_encode(&label("a.tg-1.tg.bridge.example.eth"))),
            StatusCode::BAD_REQUEST,
            "exactly one label",
        ),
        (
            format!("/ccip/{sender}/0x{}.json", "00".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ];
    for (path, status, needle) in cases {
        let response = node.client.get(node.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let message = body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}"));
        assert!(message.contains(needle), "{path}: {message:?} does not say {needle:?}");
    }

    let posts: Vec<(String, StatusCode, &str)> = vec![
        ("not json".to_owned(), StatusCode::BAD_REQUEST, "not JSON"),
        ("{\"data\": \"0x00\"}".to_owned(), StatusCode::BAD_REQUEST, "expected a JSON body"),
        (json!({"data": 1, "sender": sender}).to_string(), StatusCode::BAD_REQUEST, "expected a JSON body"),
        (
            json!({"data": "0xdeadbeef", "sender": sender}).to_string(),
            StatusCode::BAD_REQUEST,
            "neither resolve",
        ),
        ("x".repeat(100_000), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
    ];
    for (body, status, needle) in posts {
        let response = node.client.post(node.url("/ccip")).body(body.clone()).send().await.unwrap();
        assert_eq!(response.status(), status, "{}", &body[..body.len().min(60)]);
        let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(answer["message"].as_str().unwrap().contains(needle), "{answer}");
    }
}

/// The gateway without HTTP, over a SQLite store with one identity.
struct Direct {
    _db: TestDb,
    gateway: Gateway,
    runtime: tokio::runtime::Runtime,
}

fn direct() -> Direct {
    // Multi-threaded, so that the properties (run on their own threads) can share it.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let db = TestDb::sqlite();
    let gateway = runtime.block_on(async {
        let store = dm3_bridge::store::Store::open(&db.url, &StoreOptions::default()).await.unwrap();
        let scheme = NameScheme::new(PARENT, "tg", "mx").unwrap();
        let node_name = name("relay.example.eth");
        let vault = IdentityVault::new(
            store.clone(),
            Arc::new(MasterKey::generate().unwrap()),
            Some(scheme.clone()),
            node_name.clone(),
        );
        vault.create(NetworkUserId::parse("telegram".parse().unwrap(), "1").unwrap(), 0).await.unwrap();
        let ds = DeliveryServiceProfile::new("a", "b", "http://x");
        let names = LocalNames::new(vault, &ds);
        Gateway::new(names, Arc::new(GatewaySigner::generate()), TTL)
    });
    Direct { _db: db, gateway, runtime }
}

fn selectors() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![0x90, 0x61, 0xb9, 0x23], // resolve(bytes,bytes)
        resolveCall::SELECTOR.to_vec(),
        vec![0x25, 0x25, 0x3d, 0x7d], // not a resolve function
        vec![],
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Random calldata, and random tails behind real selectors, never panic: the handler either
    /// signs an answer or names what is wrong, and only well-formed requests are answered.
    #[test]
    fn random_calldata_gets_an_answer_or_an_error(selector in selectors(), tail in prop::collection::vec(any::<u8>(), 0..700)) {
        let d = direct_gateway();
        let calldata = [selector, tail].concat();
        let outcome = d.runtime.block_on(d.gateway.respond(resolver(), &calldata, 1_700_000_000));
        match outcome {
            Ok(response) => prop_assert!(ResolveRequest::decode(&calldata).is_ok() && response.valid_until == 1_700_000_000 + TTL),
            Err(GatewayError::Internal(e)) => prop_assert!(false, "internal error on input: {e}"),
            Err(GatewayError::InvalidName { .. }) => {}
            Err(_) => prop_assert!(ResolveRequest::decode(&calldata).is_err()),
        }
    }

    /// Well-formed requests for random names under the parent: answered or refused as invalid
    /// names, never an internal error.
    #[test]
    fn random_names_under_the_parent_get_an_answer_or_a_400(label in "[a-z0-9-]{1,40}", sub in prop::sample::select(vec!["tg", "mx", "xx"])) {
        let d = direct_gateway();
        let text = format!("{label}.{sub}.{PARENT}");
        if let Ok(parsed) = EnsName::parse(&text) {
            let calldata = ResolveRequest::new(parsed.clone(), Query::addr(&parsed), None).unwrap().encode();
            match d.runtime.block_on(d.gateway.respond(resolver(), &calldata, 0)) {
                Ok(_) | Err(GatewayError::InvalidName { .. }) => {}
                Err(other) => prop_assert!(false, "{text}: {other}"),
            }
        }
    }
}

/// One gateway for all cases of a property (starting a store per case would dominate).
fn direct_gateway() -> &'static Direct {
    static DIRECT: std::sync::OnceLock<Direct> = std::sync::OnceLock::new();
    DIRECT.get_or_init(direct)
}
