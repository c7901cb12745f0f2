//! End to end on a real chain: anvil, our ENS registry and OffchainResolver, and a node whose
//! CCIP-read gateway publishes its virtual identities.
//!
//! Set up as an operator would (docs/names.md): the parent name gets the OffchainResolver, the
//! resolver gets the node's gateway URL template and signer address (from `GET /admin/gateway`),
//! and identities are created through the admin API. Then, through the chain and the gateway:
//! - ethers 5.7.2 (`tests/contracts/resolve.js`) resolves each identity's profile and address;
//! - the reference `@dm3-org/dm3-lib-profile` (`interop/check-profile.js`) accepts the profile
//!   as valid for the name, and reads the node's delivery-service profile;
//! - the node's `Directory` verifies the same profiles, once through its own ENS client
//!   (ENSIP-10 + CCIP-read over anvil, as `[names] ens_rpc_url` configures it) and once through
//!   its own `LocalNames`, without the chain;
//! - tampered, replayed and expired gateway answers are rejected by the contract;
//! - rotation and disabling show on chain at once;
//! - self-custody identities (docs/gateway.md): one registered from a profile the user's wallet
//!   signed (made by the reference libraries), and one switched from custodial and back, resolve
//!   through the chain to the user's address and profile, which the reference accepts; no key of
//!   a self-custody identity stays in the database; profiles signed by another wallet or naming
//!   another delivery service are refused.
//!
//! The scenario runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use alloy_primitives::Address;
use alloy_sol_types::{SolCall, SolInterface, SolValue};
use anvil::{Anvil, Ens, IOffchainResolver};
use anyhow::{Context, anyhow, bail};
use dm3::ccip::{GatewayRequest, GatewayResponse, OffchainLookup, Query, gateway_request};
use dm3::crypto::eth::checksum;
use dm3::ens::{EnsName, dns_encode};
use dm3_bridge::config::{DatabaseUrl, NamesConfig};
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::names::directory::{Directory, NoLinks};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::names::{Admin, NamesNode, start_names_node};
use support::node::TestNode;

use IOffchainResolver::IOffchainResolverErrors as ResolverError;

const PARENT: &str = "bridge.test.eth";
const NODE_NAME: &str = "ds.bridge.test.eth";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_resolve_through_the_chain_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_resolve_through_the_chain_on_postgres() {
    let db = TestDb::postgres().await;
    scenario(Some(db.url.clone())).await;
}

/// Everything one chain and one node go through.
struct World {
    anvil: Anvil,
    ens: Ens,
    node: TestNode,
}

async fn setup(database: Option<DatabaseUrl>) -> World {
    let anvil = Anvil::start().await.unwrap();
    // The node must know the URL it is reached at before it starts: it publishes it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = start_names_node(NamesNode {
        parent: Some(PARENT.to_owned()),
        node_name: Some(NODE_NAME.to_owned()),
        database,
        listen: Some(format!("127.0.0.1:{port}")),
        public_url: Some(format!("http://127.0.0.1:{port}")),
        ..NamesNode::default()
    })
    .await;

    // The operator's steps: deploy the resolver, make it the parent's resolver, then register
    // the gateway URL and the signer address the node reports.
    let ens = Ens::deploy(&anvil, &["http://unset.invalid/{sender}/{data}.json"], &[]).await.unwrap();
    ens.use_offchain_resolver(PARENT).await.unwrap();
    let (_, gateway) = Admin { node: &node }.get("/admin/gateway").await;
    assert_eq!(gateway["parent"], PARENT);
    assert_eq!(
        gateway["subNames"],
        json!({"telegram": "tg.bridge.test.eth", "matrix": "mx.bridge.test.eth"})
    );
    ens.set_gateway_url(gateway["urlTemplate"].as_str().unwrap()).await.unwrap();
    ens.set_signer(gateway["signer"].as_str().unwrap().parse().unwrap(), true).await.unwrap();
    World { anvil, ens, node }
}

