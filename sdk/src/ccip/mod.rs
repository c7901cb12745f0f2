//! CCIP-read (EIP-3668) for DM3's offchain resolver, both sides of the wire.
//!
//! A DM3 name such as `0x….addr.dm3.eth` resolves through an `ERC3668Resolver`
//! that reverts with `OffchainLookup`; the client asks a gateway, which asks the
//! DM3 handler and signs its answer; the client (or the contract) checks that
//! signature (docs/protocol.md §12, P15). Our node plays the client when it resolves
//! a DM3 profile, and may play the gateway and handler for its own users, so
//! each step has its encoder and its decoder here:
//! - [`offchain_lookup`]: the revert data and the callback call (client);
//! - [`gateway_url`]: gateway URL templates and the handler's request path;
//! - [`calldata`]: the `resolve`/`resolveWithContext` calldata (handler);
//! - [`answer`]: the handler's `result` bytes and HTTP body;
//! - [`gateway_signature`]: the signed gateway response and its verification.
//!
//! Everything decodes untrusted bytes into typed errors and never panics.

mod abi;
pub mod answer;
pub mod calldata;
pub mod gateway_signature;
pub mod gateway_url;
pub mod offchain_lookup;

pub use answer::{Answer, AnswerError, PROFILE_TEXT_KEY, parse_handler_body, profile_text_record};
pub use calldata::{CalldataError, Query, ResolveRequest};
pub use gateway_signature::{
    DEFAULT_TTL_SECS, GatewayResponse, GatewayResponseError, VerifiedResult, encode_gateway_response,
    gateway_signature_hash, verify_gateway_response,
};
pub use gateway_url::{GatewayPathError, GatewayRequest, gateway_request, parse_gateway_path};
pub use offchain_lookup::{OffchainLookup, OffchainLookupError};
