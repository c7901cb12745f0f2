//! The test chain works: anvil runs, our ENS registry and OffchainResolver deploy, and the
//! resolver speaks EIP-3668 and checks gateway signatures exactly as docs/protocol.md §12.2 says.
//! The gateway's side is played here by a k256 key, so this pins the signature scheme the
//! node's gateway (issue 4) must produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolError, SolInterface, SolValue};
use anvil::{Anvil, Ens, IOffchainResolver, IRecords, dns_encode, namehash};
use k256::ecdsa::SigningKey;

use IOffchainResolver::IOffchainResolverErrors as ResolverError;

const PARENT: &str = "bridge.test.eth";
const NAME: &str = "alice.tg.bridge.test.eth";
const GATEWAY: &str = "http://127.0.0.1:9/gateway/{sender}/{data}.json";
const PROFILE: &str =
    r#"data:application/json,{"profile":{"deliveryServices":["bridge.test.eth"]},"signature":"0x"}"#;

fn key(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).unwrap()
}

/// Ethereum address of a key: the last 20 bytes of keccak256 of the uncompressed public key.
fn address_of(key: &SigningKey) -> Address {
    let point = key.verifying_key().to_encoded_point(false);
    Address::from_slice(&keccak256(&point.as_bytes()[1..])[12..])
}

/// The gateway's answer, per docs/protocol.md §12.2:
/// h = keccak256(0x1900 ‖ resolver ‖ uint64 validUntil BE ‖ keccak256(request) ‖ keccak256(result)),
/// sig = personal_sign(h) = r ‖ s ‖ v (v 27/28), data = abi.encode(bytes result, uint64 validUntil, bytes sig).
fn sign_answer(
    key: &SigningKey,
    resolver: Address,
    valid_until: u64,
    request: &[u8],
    signed_result: &[u8],
) -> Vec<u8> {
    sign_answer_with(key, resolver, valid_until, request, signed_result, signed_result)
}

/// As `sign_answer`, but sends `sent_result` while signing `signed_result` (to tamper).
fn sign_answer_with(
    key: &SigningKey,
    resolver: Address,
    valid_until: u64,
    request: &[u8],
    signed_result: &[u8],
    sent_result: &[u8],
) -> Vec<u8> {
    let h = keccak256(
        [
            &[0x19, 0x00][..],
            resolver.as_slice(),
            &valid_until.to_be_bytes(),
            keccak256(request).as_slice(),
            keccak256(signed_result).as_slice(),
        ]
        .concat(),
    );
    let sig = personal_sign(key, h);
    (Bytes::copy_from_slice(sent_result), valid_until, Bytes::from(sig)).abi_encode_params()
}

fn personal_sign(key: &SigningKey, h: B256) -> Vec<u8> {
    let digest = keccak256([&b"\x19Ethereum Signed Message:\n32"[..], h.as_slice()].concat());
    let (sig, recid) = key.sign_prehash_recoverable(digest.as_slice()).unwrap();
    let mut out = sig.to_bytes().to_vec();
    out.push(27 + recid.to_byte());
    out
}

/// Keeps anvil alive: bind it as a whole (`let c = chain().await`), since destructuring with
/// `..` would drop, and so kill, anvil at the end of the statement.
struct Chain {
    _anvil: Anvil,
    ens: Ens,
    gateway_key: SigningKey,
}

/// anvil + registry + resolver, with bridge.test.eth on the OffchainResolver and key 0x11.. trusted.
async fn chain() -> Chain {
    let anvil = Anvil::start().await.unwrap();
    let gateway_key = key(0x11);
    let ens =
        Ens::deploy(&anvil, &["http://unused.invalid/{sender}/{data}.json"], &[address_of(&gateway_key)])
            .await
            .unwrap();
    ens.use_offchain_resolver(PARENT).await.unwrap();
    ens.set_gateway_url(GATEWAY).await.unwrap();
    Chain { _anvil: anvil, ens, gateway_key }
}

/// What a client does first: `resolve(dnsName, record call)`, which must revert with OffchainLookup.
async fn lookup(ens: &Ens, name: &str, record: Vec<u8>) -> IOffchainResolver::OffchainLookup {
    let call = IOffchainResolver::resolveCall { name: dns_encode(name).unwrap().into(), data: record.into() };
    let revert =
        ens.rpc().call(ens.resolver, &call.abi_encode()).await.unwrap().expect_err("resolve() must revert");
    IOffchainResolver::OffchainLookup::abi_decode(&revert).unwrap()
}

fn text_call(name: &str, key: &str) -> Vec<u8> {
    IRecords::textCall { node: namehash(name), key: key.into() }.abi_encode()
}

