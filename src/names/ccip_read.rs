//! EIP-3668 (CCIP-read): an `eth_call` that may be answered off chain.
//!
//! DM3 names live on offchain resolvers (docs/protocol.md P15, §12.1): the resolver reverts with
//! `OffchainLookup(sender, urls, callData, callback, extraData)`, the client asks a gateway for
//! `callData` and calls `callback(response, extraData)` on the resolver, which checks the
//! gateway's signature (§12.2) and returns the record. The contract does the verifying, so the
//! client only has to follow the protocol faithfully and bound it:
//! - the lookup's `sender` must be the contract called (a nested call must not borrow another
//!   contract's gateway; `OffchainLookup::decode_from` checks it);
//! - gateways are tried in order; a 4xx answer ends the lookup (the gateway says the request
//!   is wrong), a 5xx, transport failure or malformed body moves on to the next URL, as ethers
//!   v5 does;
//! - at most [`MAX_LOOKUPS`] lookups in a row (a callback may itself revert with another
//!   lookup), at most [`MAX_GATEWAY_URLS`] URLs per lookup, and at most
//!   [`MAX_GATEWAY_FETCHES`] gateway requests in the whole call, so a hostile resolver cannot
//!   keep the node busy: one unauthenticated request once made 32 fetches against slow
//!   gateways (4 lookups × 8 URLs). With every request bounded by the fetcher's deadline, and
//!   the whole lookup by the name service's (`names::budget`), so is the call.
//!
//! Gateway fetches go through the guarded [`HttpFetcher`]: their URLs come from the resolver,
//! i.e. from the name's owner.

use alloy_primitives::Address;
use dm3::ccip::{GatewayRequest, OffchainLookup, OffchainLookupError, gateway_request};
use dm3::encoding::{hex_decode, hex_encode};
use serde::Deserialize;

use super::http_fetch::HttpFetcher;
use super::json_rpc::{CallOutcome, JsonRpc, RpcError};

/// Lookups followed in one call. EIP-3668 leaves the bound to clients; real resolvers need one.
pub const MAX_LOOKUPS: usize = 4;
/// Gateway URLs tried per lookup.
pub const MAX_GATEWAY_URLS: usize = 8;
/// Gateway requests made in one call, over all its lookups: a resolver that really serves its
/// names answers from its first or second URL.
pub const MAX_GATEWAY_FETCHES: usize = 8;

/// Why a call with CCIP-read did not return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcipError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the call reverted ({})", revert_summary(.0))]
    Reverted(Vec<u8>),
    #[error("the resolver rejected the gateway's answer ({})", revert_summary(.0))]
    AnswerRejected(Vec<u8>),
    #[error("unusable OffchainLookup: {0}")]
    Lookup(#[from] OffchainLookupError),
    #[error("more than {MAX_LOOKUPS} offchain lookups in a row")]
    TooManyLookups,
    #[error("gateway {template} refused the request with HTTP {status}")]
    GatewayRefused { template: String, status: u16 },
    #[error("no gateway answered: {last}")]
    NoGatewayAnswered { last: String, transient: bool },
}

impl CcipError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rpc(_) => true,
            Self::NoGatewayAnswered { transient, .. } => *transient,
            _ => false,
        }
    }
}

fn revert_summary(data: &[u8]) -> String {
    match data.get(..4) {
        Some(selector) => format!("error {}, {} bytes", hex_encode(selector), data.len()),
        None => "no revert data".to_owned(),
    }
}

#[derive(Deserialize)]
struct GatewayBody {
    data: String,
}

