//! The CCIP-read gateway (EIP-3668) for the names the node serves: its virtual identities
//! under the parent, and its own name.
//!
//! One request, four steps, each its own piece:
//! 1. decode `resolve(name, data)` or `resolveWithContext(name, data, context)` and check that
//!    the query's node is the name's namehash (`dm3::ccip::ResolveRequest`, §12.3);
//! 2. look the record up in the node's own tables ([`LocalNames`]);
//! 3. encode it the way the asking contract expects ([`encoding`]);
//! 4. sign `(resolver, validUntil, calldata, result)` per §12.2 with the gateway signer
//!    ([`signer`]), `validUntil = now + identities.answer_ttl_secs`.
//!
//! Unknown names and records get the reference's "not found" (an empty, signed result).
//! Everything malformed (not hex, not an address, unknown function or record selector, a name
//! that does not DNS-decode or is longer than 255 bytes, a label under a network sub-name that
//! the name scheme cannot produce) is a [`GatewayError`] that [`http`] answers with a 400 and
//! a JSON `message`; nothing here panics on input (a property test feeds it random bytes).

pub mod encoding;
pub mod http;
pub mod signer;

use std::sync::Arc;

use alloy_primitives::Address;
use dm3::ccip::{CalldataError, GatewayResponse, ResolveRequest};
use dm3::crypto::eth::parse_address;
use dm3::encoding::hex_decode;

use crate::identities::LocalNames;
use crate::identities::label::LabelError;
use crate::identities::resolver::LookupError;
use encoding::{ResolverFlavor, encode_result};
pub use signer::{GatewaySigner, GatewaySignerError};

/// The largest calldata accepted, in bytes. A resolve call for a 255-byte name and a text key
/// of a few hundred bytes is well under 1 KiB.
pub const MAX_CALLDATA: usize = 4 * 1024;

/// Why a gateway request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the resolver address (sender) is not a 0x-prefixed 20-byte hex address")]
    BadSender,
    #[error("the calldata is not 0x-prefixed hex")]
    BadHex,
    #[error("the calldata is larger than {MAX_CALLDATA} bytes")]
    TooLarge,
    #[error("malformed calldata: {0}")]
    Calldata(#[from] CalldataError),
    #[error("{name} is not a valid identity name: {source}")]
    InvalidName { name: String, source: LabelError },
    /// A database failure: logged, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LookupError> for GatewayError {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::InvalidName { name, source } => Self::InvalidName { name, source },
            LookupError::Store(e) => Self::Internal(e.to_string()),
        }
    }
}

/// Answers CCIP-read requests with signed records.
#[derive(Clone)]
pub struct Gateway {
    names: LocalNames,
    signer: Arc<GatewaySigner>,
    ttl_secs: u64,
}

impl Gateway {
    pub fn new(names: LocalNames, signer: Arc<GatewaySigner>, ttl_secs: u64) -> Self {
        Self { names, signer, ttl_secs }
    }

    pub fn signer_address(&self) -> Address {
        self.signer.address()
    }

    /// A request as it arrives over HTTP: `sender` and `data` as `0x`-hex text.
    pub async fn respond_hex(
        &self,
        sender: &str,
        data: &str,
        now_secs: u64,
    ) -> Result<GatewayResponse, GatewayError> {
        let sender = parse_address(sender).map_err(|_| GatewayError::BadSender)?;
        // Bound the work before decoding: two hex digits per byte, plus "0x".
        if data.len() > 2 + 2 * MAX_CALLDATA {
            return Err(GatewayError::TooLarge);
        }
        let calldata = hex_decode(data).map_err(|_| GatewayError::BadHex)?;
        self.respond(sender, &calldata, now_secs).await
    }

    /// The signed answer to `calldata`, sent by the resolver contract at `sender`.
    pub async fn respond(
        &self,
        sender: Address,
        calldata: &[u8],
        now_secs: u64,
    ) -> Result<GatewayResponse, GatewayError> {
        if calldata.len() > MAX_CALLDATA {
            return Err(GatewayError::TooLarge);
        }
        let request = ResolveRequest::decode(calldata)?;
        let answer = self.names.answer(request.name(), request.query()).await?;
        let result = encode_result(&answer, request.query(), ResolverFlavor::of(&request));
        let valid_until = now_secs.saturating_add(self.ttl_secs);
        Ok(GatewayResponse::sign(self.signer.wallet(), &sender, calldata, result, valid_until))
    }
}