/// The client's second step: `resolveWithProof(gateway data, extraData)`. Err is the decoded revert.
async fn prove(ens: &Ens, response: Vec<u8>, extra_data: &Bytes) -> Result<Vec<u8>, ResolverError> {
    let call =
        IOffchainResolver::resolveWithProofCall { response: response.into(), extraData: extra_data.clone() };
    match ens.rpc().call(ens.resolver, &call.abi_encode()).await.unwrap() {
        Ok(out) => Ok(IOffchainResolver::resolveWithProofCall::abi_decode_returns(&out).unwrap().to_vec()),
        Err(revert) => Err(ResolverError::abi_decode(&revert).unwrap()),
    }
}

#[tokio::test]
async fn resolve_reverts_with_offchain_lookup_to_the_configured_gateway() {
    let c = chain().await;
    let ens = &c.ens;
    // The registry: the parent has the resolver; the subname has none and relies on the wildcard.
    assert_eq!(ens.resolver_of(PARENT).await.unwrap(), ens.resolver);
    assert_eq!(ens.resolver_of(NAME).await.unwrap(), Address::ZERO);
    for (id, expected) in
        [([0x90, 0x61, 0xb9, 0x23], true), ([0x01, 0xff, 0xc9, 0xa7], true), ([0xff; 4], false)]
    {
        let call = IOffchainResolver::supportsInterfaceCall { interfaceId: id.into() };
        assert_eq!(ens.rpc().view(ens.resolver, &call).await.unwrap(), expected, "supportsInterface({id:?})");
    }

    let record = text_call(NAME, "network.dm3.profile");
    let lookup = lookup(ens, NAME, record.clone()).await;
    assert_eq!(lookup.sender, ens.resolver);
    assert_eq!(lookup.urls, vec![GATEWAY.to_owned()]);
    assert_eq!(lookup.callbackFunction, IOffchainResolver::resolveWithProofCall::SELECTOR);
    // The gateway receives resolve(bytes dnsName, bytes record) (selector 0x9061b923), and
    // extraData is that same request, so the signature binds the answer to it.
    let expected =
        IOffchainResolver::resolveCall { name: dns_encode(NAME).unwrap().into(), data: record.into() };
    assert_eq!(lookup.callData.to_vec(), expected.abi_encode());
    assert_eq!(&lookup.callData[..4], &[0x90, 0x61, 0xb9, 0x23]);
    assert_eq!(lookup.extraData, lookup.callData);

    // A new URL template shows up in the next lookup.
    let moved = "http://127.0.0.1:10/{sender}/{data}.json";
    ens.set_gateway_url(moved).await.unwrap();
    assert_eq!(lookup_urls(ens).await, vec![moved.to_owned()]);
}

async fn lookup_urls(ens: &Ens) -> Vec<String> {
    lookup(ens, NAME, text_call(NAME, "network.dm3.profile")).await.urls
}

#[tokio::test]
async fn resolve_with_proof_returns_a_correctly_signed_result() {
    let c = chain().await;
    let (ens, gateway_key) = (&c.ens, &c.gateway_key);
    let now = ens.rpc().block_timestamp().await.unwrap();

    // text: the result is abi.encode(string), returned verbatim.
    let lookup_text = lookup(ens, NAME, text_call(NAME, "network.dm3.profile")).await;
    let result = PROFILE.to_owned().abi_encode();
    let response = sign_answer(gateway_key, ens.resolver, now + 300, &lookup_text.callData, &result);
    let out = prove(ens, response, &lookup_text.extraData).await.unwrap();
    assert_eq!(out, result);
    assert_eq!(String::abi_decode(&out).unwrap(), PROFILE);

    // addr: the result is the 32-byte ABI word that ethers and alloy decode.
    let wallet = address_of(&key(0x22));
    let lookup_addr = lookup(ens, NAME, IRecords::addrCall { node: namehash(NAME) }.abi_encode()).await;
    let result = wallet.abi_encode();
    let response = sign_answer(gateway_key, ens.resolver, now + 300, &lookup_addr.callData, &result);
    let out = prove(ens, response, &lookup_addr.extraData).await.unwrap();
    assert_eq!(Address::abi_decode(&out).unwrap(), wallet);

    // "Not found" (docs/protocol.md §12.3: the handler answers 0x) is a valid, signed empty result.
    let response = sign_answer(gateway_key, ens.resolver, now + 300, &lookup_text.callData, &[]);
    assert_eq!(prove(ens, response, &lookup_text.extraData).await.unwrap(), Vec::<u8>::new());
}

