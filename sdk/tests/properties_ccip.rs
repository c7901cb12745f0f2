//! Property tests for the ENS and CCIP-read parsers: arbitrary input never
//! panics, and every reversible mapping round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloy_primitives::Address;
use dm3::ccip::{
    Answer, GatewayResponse, OffchainLookup, Query, ResolveRequest, parse_gateway_path,
    verify_gateway_response,
};
use dm3::ens::{EnsName, dns_decode, dns_encode, namehash};
use proptest::prelude::*;

/// The selectors the decoders branch on, so random tails reach the deep paths.
const SELECTORS: [[u8; 4]; 6] = [
    [0x90, 0x61, 0xb9, 0x23], // resolve
    [0xf8, 0xc3, 0x0f, 0x63], // resolveWithContext
    [0x59, 0xd1, 0xd4, 0x3c], // text
    [0x3b, 0x3b, 0x57, 0xde], // addr
    [0xf1, 0xcb, 0x7e, 0x06], // addr with coin type
    [0x55, 0x6f, 0x18, 0x30], // OffchainLookup
];

fn selector_then_bytes() -> impl Strategy<Value = Vec<u8>> {
    (0..SELECTORS.len(), proptest::collection::vec(any::<u8>(), 0..400)).prop_map(|(index, tail)| {
        let mut data = SELECTORS[index].to_vec();
        data.extend(tail);
        data
    })
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}[a-z0-9]|[a-z0-9]|[a-zäöüßéç]{1,10}"
        .prop_filter("no label extension", |label| label.as_bytes().get(2..4) != Some(b"--".as_slice()))
}

fn ens_name() -> impl Strategy<Value = EnsName> {
    proptest::collection::vec(label(), 1..5).prop_map(|labels| EnsName::parse(&labels.join(".")).unwrap())
}

proptest! {
    #[test]
    fn any_bytes_as_calldata_are_ok_or_err(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ResolveRequest::decode(&data);
        let _ = Query::decode(&data);
        let _ = OffchainLookup::decode(&data);
        let _ = GatewayResponse::decode(&data);
    }

    #[test]
    fn any_tail_after_a_known_selector_is_ok_or_err(data in selector_then_bytes()) {
        let _ = ResolveRequest::decode(&data);
        let _ = Query::decode(&data);
        let _ = OffchainLookup::decode(&data);
    }

    #[test]
    fn mutated_valid_calldata_is_ok_or_err(name in ens_name(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let request = ResolveRequest::new(name.clone(), Query::text(&name, "network.dm3.profile"), Some(vec![1; 20])).unwrap();
        let mut calldata = request.encode();
        let position = at.index(calldata.len());
        calldata[position] = byte;
        if let Ok(decoded) = ResolveRequest::decode(&calldata) {
            prop_assert_eq!(decoded.node(), namehash(decoded.name()));
        }
    }

    #[test]
    fn any_bytes_as_a_dns_name_are_ok_or_err(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(name) = dns_decode(&data) {
            prop_assert!(dns_encode(&name).len() <= 255);
        }
    }

    #[test]
    fn dns_encoding_round_trips(name in ens_name()) {
        prop_assert_eq!(dns_decode(&dns_encode(&name)).unwrap(), name);
    }

    #[test]
    fn any_string_as_an_ens_name_is_ok_or_err_and_stable(input in any::<String>()) {
        if let Ok(name) = EnsName::parse(&input) {
            let again = EnsName::parse(name.as_str()).unwrap();
            prop_assert_eq!(namehash(&again), namehash(&name));
            prop_assert_eq!(again, name);
        }
    }

    #[test]
    fn mixed_case_and_unicode_names_normalize_stably(input in "[A-Za-z0-9_\\-.\u{00C0}-\u{024F}\u{0370}-\u{03FF}\u{0400}-\u{04FF}\u{0300}-\u{036F}\u{00AD}\u{FE0F}]{0,40}") {
        if let Ok(name) = EnsName::parse(&input) {
            let again = EnsName::parse(name.as_str()).unwrap();
            prop_assert_eq!(namehash(&again), namehash(&name));
            prop_assert_eq!(again, name);
        }
    }

    #[test]
    fn huge_names_are_refused_without_panicking(label in "[a-z]{1,70}", count in 1usize..40) {
        let input = vec![label; count].join(".");
        if let Ok(name) = EnsName::parse(&input) {
            prop_assert!(name.dns_encoded_len() <= 255);
        }
    }

    #[test]
    fn any_answer_bytes_are_ok_or_err(name in ens_name(), data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Answer::decode(&Query::text(&name, "k"), &data);
        let _ = Answer::decode(&Query::addr(&name), &data);
    }

    #[test]
    fn any_gateway_response_is_ok_or_err(data in proptest::collection::vec(any::<u8>(), 0..400), now in any::<u64>()) {
        let _ = verify_gateway_response(&Address::ZERO, b"calldata", &data, &[Address::ZERO], now);
    }

    #[test]
    fn any_signature_bytes_are_ok_or_err(signature in proptest::collection::vec(any::<u8>(), 0..80), valid_until in any::<u64>()) {
        let response = GatewayResponse { result: vec![1, 2, 3], valid_until, signature };
        let _ = response.verify(&Address::ZERO, b"calldata", &[Address::ZERO], 0);
        prop_assert_eq!(GatewayResponse::decode(&response.encode()).unwrap(), response);
    }

    #[test]
    fn any_text_as_a_body_or_path_is_ok_or_err(text in any::<String>()) {
        let _ = GatewayResponse::from_json_body(&text);
        let _ = parse_gateway_path(&text);
        let _ = dm3::resolver_api::ClaimNameRequest::from_json(&text);
        let _ = dm3::resolver_api::ClaimAddressRequest::from_json(&text);
    }
}
