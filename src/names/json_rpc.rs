//! `eth_call` over Ethereum JSON-RPC: the one chain operation the ENS client needs.
//!
//! A plain request over our bounded [`HttpFetcher`] rather than alloy's provider: alloy 2.5's
//! HTTP transport pulls reqwest 0.13 and a second TLS stack next to the reqwest 0.12 the rest
//! of the node uses (see `ens_client`). What alloy would add on top (retries, batching,
//! subscriptions) the node does not need for a handful of view calls.
//!
//! The one subtle part is telling a revert from a failure. A reverting `eth_call` is an answer,
//! not an error: EIP-3668 resolvers revert on purpose with `OffchainLookup`. Nodes report it as
//! a JSON-RPC error whose `data` is the revert data: geth, anvil and most providers put the hex
//! string in `error.data`, some (Hardhat, a few proxies) nest it as `error.data.data`; a revert
//! without data comes as code 3 or an "execution reverted" message. Everything else is the
//! node failing, which says nothing about the name.
//!
//! The endpoint URL may carry an API key, so it is never put into an error or a log line.

use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::Address;
use dm3::encoding::{hex_decode, hex_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ResolveError;
use super::http_fetch::{FetchFailure, HttpFetcher};

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call returned these bytes.
    Returned(Vec<u8>),
    /// The call reverted with this revert data (possibly empty).
    Reverted(Vec<u8>),
}

/// The JSON-RPC node did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("the Ethereum JSON-RPC node: {0}")]
    Fetch(FetchFailure),
    #[error("the Ethereum JSON-RPC node's answer is not a JSON-RPC response: {0}")]
    Malformed(&'static str),
    #[error("the Ethereum JSON-RPC node refused eth_call: {message} (code {code})")]
    Node { code: i64, message: String },
}

impl From<RpcError> for ResolveError {
    /// Our own chain node failing says nothing about the name; it may work again later.
    fn from(e: RpcError) -> Self {
        ResolveError::Unavailable(e.to_string())
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

/// A JSON-RPC endpoint.
pub struct JsonRpc {
    http: HttpFetcher,
    url: String,
    next_id: AtomicU64,
}

impl JsonRpc {
    /// `http` should allow private addresses when the node runs next to the chain node
    /// (`http://127.0.0.1:8545`); the URL is the operator's, not a name owner's.
    pub fn new(http: HttpFetcher, url: String) -> Self {
        Self { http, url, next_id: AtomicU64::new(1) }
    }

    /// `eth_call({to, data}, "latest")`.
    pub async fn eth_call(&self, to: &Address, data: &[u8]) -> Result<CallOutcome, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "eth_call",
            "params": [{"to": hex_encode(to.as_slice()), "data": hex_encode(data)}, "latest"],
        });
        let response = self.http.post_json(&self.url, request.to_string()).await.map_err(|e| {
            // The URL stays out of the error: it may carry an API key.
            RpcError::Fetch(e.failure)
        })?;
        match serde_json::from_slice::<Response>(&response.body) {
            Ok(body) => outcome(body),
            Err(_) if !response.is_success() => Err(RpcError::Fetch(FetchFailure::Status(response.status))),
            Err(_) => Err(RpcError::Malformed("not a JSON-RPC response object")),
        }
    }
}

fn outcome(body: Response) -> Result<CallOutcome, RpcError> {
    if let Some(error) = body.error {
        return match revert_data(&error) {
            Some(data) => Ok(CallOutcome::Reverted(data)),
            None => Err(RpcError::Node { code: error.code, message: error.message }),
        };
    }
    let result = body.result.ok_or(RpcError::Malformed("neither result nor error"))?;
    let text = result.as_str().ok_or(RpcError::Malformed("the result is not a hex string"))?;
    hex_decode(text).map(CallOutcome::Returned).map_err(|_| RpcError::Malformed("the result is not 0x-hex"))
}

/// The revert data in a JSON-RPC error, if the error is a revert (see the module documentation).
fn revert_data(error: &ErrorObject) -> Option<Vec<u8>> {
    let hex = match &error.data {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(Value::Object(inner)) => inner.get("data").and_then(Value::as_str),
        _ => None,
    };
    if let Some(data) = hex.and_then(|text| hex_decode(text).ok()) {
        return Some(data);
    }
    let reverted = error.code == 3 || error.message.to_ascii_lowercase().contains("execution reverted");
    reverted.then(Vec::new)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(body: Value) -> Result<CallOutcome, RpcError> {
        outcome(serde_json::from_value(body).unwrap())
    }

    #[test]
    fn results_and_reverts_in_every_dialect() {
        let ok = json!({"jsonrpc": "2.0", "id": 1, "result": "0x0102"});
        assert_eq!(parse(ok), Ok(CallOutcome::Returned(vec![1, 2])));
        let geth = json!({"error": {"code": 3, "message": "execution reverted", "data": "0x556f1830"}});
        assert_eq!(parse(geth), Ok(CallOutcome::Reverted(vec![0x55, 0x6f, 0x18, 0x30])));
        let nested = json!({"error": {"code": -32603, "message": "x", "data": {"data": "0xab"}}});
        assert_eq!(parse(nested), Ok(CallOutcome::Reverted(vec![0xab])));
        let bare = json!({"error": {"code": -32000, "message": "execution reverted"}});
        assert_eq!(parse(bare), Ok(CallOutcome::Reverted(vec![])));
    }

    #[test]
    fn node_failures_are_errors() {
        let limited = json!({"error": {"code": -32005, "message": "rate limited"}});
        assert_eq!(parse(limited), Err(RpcError::Node { code: -32005, message: "rate limited".into() }));
        assert!(matches!(parse(json!({"id": 1})), Err(RpcError::Malformed(_))));
        assert!(matches!(parse(json!({"result": 5})), Err(RpcError::Malformed(_))));
        assert!(matches!(parse(json!({"result": "0x1"})), Err(RpcError::Malformed(_))));
        let error: ResolveError = RpcError::Malformed("x").into();
        assert!(matches!(error, ResolveError::Unavailable(_)));
    }
}
