//! The seam between the HTTP API and the DM3 protocol.
//!
//! The routes own HTTP: paths, body limits, JSON-RPC framing, status codes, metrics. The DM3
//! work behind `dm3_submitMessage`, `/profile` and `/auth` (decrypting delivery information,
//! resolving names, verifying signatures, postmarks, tokens) belongs to the protocol code
//! ([`crate::delivery::Relay`]), which plugs in here as a [`DeliveryProtocol`] trait object.
//! That keeps the two halves independent: the routes can be tested with a stub, and the
//! protocol code never sees axum.
//!
//! The protocol implementation is built at start-up from a [`ProtocolContext`]: the store, the
//! node keys and the relay settings. Errors come back as [`DeliveryError`], named in the API's
//! terms; `http::error` maps them to HTTP statuses and JSON-RPC codes in one place.
//!
//! Two smaller seams join the relay and the bridge engine in process, typed, so that neither
//! module knows the other:
//! - [`LocalSubmit`]: the relay's entry for an envelope this node itself posts (the engine
//!   delivering a network user's message to a DM3 user of this node). It takes the parsed
//!   envelope, with no JSON-RPC text in between, and checks it exactly as a submit from the
//!   network: size as the reference computes it, hash, sender authentication, dedup;
//! - [`InboxSink`]: where the relay hands an envelope for one of the node's virtual identities
//!   once it passed those checks: the engine's inbox, plugged in at start-up
//!   ([`DeliveryProtocol::plug_inbox`]) when the node bridges.
//!
//! One more joins the relay and live delivery ([`crate::live`]), the Socket.IO face that pushes
//! stored envelopes to connected clients: [`LiveSink`], told of each envelope once it is
//! committed ([`DeliveryProtocol::plug_live`]); the face checks its handshakes with
//! [`DeliveryProtocol::live_session`].

use std::sync::Arc;

use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::network::Network;
use dm3_bridge_connector::BoxFuture;
use serde_json::Value;

use crate::config::{RelayConfig, UnresolvedSenderPolicy};
use crate::identities::LocalNames;
use crate::node_keys::NodeKeys;
use crate::store::{Inserted, InvalidId, NewEnvelope, Store, StoreError};

/// What a delivery-service operation can fail with, in the API's terms.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request is malformed: bad JSON inside the params, wrong schema, missing envelope,
    /// a name that is not an ENS name.
    #[error("{0}")]
    InvalidRequest(String),
    /// The envelope exceeds `relay.size_limit` (docs/protocol.md §8 step 1).
    #[error("Message is too large")]
    TooLarge,
    /// Well-formed, but refused for a protocol reason; `reason` names it for clients (through
    /// its JSON-RPC code) and for the metrics.
    #[error("{message}")]
    Rejected { reason: Rejection, message: String },
    /// Missing, unknown, expired or foreign session token.
    #[error("{0}")]
    Unauthorized(String),
    /// The name has no account on this node.
    #[error("{0}")]
    NotFound(String),
    /// The receiver's queue of messages from this sender is full (a virtual identity's inbox
    /// conversation, docs/engine.md "Bounds"): nothing was queued, and retrying later, once some
    /// were delivered, succeeds.
    #[error("{0}")]
    Backlogged(String),
    /// The sender, or the bridged user it writes to, is past their rate limit for envelopes to
    /// virtual identities (`[rate_limits] dm3_sender_*`, `bridged_user_*`; docs/relay.md, "Block
    /// and rate limits"): the reference's spam code, and a retry later succeeds.
    #[error("{0}")]
    SpamLimited(String),
    /// The node is shutting down, or the database or a name source does not answer; retrying
    /// later may succeed.
    #[error("the node is temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a well-formed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The receiver (or the named user) has no account on this node (§8 step 5).
    UnknownAccount,
    /// `metadata.deliveryInformation` does not open with this node's X25519 key.
    Undecryptable,
    /// The envelope's hash does not match what it carries (npm format: `encryptedMessageHash`).
    HashMismatch,
    /// A signature does not verify: the envelope metadata against the sender's profile key,
    /// a profile against its name's address, a challenge against the account's key.
    BadSignature,
    /// The sender has no verifiable DM3 profile, and `relay.unresolved_sender = "reject"`.
    UnresolvedSender,
    /// The name does not resolve to an address, so no profile can be checked for it (P15).
    UnresolvedName,
    /// The login challenge is unknown, already used, expired, or issued for another name.
    InvalidChallenge,
    /// The sender does not meet the receiver's spam rules (none are configurable yet).
    Spam,
    /// The bridged user blocked the sender (docs/relay.md, "Block and rate limits"), or left the
    /// conversation with them: nothing from the sender reaches them until they unblock or return.
    Blocked,
    /// The name is one this node serves itself (its own, or one under `[identities] parent`):
    /// it cannot be registered as an account from outside.
    ReservedName,
    /// The profile does not list this node among its delivery services, so this node is not
    /// the place to register it.
    NotThisNode,
}