async fn scenario(database: Option<DatabaseUrl>) {
    let world = setup(database).await;
    let admin = Admin { node: &world.node };
    let telegram = admin.create("telegram", "12345").await;
    let matrix = admin.create("matrix", "@Bob_x:example.org").await;
    assert_eq!(matrix["name"], "-42ob-ux-sexample-porg.mx.bridge.test.eth");

    for identity in [&telegram, &matrix] {
        let name = identity["name"].as_str().unwrap();
        let address = identity["address"].as_str().unwrap();
        let (_, published) = admin.get(&format!("/admin/identities/{name}/profile")).await;

        // ethers 5.7.2 through registry → wildcard resolver → OffchainLookup → gateway → proof.
        let resolved = ethers_resolve(&world, name, &[]).await.unwrap();
        assert_eq!(resolved["address"], address, "{resolved}");
        assert_eq!(resolved["text"]["network.dm3.profile"], published["record"], "{resolved}");

        // The reference library accepts the profile for this name.
        let checked = reference_check(&world, name, Some(NODE_NAME)).await;
        assert_eq!(checked["valid"], true, "{checked}");
        assert_eq!(checked["address"], address);
        assert_eq!(checked["profile"], published["profile"]);
        assert_eq!(checked["deliveryService"]["url"], world.node.config.node.public_url);

        // The node's Directory: through the chain, and through its own tables.
        let dm3_name = EnsName::parse(name).unwrap();
        let via_chain = chain_directory(&world).user_profile(&dm3_name).await.unwrap().unwrap();
        let local = Directory::new(Arc::new(world.node.node.names().local_names.clone()), Arc::new(NoLinks));
        let via_tables = local.user_profile(&dm3_name).await.unwrap().unwrap();
        assert_eq!(via_chain, via_tables);
        assert_eq!(via_chain.address, address.parse::<Address>().unwrap());
        assert_eq!(via_chain.profile.to_value(), published["profile"]);
    }

    // The node's own delivery-service record, read by ethers and by the node's Directory.
    let own = ethers_resolve(&world, NODE_NAME, &["network.dm3.deliveryService"]).await.unwrap();
    let ds =
        chain_directory(&world).delivery_service(&EnsName::parse(NODE_NAME).unwrap()).await.unwrap().unwrap();
    assert_eq!(own["text"]["network.dm3.deliveryService"], ds.to_text_record());
    assert_eq!(own["address"], Value::Null);
    assert_eq!(ds.url(), world.node.config.node.public_url);

    // Unknown names resolve to nothing, through the same path.
    let nobody = ethers_resolve(&world, "tg-999.tg.bridge.test.eth", &[]).await.unwrap();
    assert_eq!((&nobody["address"], &nobody["text"]["network.dm3.profile"]), (&Value::Null, &Value::Null));

    rotation_and_disabling_show_on_chain(&world, &telegram).await;
    self_custody_shows_on_chain(&world, &telegram).await;
    // Last: it moves chain time past the answers' expiry.
    answers_the_contract_must_reject(&world, &matrix, &telegram).await;
}

/// Tampered, replayed and expired answers revert in `resolveWithProof`.
async fn answers_the_contract_must_reject(world: &World, a: &Value, b: &Value) {
    let ens = &world.ens;
    let (name_a, name_b) = (a["name"].as_str().unwrap(), b["name"].as_str().unwrap());
    let lookup_a =
        offchain_lookup(ens, name_a, Query::text(&EnsName::parse(name_a).unwrap(), "network.dm3.profile"))
            .await;
    let lookup_b =
        offchain_lookup(ens, name_b, Query::text(&EnsName::parse(name_b).unwrap(), "network.dm3.profile"))
            .await;
    let answer_a = fetch_gateway(&lookup_a).await.unwrap();
    let answer_b = fetch_gateway(&lookup_b).await.unwrap();

    // The honest answer passes.
    let record = prove(ens, &answer_a, &lookup_a.extra_data).await.unwrap();
    assert!(String::abi_decode(&record).unwrap().starts_with("data:application/json,"));

    // B's profile slipped into A's signed answer: the signature no longer recovers to the signer.
    let mut tampered = answer_a.clone();
    tampered.result = answer_b.result.clone();
    assert!(matches!(
        prove(ens, &tampered, &lookup_a.extra_data).await,
        Err(ResolverError::UnknownSigner(_))
    ));
    // One flipped byte of the record.
    let mut flipped = answer_a.clone();
    let last = flipped.result.len() - 40;
    flipped.result[last] ^= 1;
    assert!(matches!(prove(ens, &flipped, &lookup_a.extra_data).await, Err(ResolverError::UnknownSigner(_))));
    // B's whole signed answer replayed for A's request: bound to B's request, so refused.
    assert!(matches!(
        prove(ens, &answer_b, &lookup_a.extra_data).await,
        Err(ResolverError::UnknownSigner(_))
    ));
    // A stretched expiry invalidates the signature too.
    let mut stretched = answer_a.clone();
    stretched.valid_until += 3_600;
    assert!(matches!(
        prove(ens, &stretched, &lookup_a.extra_data).await,
        Err(ResolverError::UnknownSigner(_))
    ));
    // And once validUntil (now + answer_ttl_secs) has passed on chain, the answer is expired.
    let ttl = world.node.config.identities.answer_ttl_secs;
    ens.rpc().increase_time(ttl + 60).await.unwrap();
    assert!(matches!(
        prove(ens, &answer_a, &lookup_a.extra_data).await,
        Err(ResolverError::SignatureExpired(_))
    ));
}

