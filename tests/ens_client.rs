//! The ENS client against a real chain: anvil with our registry and OffchainResolver, and a
//! CCIP-read gateway served by this test. Everything goes through what the node builds from
//! `[names]` (`build_directory`), so the cache, the fetch guard, ENSIP-10 resolver discovery,
//! EIP-3668 lookups and profile verification are exercised together.
//!
//! Names under `bridge.test.eth` (one OffchainResolver on the parent, ENSIP-10 wildcard):
//! - `alice`: a DM3 user whose profile is signed by her address;
//! - `impostor`: publishes alice's profile under another address;
//! - `tampered`: the gateway changes the answer after signing it;
//! - `mallory`: the gateway signs with a key the resolver does not trust;
//! - `slow`: the gateway answers after the client's deadline;
//! - `bridge.test.eth` itself: a delivery-service record (the resolver found on the exact name).
//!
//! `plain.test.eth` has a pre-ENSIP-10 resolver with records on chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use alloy_sol_types::{SolValue, sol};
use anvil::{Anvil, Ens, namehash};
use axum::extract::{Path, State};
use dm3::ccip::{GatewayResponse, Query, ResolveRequest, parse_gateway_path};
use dm3::crypto::eth::Wallet;
use dm3::ds_profile::{DeliveryServiceKeys, DeliveryServiceProfile};
use dm3::ens::EnsName;
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::profile::{SignedUserProfile, UserProfile};
use dm3::text_record::{DELIVERY_SERVICE_KEY, USER_PROFILE_KEY};
use dm3_bridge::config::NamesConfig;
use dm3_bridge::names::ResolveError;
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::names::directory::{Directory, DirectoryError};

const PARENT: &str = "bridge.test.eth";
const PLAIN: &str = "plain.test.eth";
const TIMEOUT_MS: u64 = 800;

sol! {
    interface IPlainResolver {
        function setAddr(bytes32 node, address a) external;
        function setText(bytes32 node, string key, string value) external;
    }
}

/// The records the gateway serves, by name.
#[derive(Default, Clone)]
struct Records {
    address: Option<Address>,
    text: HashMap<String, String>,
}

/// The gateway: answers `resolve(name, text|addr)` calldata per docs/protocol.md §12.2, in the
/// encoding our OffchainResolver returns verbatim (`text` as an ABI string, `addr` as a word).
struct Gateway {
    trusted: Wallet,
    untrusted: Wallet,
    records: HashMap<EnsName, Records>,
}

impl Gateway {
    fn result(&self, request: &ResolveRequest) -> Vec<u8> {
        let Some(records) = self.records.get(request.name()) else {
            return Vec::new(); // not found, as the DM3 handler answers it
        };
        match request.query() {
            Query::Text { key, .. } => {
                records.text.get(key).map(|value| value.clone().abi_encode()).unwrap_or_default()
            }
            Query::Addr { .. } => records.address.map(|a| a.abi_encode()).unwrap_or_default(),
            Query::AddrCoin { .. } => Vec::new(),
        }
    }
}

async fn answer(State(gateway): State<Arc<Gateway>>, Path(path): Path<String>) -> String {
    let (resolver, calldata) = parse_gateway_path(&path).unwrap();
    let request = ResolveRequest::decode(&calldata).unwrap();
    let label = request.name().labels().next().unwrap_or_default().to_owned();
    if label == "slow" {
        tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 4)).await;
    }
    let valid_until = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    let wallet = if label == "mallory" { &gateway.untrusted } else { &gateway.trusted };
    let mut response =
        GatewayResponse::sign(wallet, &resolver, &calldata, gateway.result(&request), valid_until);
    if label == "tampered" {
        let forged = format!("data:application/json,{}", r#"{"profile":{},"signature":"0x"}"#);
        response.result = forged.abi_encode();
    }
    response.to_json_body()
}

async fn serve_gateway(gateway: Gateway) -> SocketAddr {
    let app = axum::Router::new().route("/{*path}", axum::routing::get(answer)).with_state(Arc::new(gateway));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    addr
}

fn name(text: &str) -> EnsName {
    text.parse().unwrap()
}

fn signed_profile(wallet: &Wallet) -> SignedUserProfile {
    let keys = ProfileKeys::from_wallet(wallet, DEFAULT_NONCE);
    UserProfile::from_keys(&keys, [PARENT]).sign(wallet)
}

