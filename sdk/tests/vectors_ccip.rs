//! The `ccip` vectors (offchain resolver, gateway, claim API), checked byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::ccip::{
    Answer, GatewayRequest, GatewayResponse, GatewayResponseError, OffchainLookup, PROFILE_TEXT_KEY, Query,
    ResolveRequest, encode_gateway_response, gateway_request, gateway_signature_hash, parse_gateway_path,
    parse_handler_body, profile_text_record, verify_gateway_response,
};
use dm3::crypto::eth::{Wallet, parse_address};
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::{hex_decode, hex_encode};
use dm3::ens::{EnsName, dns_decode, dns_encode, namehash};
use dm3::resolver_api::{
    CLAIM_ADDRESS_PATH, CLAIM_NAME_PATH, ClaimAddressRequest, ClaimNameRequest, DELETE_NAME_PATH,
    DeleteNameRequest, alias_message, remove_message,
};
use vectors::{at, str_at};

fn bytes(path: &str) -> Vec<u8> {
    hex_decode(str_at(path)).unwrap()
}

fn name() -> EnsName {
    EnsName::parse(str_at("ccip/name")).unwrap()
}

fn resolver() -> alloy_primitives::Address {
    parse_address(str_at("ccip/resolverAddress")).unwrap()
}

fn owner() -> alloy_primitives::Address {
    parse_address(str_at("ccip/contextOwner")).unwrap()
}

fn alice_signing_key() -> SigningKeyPair {
    SigningKeyPair::from_secret_b64(str_at("users/alice/keys/signingKeyPair/privateKey")).unwrap()
}

fn alice_verify_key() -> VerifyKey {
    VerifyKey::from_b64(str_at("users/alice/keys/signingKeyPair/publicKey")).unwrap()
}