#[tokio::test]
async fn resolve_with_proof_rejects_tampered_foreign_and_expired_answers() {
    let c = chain().await;
    let (ens, gateway_key) = (&c.ens, &c.gateway_key);
    let rpc = ens.rpc().clone();
    let now = rpc.block_timestamp().await.unwrap();
    let lookup = lookup(ens, NAME, text_call(NAME, "network.dm3.profile")).await;
    let (request, extra) = (lookup.callData.clone(), lookup.extraData.clone());
    let result = PROFILE.to_owned().abi_encode();
    let signer = address_of(gateway_key);

    // Tampered result: the signature recovers to some unrelated address.
    let forged = "data:application/json,{}".to_owned().abi_encode();
    let response = sign_answer_with(gateway_key, ens.resolver, now + 300, &request, &result, &forged);
    match prove(ens, response, &extra).await {
        Err(ResolverError::UnknownSigner(e)) => assert_ne!(e.recovered, signer),
        other => panic!("tampered result accepted or wrong error: {other:?}"),
    }

    // An answer signed for another request (another record) does not fit this one.
    let other_request = lookup_for_key(ens, "network.dm3.deliveryService").await;
    let response = sign_answer(gateway_key, ens.resolver, now + 300, &other_request, &result);
    assert!(matches!(prove(ens, response, &extra).await, Err(ResolverError::UnknownSigner(_))));

    // A signature for another resolver address cannot be replayed on this one.
    let response = sign_answer(gateway_key, Address::repeat_byte(0x42), now + 300, &request, &result);
    assert!(matches!(prove(ens, response, &extra).await, Err(ResolverError::UnknownSigner(_))));

    // The wrong signer: a well-formed signature by an untrusted key.
    let stranger = key(0x33);
    let response = sign_answer(&stranger, ens.resolver, now + 300, &request, &result);
    match prove(ens, response, &extra).await {
        Err(ResolverError::UnknownSigner(e)) => assert_eq!(e.recovered, address_of(&stranger)),
        other => panic!("wrong signer accepted or wrong error: {other:?}"),
    }

    // Expired: validUntil already in the past.
    let response = sign_answer(gateway_key, ens.resolver, now - 1, &request, &result);
    assert!(matches!(prove(ens, response, &extra).await, Err(ResolverError::SignatureExpired(_))));

    // Expired by the passing of (chain) time: valid now, rejected two minutes later.
    let response = sign_answer(gateway_key, ens.resolver, now + 60, &request, &result);
    assert_eq!(prove(ens, response.clone(), &extra).await.unwrap(), result);
    rpc.increase_time(120).await.unwrap();
    match prove(ens, response, &extra).await {
        Err(ResolverError::SignatureExpired(e)) => assert_eq!(e.validUntil, now + 60),
        other => panic!("expired answer accepted or wrong error: {other:?}"),
    }
    let now = rpc.block_timestamp().await.unwrap();

    // The malleable twin (n - s, flipped v) of a good signature is refused, not recovered.
    let good = sign_answer(gateway_key, ens.resolver, now + 300, &request, &result);
    let (res, until, sig) = <(Bytes, u64, Bytes)>::abi_decode_params(&good).unwrap();
    let mut twin = sig.to_vec();
    let n =
        U256::from_str_radix("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16).unwrap();
    twin[32..64].copy_from_slice(&(n - U256::from_be_slice(&sig[32..64])).to_be_bytes::<32>());
    twin[64] = if sig[64] == 27 { 28 } else { 27 };
    let response = (res, until, Bytes::from(twin)).abi_encode_params();
    assert!(matches!(prove(ens, response, &extra).await, Err(ResolverError::InvalidSignature(_))));

    // A signer the owner stops trusting is refused from then on.
    assert_eq!(prove(ens, good.clone(), &extra).await.unwrap(), result);
    ens.set_signer(signer, false).await.unwrap();
    assert!(matches!(prove(ens, good, &extra).await, Err(ResolverError::UnknownSigner(_))));

    // Only the owner configures the resolver.
    let intruder = address_of(&stranger);
    let call = IOffchainResolver::setSignerCall { signer: intruder, trusted: true }.abi_encode();
    let revert = rpc.call_as(intruder, ens.resolver, &call).await.unwrap().expect_err("non-owner setSigner");
    assert!(matches!(ResolverError::abi_decode(&revert).unwrap(), ResolverError::NotOwner(_)));
}

async fn lookup_for_key(ens: &Ens, key: &str) -> Bytes {
    lookup(ens, NAME, text_call(NAME, key)).await.callData
}