impl Rejection {
    /// A bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown_account",
            Self::Undecryptable => "undecryptable",
            Self::HashMismatch => "hash_mismatch",
            Self::BadSignature => "bad_signature",
            Self::UnresolvedSender => "unresolved_sender",
            Self::UnresolvedName => "unresolved_name",
            Self::InvalidChallenge => "invalid_challenge",
            Self::Spam => "spam",
            Self::Blocked => "blocked",
            Self::ReservedName => "reserved_name",
            Self::NotThisNode => "not_this_node",
        }
    }
}

impl DeliveryError {
    /// A refusal for `reason`.
    pub fn rejected(reason: Rejection, message: impl Into<String>) -> Self {
        Self::Rejected { reason, message: message.into() }
    }

    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::TooLarge => "too_large",
            Self::Rejected { reason, .. } => reason.label(),
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Backlogged(_) => "backlogged",
            Self::SpamLimited(_) => "spam_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
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

/// A session as live delivery needs it: whose it is and until when (docs/relay.md, "Live
/// delivery").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The normalized account name the token was issued for.
    pub name: EnsName,
    /// When the session ends, in Unix milliseconds: nothing is pushed to it from then on.
    pub expires_at_ms: i64,
}

/// Where the relay tells live delivery ([`crate::live`]) that an envelope was stored.
pub trait LiveSink: Send + Sync {
    /// Whether `receiver` has a live socket now. The relay keeps the stored form for a push only
    /// then, so a node nobody listens to copies nothing.
    fn listening(&self, receiver: &EnsName) -> bool;

    /// `envelope`, the stored form's JSON text (P9, with its postmark), was committed for
    /// `receiver` for the first time: push it to the receiver's live sockets. Must not wait: it
    /// runs on the submit's path, before the sender's `200 OK`.
    fn stored(&self, receiver: &EnsName, envelope: &str);
}

/// Builds the protocol implementation at start-up.
pub type ProtocolFactory = Box<dyn FnOnce(ProtocolContext) -> Arc<dyn DeliveryProtocol> + Send>;

/// The relay's entry for an envelope posted in process, by this node itself.
pub trait LocalSubmit: Send + Sync {
    /// Checks and accepts `envelope` as [`DeliveryProtocol::submit_message`] does a received
    /// one (everything after parsing it is the same): `Ok` only once it is durably stored or
    /// queued for the bridge, a duplicate included.
    fn submit_envelope<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// How the bridge carries an envelope to a virtual identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriage {
    /// The node holds the identity's keys: the bridge opens the envelope and bridges the message.
    /// The envelope is queued in its stored form (delivery information in clear, P9).
    Opened,
    /// The identity holds its own keys (gateway mode, docs/gateway.md section 5): the envelope
    /// is queued as its sender sealed it and reaches the network user unopened.
    Sealed,
}

/// Where the relay hands envelopes for the node's virtual identities: the engine's inbox.
pub trait InboxSink: Send + Sync {
    /// Durably queues `envelope` (already checked and authenticated, without a postmark, in the
    /// form `carriage` says) for the bridge; a replay of one queued before is
    /// [`Inserted::Duplicate`]. The bridge may refuse it: the receiver (a user of `network`)
    /// blocked the sender or left their conversation, or a rate limit is reached
    /// (docs/relay.md, "Block and rate limits").
    fn queue_envelope<'a>(
        &'a self,
        envelope: &'a NewEnvelope,
        network: Option<Network>,
        carriage: Carriage,
    ) -> BoxFuture<'a, Result<Inserted, DeliveryError>>;

    /// Whether the bridge delivers to the users of `network` on this node (a network runs for
    /// them). An identity of a network that does not run here is refused at submit: accepted,
    /// its envelope would wait for a connector that never comes.
    fn serves(&self, _network: Network) -> bool {
        true
    }
}

/// The DM3 operations behind the delivery-service API (docs/protocol.md §9).
///
/// Names arrive as the client sent them (path segment or params); normalizing them is the
/// implementation's job ([`DeliveryProtocol::normalize_name`]). The same checks serve the
/// node's own in-process posts ([`LocalSubmit`]).
pub trait DeliveryProtocol: LocalSubmit + Send + Sync + 'static {
    /// Plugs in the engine's inbox at start-up, when the node bridges: from then on, envelopes
    /// for the node's virtual identities go there instead of being stored for retrieval. A
    /// protocol without virtual identities ignores it.
    fn plug_inbox(&self, _inbox: Arc<dyn InboxSink>) {}

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

    /// Plugs in live delivery at start-up: from then on, each envelope stored for an account
    /// is also handed to `live` once committed. A protocol that stores nothing ignores it.
    fn plug_live(&self, _live: Arc<dyn LiveSink>) {}

    /// The session `token` opens for `name` (as the client sent it), for a live-delivery
    /// handshake: the same checks as [`DeliveryProtocol::authorize`], and the session's end. A
    /// protocol without sessions refuses.
    fn live_session<'a>(
        &'a self,
        _name: &'a str,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<LiveSession, DeliveryError>> {
        Box::pin(async { Err(DeliveryError::Unauthorized("no sessions for live delivery here".to_owned())) })
    }
}