fn user(address: Address, profile: &SignedUserProfile) -> Records {
    Records {
        address: Some(address),
        text: HashMap::from([(USER_PROFILE_KEY.to_owned(), profile.to_text_record())]),
    }
}

/// A running chain and gateway, and the config that points at them.
struct World {
    _anvil: Anvil,
    ens: Ens,
    alice: Wallet,
    plain: Wallet,
    ds_profile: DeliveryServiceProfile,
    config: NamesConfig,
}

impl World {
    async fn start() -> World {
        // Fails (never skips) without anvil, naming scripts/install-contract-deps.sh.
        let anvil = Anvil::start().await.unwrap();
        let (alice, plain, trusted) = (Wallet::generate(), Wallet::generate(), Wallet::generate());
        let ds_profile =
            DeliveryServiceKeys::from_seeds(&[1; 32], &[2; 32]).profile("https://ds.bridge.test");
        let alice_profile = signed_profile(&alice);
        let records = HashMap::from([
            (name("alice.bridge.test.eth"), user(alice.address(), &alice_profile)),
            (name("impostor.bridge.test.eth"), user(Address::repeat_byte(0x66), &alice_profile)),
            (name("tampered.bridge.test.eth"), user(alice.address(), &alice_profile)),
            (name("mallory.bridge.test.eth"), user(alice.address(), &alice_profile)),
            (name("slow.bridge.test.eth"), user(alice.address(), &alice_profile)),
            (
                name(PARENT),
                Records {
                    address: None,
                    text: HashMap::from([(DELIVERY_SERVICE_KEY.to_owned(), ds_profile.to_text_record())]),
                },
            ),
        ]);
        let trusted_address = trusted.address();
        let gateway = serve_gateway(Gateway { trusted, untrusted: Wallet::generate(), records }).await;
        let url = format!("http://{gateway}/{{sender}}/{{data}}.json");
        let ens = Ens::deploy(&anvil, &[&url], &[trusted_address]).await.unwrap();
        ens.use_offchain_resolver(PARENT).await.unwrap();

        // plain.test.eth: a pre-ENSIP-10 resolver with the records on chain.
        let rpc = ens.rpc().clone();
        let plain_resolver = rpc.deploy("PlainResolver", &[]).await.unwrap();
        ens.claim(PLAIN).await.unwrap();
        ens.set_resolver(PLAIN, plain_resolver).await.unwrap();
        let node = namehash(PLAIN);
        rpc.transact(plain_resolver, &IPlainResolver::setAddrCall { node, a: plain.address() })
            .await
            .unwrap();
        let record = signed_profile(&plain).to_text_record();
        let set_text = IPlainResolver::setTextCall { node, key: USER_PROFILE_KEY.into(), value: record };
        rpc.transact(plain_resolver, &set_text).await.unwrap();

        let config = NamesConfig {
            ens_rpc_url: Some(anvil.url().to_owned()),
            ens_registry: ens.registry.to_string(),
            request_timeout_ms: TIMEOUT_MS,
            // The gateway runs on 127.0.0.1.
            allow_private_addresses: true,
            ..NamesConfig::default()
        };
        World { _anvil: anvil, ens, alice, plain, ds_profile, config }
    }

    fn directory(&self) -> Directory {
        build_directory(&self.config).unwrap()
    }
}

#[tokio::test]
async fn a_wildcard_name_resolves_through_the_gateway_and_verifies() {
    let world = World::start().await;
    let directory = world.directory();
    let alice = name("alice.bridge.test.eth");
    // No registry entry of its own: the parent's resolver answers (ENSIP-10).
    assert_eq!(world.ens.resolver_of(alice.as_str()).await.unwrap(), Address::ZERO);
    let found = directory.user_profile(&alice).await.unwrap().expect("alice has a profile");
    assert_eq!(found.address, world.alice.address());
    assert_eq!(found.profile, signed_profile(&world.alice));
    assert_eq!(directory.address(&alice).await, Ok(Some(world.alice.address())));
    // A name the gateway does not know has no records.
    assert_eq!(directory.user_profile(&name("nobody.bridge.test.eth")).await, Ok(None));
    assert_eq!(directory.address(&name("nobody.bridge.test.eth")).await, Ok(None));
}