/// The query of each record kind, with its vector section.
fn queries() -> [(&'static str, Query); 2] {
    [("text", Query::text(&name(), PROFILE_TEXT_KEY)), ("addr", Query::addr(&name()))]
}

#[test]
fn name_namehash_and_dns_encoding() {
    assert_eq!(name().as_str(), str_at("ccip/name"));
    assert_eq!(namehash(&name()).to_hex(), str_at("ccip/namehash"));
    assert_eq!(hex_encode(&dns_encode(&name())), str_at("ccip/dnsEncodedName"));
    assert_eq!(dns_decode(&bytes("ccip/dnsEncodedName")).unwrap(), name());
}

#[test]
fn inner_queries_encode_and_decode() {
    for (kind, query) in queries() {
        let path = format!("ccip/{kind}/innerCalldata");
        assert_eq!(hex_encode(&query.encode()), str_at(&path), "{kind}");
        assert_eq!(Query::decode(&bytes(&path)).unwrap(), query, "{kind}");
    }
    assert_eq!(Query::text(&name(), PROFILE_TEXT_KEY).selector(), [0x59, 0xd1, 0xd4, 0x3c]);
    assert_eq!(Query::addr(&name()).selector(), [0x3b, 0x3b, 0x57, 0xde]);
}

#[test]
fn gateway_calldata_encodes_and_decodes_as_the_handler_does() {
    for (kind, query) in queries() {
        let path = format!("ccip/{kind}/gatewayCalldata_resolveWithContext");
        let request = ResolveRequest::new(name(), query.clone(), Some(owner().to_vec())).unwrap();
        assert_eq!(hex_encode(&request.encode()), str_at(&path), "{kind}");
        let decoded = ResolveRequest::decode(&bytes(&path)).unwrap();
        assert_eq!(decoded.name(), &name());
        assert_eq!(decoded.node().to_hex(), str_at("ccip/namehash"));
        assert_eq!(decoded.query(), &query);
        assert_eq!(decoded.context_owner(), Some(owner()));
        assert_eq!(decoded, request);
    }
}

#[test]
fn handler_path_and_gateway_url() {
    let path = str_at("ccip/text/handlerUrl_path");
    let calldata = bytes("ccip/text/gatewayCalldata_resolveWithContext");
    assert_eq!(parse_gateway_path(path).unwrap(), (resolver(), calldata.clone()));
    // EIP-3668 substitutes the sender in lowercase; the vector path has it checksummed.
    let GatewayRequest::Get { url } = gateway_request("/{sender}/{data}.json", &resolver(), &calldata) else {
        panic!("a template with {{data}} is fetched with GET");
    };
    assert_ne!(url, path);
    assert!(url.eq_ignore_ascii_case(path));
}

#[test]
fn profile_text_record_and_handler_answers() {
    let record = profile_text_record(at("users/alice/signedUserProfile"));
    assert_eq!(record, str_at("ccip/text/textRecordValue"));
    assert_eq!(
        record.strip_prefix("data:application/json,").unwrap(),
        str_at("users/alice/stringifiedSignedUserProfile")
    );
    let text = Answer::Text(record);
    assert_eq!(text.to_body(), str_at("ccip/text/handlerResponseBody"));
    let result = parse_handler_body(str_at("ccip/text/handlerResponseBody")).unwrap();
    assert_eq!(Answer::decode(&queries()[0].1, &result).unwrap(), text);

    let alice = parse_address(str_at("wallets/alice/address")).unwrap();
    let addr = Answer::Addr(alice);
    assert_eq!(addr.to_body(), str_at("ccip/addr/handlerResponseBody_raw20bytes"));
    let result = parse_handler_body(str_at("ccip/addr/handlerResponseBody_raw20bytes")).unwrap();
    assert_eq!(Answer::decode(&queries()[1].1, &result).unwrap(), addr);
}

/// The handler's result for each kind, as its vector gives it.
fn handler_result(kind: &str) -> Vec<u8> {
    match kind {
        "text" => bytes("ccip/text/handlerResponseBody"),
        _ => bytes("ccip/addr/handlerResponseBody_raw20bytes"),
    }
}

#[test]
fn gateway_signs_like_the_reference() {
    let signer = Wallet::from_hex(str_at("wallets/ccipGatewaySigner/privateKey")).unwrap();
    for (kind, _) in queries() {
        let base = format!("ccip/{kind}");
        let calldata = bytes(&format!("{base}/gatewayCalldata_resolveWithContext"));
        let valid_until = at(&format!("{base}/gateway/validUntil")).as_u64().unwrap();
        let result = handler_result(kind);
        let hash = gateway_signature_hash(&resolver(), valid_until, &calldata, &result);
        assert_eq!(hex_encode(&hash), str_at(&format!("{base}/gateway/hashToSign")), "{kind}");
        let response = GatewayResponse::sign(&signer, &resolver(), &calldata, result.clone(), valid_until);
        assert_eq!(hex_encode(&response.signature), str_at(&format!("{base}/gateway/signature")), "{kind}");
        assert_eq!(hex_encode(&response.encode()), str_at(&format!("{base}/gateway/response")), "{kind}");
        assert_eq!(
            encode_gateway_response(&result, valid_until, &response.signature),
            bytes(&format!("{base}/gateway/response"))
        );
        let body = response.to_json_body();
        assert_eq!(body, format!("{{\"data\":\"{}\"}}", str_at(&format!("{base}/gateway/response"))));
        assert_eq!(GatewayResponse::from_json_body(&body).unwrap(), response);
    }
}

#[test]
fn client_verifies_the_reference_gateway_response() {
    let signer = parse_address(str_at("wallets/ccipGatewaySigner/address")).unwrap();
    let alice = parse_address(str_at("wallets/alice/address")).unwrap();
    for (kind, query) in queries() {
        let base = format!("ccip/{kind}");
        let calldata = bytes(&format!("{base}/gatewayCalldata_resolveWithContext"));
        let response = bytes(&format!("{base}/gateway/response"));
        let valid_until = at(&format!("{base}/gateway/validUntil")).as_u64().unwrap();
        let verified =
            verify_gateway_response(&resolver(), &calldata, &response, &[alice, signer], valid_until)
                .unwrap_or_else(|error| panic!("{kind}: {error}"));
        assert_eq!(verified.signer, signer);
        assert_eq!(verified.result, handler_result(kind));
        assert!(Answer::decode(&query, &verified.result).is_ok());
        assert_eq!(
            verify_gateway_response(&resolver(), &calldata, &response, &[signer], valid_until + 1),
            Err(GatewayResponseError::Expired { valid_until, now: valid_until + 1 })
        );
        assert_eq!(
            verify_gateway_response(&resolver(), &calldata, &response, &[alice], valid_until),
            Err(GatewayResponseError::UnknownSigner { signer })
        );
        let inner_only = bytes(&format!("{base}/innerCalldata"));
        assert!(
            verify_gateway_response(&resolver(), &inner_only, &response, &[signer], valid_until).is_err()
        );
    }
}

#[test]
fn offchain_lookup_leads_to_the_vector_gateway_path() {
    // The revert §12.1 describes: callData = extraData = the resolveWithContext calldata.
    let calldata = bytes("ccip/text/gatewayCalldata_resolveWithContext");
    let lookup = OffchainLookup {
        sender: resolver(),
        urls: vec!["https://dm3.example/resolver/{sender}/{data}.json".into()],
        call_data: calldata.clone(),
        callback_function: [0x9b, 0xbf, 0xd1, 0x26],
        extra_data: calldata.clone(),
    };
    let decoded = OffchainLookup::decode_from(&resolver(), &lookup.encode()).unwrap();
    let GatewayRequest::Get { url } = gateway_request(&decoded.urls[0], &decoded.sender, &decoded.call_data)
    else {
        panic!("expected GET");
    };
    let path = url.strip_prefix("https://dm3.example/resolver").unwrap();
    assert_eq!(parse_gateway_path(path).unwrap(), (resolver(), calldata));
    let callback = decoded.callback_calldata(&bytes("ccip/text/gateway/response"));
    assert_eq!(&callback[..4], &[0x9b, 0xbf, 0xd1, 0x26]);
}

#[test]
fn claim_address_request() {
    let vector = at("ccip/claimAddressRequest");
    assert_eq!(vector["path"], format!("POST {CLAIM_ADDRESS_PATH}"));
    let request = ClaimAddressRequest::from_json(&vector["body"].to_string()).unwrap();
    let alice = parse_address(str_at("wallets/alice/address")).unwrap();
    assert_eq!(request.address().unwrap(), alice);
    assert_eq!(request.name().unwrap(), name());
    // The profile inside is the one alice's wallet signed (§4.2).
    let signature =
        dm3::crypto::eth::EthSignature::parse(str_at("users/alice/signedUserProfile/signature")).unwrap();
    assert_eq!(
        signature.recover_personal(str_at("users/alice/profileCreationMessage").as_bytes()),
        Some(alice)
    );
    let built = ClaimAddressRequest::new(
        at("users/alice/signedUserProfile").clone(),
        &alice,
        &EnsName::parse(vector["body"]["subdomain"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(serde_json::from_str::<serde_json::Value>(&built.to_json()).unwrap(), vector["body"]);
    assert_eq!(built, request);
}

#[test]
fn claim_name_request_is_signed_with_the_profile_signing_key() {
    let vector = at("ccip/claimNameRequest");
    assert_eq!(vector["path"], format!("POST {CLAIM_NAME_PATH}"));
    let body = &vector["body"];
    let dm3_name = EnsName::parse(body["dm3Name"].as_str().unwrap()).unwrap();
    assert_eq!(body["addressName"], str_at("ccip/name"));
    assert_eq!(alias_message(dm3_name.as_str()), vector["signedString"]);
    let built = ClaimNameRequest::sign(&dm3_name, &name(), &alice_signing_key());
    // JSON.stringify keeps the messenger's key order: dm3Name, addressName, signature.
    let expected = format!(
        r#"{{"dm3Name":"{}","addressName":"{}","signature":"{}"}}"#,
        body["dm3Name"].as_str().unwrap(),
        body["addressName"].as_str().unwrap(),
        body["signature"].as_str().unwrap()
    );
    assert_eq!(built.to_json(), expected);
    let parsed = ClaimNameRequest::from_json(&body.to_string()).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(parsed.verify(&alice_verify_key()), Ok(true));
    assert_eq!(parsed.dm3_name().unwrap(), dm3_name);
    assert_eq!(parsed.address_name().unwrap(), name());
    let bob = VerifyKey::from_b64(str_at("users/bob/keys/signingKeyPair/publicKey")).unwrap();
    assert_eq!(parsed.verify(&bob), Ok(false));
}

#[test]
fn delete_name_request_is_signed_with_the_profile_signing_key() {
    let vector = at("ccip/deleteNameRequest");
    assert_eq!(vector["path"], format!("POST {DELETE_NAME_PATH}"));
    let body = &vector["body"];
    let dm3_name = EnsName::parse(body["dm3Name"].as_str().unwrap()).unwrap();
    assert_eq!(remove_message(dm3_name.as_str()), vector["signedString"]);
    let built = DeleteNameRequest::sign(&dm3_name, &alice_signing_key());
    let expected = format!(
        r#"{{"dm3Name":"{}","signature":"{}"}}"#,
        body["dm3Name"].as_str().unwrap(),
        body["signature"].as_str().unwrap()
    );
    assert_eq!(built.to_json(), expected);
    let parsed = DeleteNameRequest::from_json(&body.to_string()).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(parsed.verify(&alice_verify_key()), Ok(true));
    // The alias signature must not pass as a removal.
    let forged =
        DeleteNameRequest { signature: str_at("ccip/claimNameRequest/body/signature").into(), ..parsed };
    assert_eq!(forged.verify(&alice_verify_key()), Ok(false));
}

/// Every leaf of the `ccip` section, so that a new vector cannot go unchecked.
#[test]
fn every_ccip_vector_is_covered() {
    const COVERED: &[&str] = &[
        "name",
        "namehash",
        "dnsEncodedName",
        "resolverAddress",
        "contextOwner",
        "text/innerCalldata",
        "text/gatewayCalldata_resolveWithContext",
        "text/handlerUrl_path",
        "text/handlerResponseBody",
        "text/textRecordValue",
        "text/gateway/validUntil",
        "text/gateway/hashToSign",
        "text/gateway/signature",
        "text/gateway/response",
        "addr/innerCalldata",
        "addr/gatewayCalldata_resolveWithContext",
        "addr/handlerResponseBody_raw20bytes",
        "addr/gateway/validUntil",
        "addr/gateway/hashToSign",
        "addr/gateway/signature",
        "addr/gateway/response",
        "claimAddressRequest/path",
        "claimAddressRequest/body",
        "claimNameRequest/path",
        "claimNameRequest/body",
        "claimNameRequest/signedString",
        "deleteNameRequest/path",
        "deleteNameRequest/body",
        "deleteNameRequest/signedString",
    ];
    fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        // Request bodies are compared whole; everything else down to its leaves.
        match value.as_object() {
            Some(map) if !prefix.ends_with("/body") => {
                for (key, child) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}/{key}") };
                    leaves(child, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut found = Vec::new();
    leaves(at("ccip"), "", &mut found);
    found.sort();
    let mut covered: Vec<String> = COVERED.iter().map(|path| (*path).to_owned()).collect();
    covered.sort();
    assert_eq!(found, covered);
}