async fn rotation_and_disabling_show_on_chain(world: &World, identity: &Value) {
    let admin = Admin { node: &world.node };
    let name = identity["name"].as_str().unwrap();
    let (_, rotated) = admin.post(&format!("/admin/identities/{name}/rotate"), None).await;
    assert_ne!(rotated["address"], identity["address"]);
    let resolved = ethers_resolve(world, name, &[]).await.unwrap();
    assert_eq!(resolved["address"], rotated["address"]);
    let checked = reference_check(world, name, None).await;
    assert_eq!((&checked["valid"], &checked["address"]), (&json!(true), &rotated["address"]), "{checked}");

    admin.post(&format!("/admin/identities/{name}/disable"), None).await;
    let resolved = ethers_resolve(world, name, &[]).await.unwrap();
    assert_eq!(
        (&resolved["address"], &resolved["text"]["network.dm3.profile"]),
        (&Value::Null, &Value::Null)
    );
    let dm3_name = EnsName::parse(name).unwrap();
    assert_eq!(chain_directory(world).user_profile(&dm3_name).await.unwrap(), None);

    admin.post(&format!("/admin/identities/{name}/enable"), None).await;
    let resolved = ethers_resolve(world, name, &[]).await.unwrap();
    assert_eq!(resolved["address"], rotated["address"]);
}

/// Resolves `name` through the chain as ethers and the reference library do, and checks that
/// both see `address` and `signed_profile` and that the reference accepts the pair.
async fn resolves_to(world: &World, name: &str, address: &Value, signed_profile: &Value) {
    let resolved = ethers_resolve(world, name, &[]).await.unwrap();
    assert_eq!(&resolved["address"], address, "{resolved}");
    let record = format!("data:application/json,{}", dm3::canonical::stringify(signed_profile));
    assert_eq!(resolved["text"]["network.dm3.profile"], record.as_str(), "{resolved}");
    let checked = reference_check(world, name, None).await;
    assert_eq!((&checked["valid"], &checked["address"]), (&json!(true), address), "{checked}");
    assert_eq!(&checked["profile"], signed_profile);
}

async fn self_custody_shows_on_chain(world: &World, custodial: &Value) {
    let admin = Admin { node: &world.node };
    let mut js = support::js::JsProcess::spawn("oracle.js").await;
    // Wallets and profiles made by the reference libraries (createProfile), naming this node.
    let carol = js.call("random_user", json!({"deliveryServices": [NODE_NAME]})).await;
    let dave = js.call("random_user", json!({"deliveryServices": [NODE_NAME, "ds.example.eth"]})).await;
    let elsewhere = js.call("random_user", json!({"deliveryServices": ["ds.example.eth"]})).await;

    // Registered as self-custody from the signed profile.
    let body = json!({"network": "matrix", "userId": "@carol:example.org",
                      "address": carol["address"], "signedProfile": carol["signedUserProfile"]});
    let (status, created) = admin.post("/admin/identities", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((&created["custody"], created.get("keyVersion")), (&json!("self"), None), "{created}");
    let name = created["name"].as_str().unwrap();
    resolves_to(world, name, &carol["address"], &carol["signedUserProfile"]).await;
    let store = world.node.node.store();
    assert!(store.identity_keys(&EnsName::parse(name).unwrap()).await.unwrap().is_empty());

    // Refused: a profile with someone else's address, a profile that does not name this node,
    // half a wallet, a rotation or a switch back of what the node holds no key of.
    let refusals = [
        (
            json!({"network": "matrix", "userId": "@mallory:example.org", "address": dave["address"],
                "signedProfile": carol["signedUserProfile"]}),
            "not signed by",
        ),
        (
            json!({"network": "matrix", "userId": "@mallory:example.org", "address": elsewhere["address"],
                "signedProfile": elsewhere["signedUserProfile"]}),
            "do not list ds.bridge.test.eth",
        ),
        (json!({"network": "matrix", "userId": "@mallory:example.org", "address": carol["address"]}), "both"),
    ];
    for (body, says) in refusals {
        let (status, refused) = admin.post("/admin/identities", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(says), "{refused}");
    }
    let (status, refused) = admin.post(&format!("/admin/identities/{name}/rotate"), None).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::CONFLICT, &json!("self_custody")));
    let (_, mallory) = admin.get("/admin/identities/matrix:@mallory:example.org").await;
    assert_eq!(mallory["error"]["code"], "not_found", "nothing was written for a refusal");

    // A custodial identity handed to the user's wallet: its keys are gone in the same step.
    let name = custodial["name"].as_str().unwrap();
    let (_, before) = admin.get(&format!("/admin/identities/{name}")).await;
    let version = before["keyVersion"].as_u64().unwrap();
    let switch = json!({"address": dave["address"], "signedProfile": dave["signedUserProfile"]});
    let (status, switched) =
        admin.post(&format!("/admin/identities/{name}/self-custody"), Some(switch)).await;
    assert_eq!((status, &switched["custody"]), (StatusCode::OK, &json!("self")), "{switched}");
    assert!(store.identity_keys(&EnsName::parse(name).unwrap()).await.unwrap().is_empty());
    resolves_to(world, name, &dave["address"], &dave["signedUserProfile"]).await;

    // And back, at the user's request: a new wallet the node holds, at the next version.
    let (status, back) = admin.post(&format!("/admin/identities/{name}/custodial"), None).await;
    assert_eq!((status, &back["custody"]), (StatusCode::OK, &json!("custodial")), "{back}");
    assert_eq!(back["keyVersion"], json!(version + 1));
    assert!(back["address"] != dave["address"] && back["address"] != before["address"]);
    let keys = store.identity_keys(&EnsName::parse(name).unwrap()).await.unwrap();
    assert_eq!(keys.iter().map(|key| u64::from(key.version)).collect::<Vec<_>>(), [version + 1]);
    let (_, published) = admin.get(&format!("/admin/identities/{name}/profile")).await;
    resolves_to(world, name, &back["address"], &published["profile"]).await;
    let (status, refused) = admin.post(&format!("/admin/identities/{name}/custodial"), None).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::CONFLICT, &json!("custodial")));
}