#[tokio::test]
async fn the_resolver_on_the_exact_name_answers_too() {
    let world = World::start().await;
    let directory = world.directory();
    let ds = directory.delivery_service(&name(PARENT)).await.unwrap().expect("a DS record");
    assert_eq!(ds, world.ds_profile);
    assert_eq!(directory.user_profile(&name(PARENT)).await, Ok(None));
}

#[tokio::test]
async fn a_profile_signed_by_another_address_is_refused() {
    let world = World::start().await;
    let result = world.directory().user_profile(&name("impostor.bridge.test.eth")).await;
    assert!(
        matches!(result, Err(DirectoryError::NotSignedByAddress { address, .. }) if address == Address::repeat_byte(0x66)),
        "{result:?}"
    );
}

#[tokio::test]
async fn tampered_and_foreign_signed_answers_are_invalid() {
    let world = World::start().await;
    let directory = world.directory();
    for forged in ["tampered.bridge.test.eth", "mallory.bridge.test.eth"] {
        let result = directory.user_profile(&name(forged)).await;
        assert!(
            matches!(&result, Err(DirectoryError::Resolve(ResolveError::Invalid { name, reason }))
                if name == forged && reason.contains("rejected the gateway's answer")),
            "{forged}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_gateway_that_times_out_is_unavailable_and_its_failure_reused_briefly() {
    let world = World::start().await;
    let slow = name("slow.bridge.test.eth");
    let timed = async |directory: &dm3_bridge::names::directory::Directory| {
        let started = std::time::Instant::now();
        let result = directory.user_profile(&slow).await;
        assert!(matches!(result, Err(DirectoryError::Resolve(ResolveError::Unavailable(_)))), "{result:?}");
        started.elapsed()
    };
    // Bounded by the request timeout, not by the gateway's delay.
    let directory = world.directory();
    let first = timed(&directory).await;
    assert!(first >= Duration::from_millis(TIMEOUT_MS), "{first:?}");
    assert!(first < Duration::from_millis(TIMEOUT_MS * 3), "{first:?}");
    // Asked again at once, the failure comes from the cache: a caller cannot make the node
    // repeat the slow work (names.failure_cache_secs).
    let again = timed(&directory).await;
    assert!(again < Duration::from_millis(TIMEOUT_MS / 2), "{again:?}");
    // Without failure caching, the second attempt waits again.
    let uncached = build_directory(&NamesConfig { failure_cache_secs: 0, ..world.config.clone() }).unwrap();
    for _ in 0..2 {
        let elapsed = timed(&uncached).await;
        assert!(elapsed >= Duration::from_millis(TIMEOUT_MS), "{elapsed:?}");
    }
}

#[tokio::test]
async fn names_without_a_resolver_have_no_records() {
    let world = World::start().await;
    let directory = world.directory();
    for unresolved in ["nobody.example.eth", "eth", "deep.sub.name.unknown"] {
        assert_eq!(directory.user_profile(&name(unresolved)).await, Ok(None), "{unresolved}");
        assert_eq!(directory.address(&name(unresolved)).await, Ok(None), "{unresolved}");
    }
}

#[tokio::test]
async fn a_plain_resolver_answers_only_for_its_own_name() {
    let world = World::start().await;
    let directory = world.directory();
    let found = directory.user_profile(&name(PLAIN)).await.unwrap().expect("plain has a profile");
    assert_eq!(found.address, world.plain.address());
    // ENSIP-10: a parent's resolver without resolve() does not answer for subnames.
    assert_eq!(directory.address(&name("sub.plain.test.eth")).await, Ok(None));
    assert_eq!(directory.user_profile(&name("sub.plain.test.eth")).await, Ok(None));
}

#[tokio::test]
async fn gateways_on_private_addresses_are_refused_by_default() {
    let world = World::start().await;
    let config = NamesConfig { allow_private_addresses: false, ..world.config.clone() };
    let directory = build_directory(&config).unwrap();
    let result = directory.user_profile(&name("alice.bridge.test.eth")).await;
    assert!(
        matches!(&result, Err(DirectoryError::Resolve(ResolveError::Invalid { reason, .. }))
            if reason.contains("does not resolve to a public address")),
        "{result:?}"
    );
    // The chain node itself is the operator's choice and stays reachable on 127.0.0.1.
    assert_eq!(directory.user_profile(&name(PLAIN)).await.unwrap().unwrap().address, world.plain.address());
}
