//! Gateway URLs: from an `OffchainLookup` URL template to an HTTP request, and
//! back from the request path to `(resolver, calldata)` on the serving side.
//!
//! EIP-3668: `{sender}` becomes the lowercase `0x`-hex sender and `{data}` the
//! `0x`-hex calldata; a template with `{data}` is fetched with GET, any other
//! with POST and the JSON body `{"data": …, "sender": …}` (ethers v5 writes the
//! keys in that order). ethers substitutes only the first occurrence of each
//! placeholder; we substitute all, which only differs for templates no gateway uses.
//!
//! DM3's gateway and handler serve `GET /:resolverAddr/:calldata`, with an optional
//! `.json` suffix that they strip (`ccipGateway.ts`, `resolverEndpoint.ts`, §12.2–12.3).

use alloy_primitives::Address;

use crate::crypto::eth::parse_address;
use crate::encoding::{hex_decode, hex_encode};

/// How to ask one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRequest {
    Get { url: String },
    Post { url: String, body: String },
}

/// Why a request path is not `/{resolver}/{calldata}[.json]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayPathError {
    #[error("the gateway path is not /<resolver address>/<0x calldata>")]
    Shape,
    #[error("the resolver in the gateway path is not an address")]
    Resolver,
    #[error("the calldata in the gateway path is not 0x-hex")]
    Calldata,
}

/// The request for one URL template of an `OffchainLookup`.
pub fn gateway_request(template: &str, sender: &Address, call_data: &[u8]) -> GatewayRequest {
    let sender = hex_encode(sender.as_slice());
    let data = hex_encode(call_data);
    let url = template.replace("{sender}", &sender).replace("{data}", &data);
    if template.contains("{data}") {
        GatewayRequest::Get { url }
    } else {
        // Both values are hex, which needs no JSON escaping.
        let body = format!("{{\"data\":\"{data}\",\"sender\":\"{sender}\"}}");
        GatewayRequest::Post { url, body }
    }
}

/// Splits a gateway or handler path into the resolver address and the calldata.
pub fn parse_gateway_path(path: &str) -> Result<(Address, Vec<u8>), GatewayPathError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix(".json").unwrap_or(path);
    let (resolver, calldata) = path.split_once('/').ok_or(GatewayPathError::Shape)?;
    if calldata.contains('/') {
        return Err(GatewayPathError::Shape);
    }
    let resolver = parse_address(resolver).map_err(|_| GatewayPathError::Resolver)?;
    let calldata = hex_decode(calldata).map_err(|_| GatewayPathError::Calldata)?;
    Ok((resolver, calldata))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn templates_choose_get_or_post() {
        let sender = Address::repeat_byte(0xab);
        let hex = format!("0x{}", "ab".repeat(20));
        assert_eq!(
            gateway_request("https://gw/{sender}/{data}.json", &sender, &[1, 2]),
            GatewayRequest::Get { url: format!("https://gw/{hex}/0x0102.json") }
        );
        assert_eq!(
            gateway_request("https://gw/post", &sender, &[1, 2]),
            GatewayRequest::Post {
                url: "https://gw/post".into(),
                body: format!("{{\"data\":\"0x0102\",\"sender\":\"{hex}\"}}"),
            }
        );
    }

    #[test]
    fn paths_parse_strictly() {
        let resolver = Address::repeat_byte(0x11);
        let path = format!("/{}/0x0102.json", hex_encode(resolver.as_slice()));
        assert_eq!(parse_gateway_path(&path).unwrap(), (resolver, vec![1, 2]));
        assert_eq!(parse_gateway_path(&path.replace(".json", "")).unwrap(), (resolver, vec![1, 2]));
        assert_eq!(parse_gateway_path("/0x0102"), Err(GatewayPathError::Shape));
        assert_eq!(parse_gateway_path("/a/b/c"), Err(GatewayPathError::Shape));
        assert_eq!(parse_gateway_path("/0x12/0x00"), Err(GatewayPathError::Resolver));
        assert_eq!(
            parse_gateway_path(&format!("/{}/0x0", hex_encode(resolver.as_slice()))),
            Err(GatewayPathError::Calldata)
        );
    }
}
