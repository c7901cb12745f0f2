//! The DS getter vectors: default properties and profile extension, and the
//! JSON-RPC bodies that carry them (§9.1, P10, P20).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::canonical::{self, stringify_str};
use dm3::ds_properties::{DeliveryServiceProperties, ProfileExtension, parse_rpc_result_body};
use dm3::message::MessageType;
use serde_json::Value;
use vectors::at;

/// `JSON.stringify` of a `{jsonrpc, result}` vector body, in its insertion order.
fn body_text(body: &Value) -> String {
    format!(
        r#"{{"jsonrpc":{},"result":{}}}"#,
        body["jsonrpc"],
        stringify_str(body["result"].as_str().unwrap())
    )
}

#[test]
fn default_properties_match_the_reference() {
    let properties = DeliveryServiceProperties::default();
    assert_eq!(&properties.to_value(), at("deliveryServiceProperties_default"));
    let body = at("rpc_getDeliveryServiceProperties_response");
    assert_eq!(properties.rpc_response_body(), body_text(body));
    assert_eq!(body["result"], canonical::stringify(at("deliveryServiceProperties_default")));
    assert_eq!(DeliveryServiceProperties::from_rpc_response_body(&body.to_string()).unwrap(), properties);
    assert_eq!(properties.message_ttl_ms, 0, "P12: 0 keeps messages until acknowledged");
}

#[test]
fn default_profile_extension_matches_the_reference() {
    let extension = ProfileExtension::default();
    assert_eq!(extension.not_supported_message_types, vec![MessageType::New], "P20");
    let body = at("rpc_getProfileExtension_default_response");
    assert_eq!(extension.rpc_response_body(), body_text(body));
    assert_eq!(parse_rpc_result_body(&body.to_string()).unwrap(), extension.to_value());
    assert_eq!(ProfileExtension::from_rpc_response_body(&body.to_string()).unwrap(), extension);
}
