//! The seam between the HTTP API and the DM3 protocol.
//!
//! The routes own HTTP: paths, body limits, JSON-RPC framing, status codes, metrics. The DM3
//! work behind `dm3_submitMessage`, `/profile` and `/auth` (decrypting delivery information,
//! resolving names, verifying signatures, postmarks, tokens) belongs to the protocol code,
//! which plugs in here as a [`DeliveryProtocol`] trait object. That keeps the two halves
//! independent: the routes can be tested with a stub, and the protocol code never sees axum.
//!
//! Until the protocol is plugged in, [`Unplugged`] answers every such call with
//! `501 Not Implemented`, so a node that runs shows clearly what it cannot do yet.
//!
//! The protocol implementation is built at start-up from a [`ProtocolContext`]: the store, the
//! node keys and the relay settings. Errors come back as [`DeliveryError`], named in the API's
//! terms; `routes::error` maps them to HTTP statuses and JSON-RPC codes in one place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{RelayConfig, UnresolvedSenderPolicy};
use crate::identities::LocalNames;
use crate::node_keys::NodeKeys;
use crate::store::{EnsName, InvalidId, Store, StoreError};

/// A boxed future, so that the trait can be used as `dyn DeliveryProtocol`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a delivery-service operation can fail with, in the API's terms.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request is malformed: bad JSON inside the params, wrong schema, missing envelope.
    /// HTTP 400, JSON-RPC -32602.
    #[error("{0}")]
    InvalidRequest(String),
    /// The envelope exceeds `relay.size_limit` (PROTOCOL.md §8 step 1). HTTP 413, -32011.
    #[error("Message is too large")]
    TooLarge,
    /// Refused for a protocol reason (unknown account, undecryptable delivery information,
    /// bad signature, spam: use the spec code, e.g. -32010 for spam). HTTP 400.
    #[error("{message}")]
    Rejected { code: i32, message: String },
    /// Missing or invalid token. HTTP 401.
    #[error("{0}")]
    Unauthorized(String),
    /// The name does not resolve, or has no account. HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// The protocol code is not plugged in yet. HTTP 501.
    #[error("{0} is not implemented on this node yet")]
    NotImplemented(&'static str),
    /// The node is shutting down or the database is unreachable. HTTP 503.
    #[error("the node is temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure. HTTP 500; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for DeliveryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ShuttingDown => DeliveryError::Unavailable,
            StoreError::Invalid(e) => DeliveryError::InvalidRequest(e.to_string()),
            other => DeliveryError::Internal(other.to_string()),
        }
    }
}

impl From<InvalidId> for DeliveryError {
    fn from(error: InvalidId) -> Self {
        DeliveryError::InvalidRequest(error.to_string())
    }
}

/// Everything a protocol implementation may need, handed over at start-up.
#[derive(Clone)]
pub struct ProtocolContext {
    pub store: Store,
    pub node_keys: Arc<NodeKeys>,
    pub relay: RelayConfig,
    /// The node's own ENS name.
    pub node_name: String,
    pub public_url: String,
    /// The node's own names (its virtual identities and its delivery-service record), read
    /// from its tables; wrap the ENS client with [`LocalNames::with_fallback`] so that the
    /// `Directory` verifies local identities without a chain.
    pub local_names: LocalNames,
}

impl ProtocolContext {
    /// The policy for senders whose profile does not resolve.
    pub fn unresolved_sender(&self) -> UnresolvedSenderPolicy {
        self.relay.unresolved_sender
    }
}

/// Builds the protocol implementation at start-up.
pub type ProtocolFactory = Box<dyn FnOnce(ProtocolContext) -> Arc<dyn DeliveryProtocol> + Send>;

/// The DM3 operations behind the delivery-service API (PROTOCOL.md §9).
///
/// Names arrive as the client sent them (path segment or params); normalizing them is the
/// implementation's job ([`DeliveryProtocol::normalize_name`]).
pub trait DeliveryProtocol: Send + Sync + 'static {
    /// `dm3_submitMessage`. `params` is the JSON-RPC params array as received: `params[0]` is
    /// the envelope as a JSON string (reference) or, leniently, an object (§9.1). Must return
    /// `Ok` only once the envelope is durably stored (`Store::insert_envelope` returned);
    /// a duplicate is also `Ok`. The route answers `200 OK` (P10).
    fn submit_message<'a>(&'a self, params: &'a [Value]) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// `dm3_getProfileExtension [name]`: the extension object; the route wraps it as a JSON
    /// string in `result`.
    fn profile_extension<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>>;

    /// `GET /profile/:name`: the signed user profile stored for the name.
    fn get_profile<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>>;

    /// `POST /profile/:name` with a signed user profile: registers (or replaces) the account
    /// and returns a session token.
    fn register_profile<'a>(
        &'a self,
        name: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>>;

    /// `GET /auth/:name`: a challenge string the client signs verbatim.
    fn issue_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, DeliveryError>>;

    /// `POST /auth/:name` with `{signature, challenge}`: a session token.
    fn redeem_challenge<'a>(
        &'a self,
        name: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>>;

    /// Checks `Authorization: Bearer <token>` for routes of `name`; returns the normalized
    /// account name the token is valid for.
    fn authorize<'a>(
        &'a self,
        name: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<EnsName, DeliveryError>>;

    /// ENS-normalizes a name from a client (e.g. an acknowledgement's `contactAddress`).
    fn normalize_name(&self, name: &str) -> Result<EnsName, DeliveryError>;
}

/// The stand-in until the protocol code is plugged in: every DM3 operation answers 501.
pub struct Unplugged;

impl Unplugged {
    /// A [`ProtocolFactory`] for [`Unplugged`].
    pub fn factory() -> ProtocolFactory {
        Box::new(|_| Arc::new(Unplugged))
    }
}

impl DeliveryProtocol for Unplugged {
    fn submit_message<'a>(&'a self, _: &'a [Value]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("dm3_submitMessage")) })
    }

    fn profile_extension<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("dm3_getProfileExtension")) })
    }

    fn get_profile<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("GET /profile")) })
    }

    fn register_profile<'a>(&'a self, _: &'a str, _: Value) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("POST /profile")) })
    }

    fn issue_challenge<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("GET /auth")) })
    }

    fn redeem_challenge<'a>(&'a self, _: &'a str, _: Value) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("POST /auth")) })
    }

    fn authorize<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<EnsName, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::NotImplemented("authentication")) })
    }

    fn normalize_name(&self, _: &str) -> Result<EnsName, DeliveryError> {
        Err(DeliveryError::NotImplemented("name normalization"))
    }
}