// ---- the JavaScript clients ----

async fn run_json(mut command: Command) -> anyhow::Result<Value> {
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout}"))
}

async fn ethers_resolve(world: &World, name: &str, keys: &[&str]) -> anyhow::Result<Value> {
    let mut command = world.ens.resolve_js(name);
    for key in keys {
        command.args(["--key", key]);
    }
    run_json(command).await
}

async fn reference_check(world: &World, name: &str, ds: Option<&str>) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/check-profile.js");
    let mut command = Command::new("node");
    command.arg(script).args([
        "--rpc",
        world.anvil.url(),
        "--registry",
        &world.ens.registry.to_string(),
        "--name",
        name,
    ]);
    if let Some(ds) = ds {
        command.args(["--ds", ds]);
    }
    run_json(command).await.unwrap()
}

/// The node's own name resolution, pointed at the chain: the ENS client (ENSIP-10 resolver
/// discovery, EIP-3668 CCIP-read through the node's gateway), uncached so that rotation and
/// disabling show at once.
fn chain_directory(world: &World) -> Directory {
    let config = NamesConfig {
        ens_rpc_url: Some(world.anvil.url().to_owned()),
        ens_registry: checksum(&world.ens.registry),
        cache_ttl_secs: 0,
        allow_private_addresses: true,
        ..NamesConfig::default()
    };
    build_directory(&config).unwrap()
}

/// The OffchainLookup that `resolve(name, query)` reverts with.
async fn offchain_lookup(ens: &Ens, name: &str, query: Query) -> OffchainLookup {
    let name = EnsName::parse(name).unwrap();
    let call = IOffchainResolver::resolveCall { name: dns_encode(&name).into(), data: query.encode().into() };
    let revert = ens.rpc().call(ens.resolver, &call.abi_encode()).await.unwrap().expect_err("must revert");
    OffchainLookup::decode_from(&ens.resolver, &revert).unwrap()
}

/// Asks the lookup's first gateway URL, as EIP-3668 says (GET for a `{data}` template).
async fn fetch_gateway(lookup: &OffchainLookup) -> anyhow::Result<GatewayResponse> {
    let template = lookup.urls.first().ok_or_else(|| anyhow!("no gateway URL"))?;
    let client = reqwest::Client::new();
    let response = match gateway_request(template, &lookup.sender, &lookup.call_data) {
        GatewayRequest::Get { url } => client.get(url).send().await?,
        GatewayRequest::Post { url, body } => client.post(url).body(body).send().await?,
    };
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("gateway answered {status}: {body}");
    }
    Ok(GatewayResponse::from_json_body(&body)?)
}

/// `resolveWithProof(answer, extraData)`; the decoded revert on refusal.
async fn prove(ens: &Ens, answer: &GatewayResponse, extra_data: &[u8]) -> Result<Vec<u8>, ResolverError> {
    let call = IOffchainResolver::resolveWithProofCall {
        response: answer.encode().into(),
        extraData: extra_data.to_vec().into(),
    };
    match ens.rpc().call(ens.resolver, &call.abi_encode()).await.unwrap() {
        Ok(out) => Ok(IOffchainResolver::resolveWithProofCall::abi_decode_returns(&out).unwrap().to_vec()),
        Err(revert) => Err(ResolverError::abi_decode(&revert).unwrap()),
    }
}