/// `eth_call(to, data)`, following `OffchainLookup` reverts. Returns the final return data.
pub async fn call(
    rpc: &JsonRpc,
    gateways: &HttpFetcher,
    to: Address,
    data: Vec<u8>,
) -> Result<Vec<u8>, CcipError> {
    let mut data = data;
    let mut fetches_left = MAX_GATEWAY_FETCHES;
    for lookups in 0..=MAX_LOOKUPS {
        let revert = match rpc.eth_call(&to, &data).await? {
            CallOutcome::Returned(bytes) => return Ok(bytes),
            CallOutcome::Reverted(revert) => revert,
        };
        if !revert.starts_with(&OffchainLookup::SELECTOR) {
            return Err(if lookups == 0 {
                CcipError::Reverted(revert)
            } else {
                CcipError::AnswerRejected(revert)
            });
        }
        if lookups == MAX_LOOKUPS {
            break;
        }
        // The callback goes to `sender`, which decode_from has checked is `to`.
        let lookup = OffchainLookup::decode_from(&to, &revert)?;
        let response = ask_gateways(gateways, &lookup, &mut fetches_left).await?;
        data = lookup.callback_calldata(&response);
    }
    Err(CcipError::TooManyLookups)
}

/// The first usable gateway answer's `data` bytes.
async fn ask_gateways(
    gateways: &HttpFetcher,
    lookup: &OffchainLookup,
    fetches_left: &mut usize,
) -> Result<Vec<u8>, CcipError> {
    let mut last = "the lookup lists no gateway".to_owned();
    let mut transient = false;
    for template in lookup.urls.iter().take(MAX_GATEWAY_URLS) {
        if *fetches_left == 0 {
            last = format!("{last}; no more than {MAX_GATEWAY_FETCHES} gateway requests per lookup");
            break;
        }
        *fetches_left -= 1;
        let answer = match gateway_request(template, &lookup.sender, &lookup.call_data) {
            GatewayRequest::Get { url } => gateways.get(&url).await,
            GatewayRequest::Post { url, body } => gateways.post_json(&url, body).await,
        };
        // Errors name the template: the filled-in URL carries the whole calldata.
        match answer {
            Ok(response) if response.is_success() => match parse_body(&response.body) {
                Some(data) => return Ok(data),
                None => {
                    last = format!("gateway {template} answered without {{\"data\": \"0x…\"}}");
                    transient = false;
                }
            },
            Ok(response) if (400..500).contains(&response.status) => {
                return Err(CcipError::GatewayRefused {
                    template: template.clone(),
                    status: response.status,
                });
            }
            Ok(response) => {
                last = format!("gateway {template} answered HTTP {}", response.status);
                transient = true;
            }
            Err(e) => {
                last = format!("gateway {template}: {}", e.failure);
                transient = e.failure.is_transient();
            }
        }
    }
    Err(CcipError::NoGatewayAnswered { last, transient })
}

fn parse_body(body: &[u8]) -> Option<Vec<u8>> {
    let body: GatewayBody = serde_json::from_slice(body).ok()?;
    hex_decode(&body.data).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gateway_bodies_must_carry_hex_data() {
        assert_eq!(parse_body(br#"{"data":"0x0102"}"#), Some(vec![1, 2]));
        assert_eq!(parse_body(br#"{"data":"0x"}"#), Some(vec![]));
        assert_eq!(parse_body(br#"{"data":"0102"}"#), None);
        assert_eq!(parse_body(br#"{"result":"0x01"}"#), None);
        assert_eq!(parse_body(b"0x01"), None);
    }

    #[test]
    fn only_rpc_and_unanswered_transient_lookups_are_transient() {
        assert!(CcipError::Rpc(RpcError::Malformed("x")).is_transient());
        assert!(CcipError::NoGatewayAnswered { last: String::new(), transient: true }.is_transient());
        assert!(!CcipError::NoGatewayAnswered { last: String::new(), transient: false }.is_transient());
        assert!(!CcipError::AnswerRejected(vec![1, 2, 3, 4]).is_transient());
        assert!(!CcipError::TooManyLookups.is_transient());
        assert_eq!(CcipError::Reverted(vec![]).to_string(), "the call reverted (no revert data)");
    }
}
