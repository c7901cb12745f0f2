//! The delivery service: the DM3 protocol behind the HTTP API (docs/protocol.md §8, §9).
//!
//! [`Relay`] implements [`DeliveryProtocol`], the seam the routes call. It owns no HTTP and no
//! SQL: it decides, with the SDK (`dm3`) for the byte formats, the [`Directory`] for names,
//! and the [`Store`] for state. One file per flow:
//! - [`submit`]: `dm3_submitMessage`, from the received envelope to the durable insert;
//! - [`accounts`]: `POST/GET /profile`, `dm3_getProfileExtension`, and which profile key
//!   counts for an account right now;
//! - [`login`]: the challenge flow of `GET/POST /auth`;
//! - [`sessions`]: the tokens those hand out, and the check of `Authorization: Bearer` (and of
//!   a live-delivery handshake, which also learns when the session ends);
//! - [`names`]: turning what clients send into normalized names, once, at the edge.
//!
//! Where we deliberately differ from the reference delivery service, and why:
//! - the sender is authenticated: the envelope's metadata signature must verify with the key
//!   of the sender's resolved profile (P14; docs/design.md invariants). A sender whose profile does
//!   not resolve follows `relay.unresolved_sender`;
//! - accounts, tokens and routes are bound to the normalized *name*, not to the address
//!   behind it (P18), and tokens are opaque random strings stored only as hashes;
//! - challenges are single use (the reference's JWT challenges can be replayed until expiry).

mod accounts;
mod login;
mod names;
mod sessions;
mod submit;

use std::sync::{Arc, OnceLock};

use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::SigningKeyPair;
use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3_bridge_connector::BoxFuture;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::RelayConfig;
use crate::identities::resolver::LocalNames;
use crate::names::directory::Directory;
use crate::protocol::{
    DeliveryError, DeliveryProtocol, InboxSink, LiveSession, LiveSink, LocalSubmit, ProtocolContext,
    ProtocolFactory,
};
use crate::store::Store;

pub use sessions::SESSION_TTL_MS;

/// The node's DM3 delivery service.
pub struct Relay {
    store: Store,
    directory: Directory,
    relay: RelayConfig,
    node_name: String,
    /// Opens `deliveryInformation` (§8 step 2).
    encryption: KxKeyPair,
    /// Signs postmarks (§8 step 7).
    signing: SigningKeyPair,
    /// The node's own names: which receivers are virtual identities.
    local_names: LocalNames,
    /// Where envelopes for virtual identities go, plugged in at start-up when the node bridges.
    inbox: OnceLock<Arc<dyn InboxSink>>,
    /// Live delivery, told of each envelope stored for an account; plugged in at start-up.
    live: OnceLock<Arc<dyn LiveSink>>,
}

impl Relay {
    /// The relay over `context`, looking names up in `directory`.
    pub fn new(context: ProtocolContext, directory: Directory) -> Self {
        let keys = &context.node_keys;
        // The SDK's key types, made once: the node keys stay sealed on disk and zeroized here.
        let encryption = KxKeyPair::from_secret(*Zeroizing::new(keys.encryption_secret().to_bytes()));
        let signing = SigningKeyPair::from_seed(&Zeroizing::new(keys.signing_key().to_bytes()));
        Self {
            store: context.store,
            directory,
            relay: context.relay,
            node_name: context.node_name,
            encryption,
            signing,
            local_names: context.local_names,
            inbox: OnceLock::new(),
            live: OnceLock::new(),
        }
    }

    /// The [`ProtocolFactory`] that [`crate::node::Node::start`] takes.
    pub fn factory(directory: Directory) -> ProtocolFactory {
        Box::new(move |context| {
            // The node's own virtual identities answer first, without a chain round trip;
            // every other name goes to `[[names.static]]` and ENS.
            let resolver = context.local_names.clone().with_fallback(directory.resolver().clone());
            let directory = directory.with_resolver(Arc::new(resolver));
            Arc::new(Relay::new(context, directory))
        })
    }
}

impl LocalSubmit for Relay {
    fn submit_envelope<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.submit_parsed(envelope))
    }
}

impl DeliveryProtocol for Relay {
    fn plug_inbox(&self, inbox: Arc<dyn InboxSink>) {
        if self.inbox.set(inbox).is_err() {
            tracing::warn!("the bridge's inbox was plugged in twice; the first one stays");
        }
    }

    fn submit_message<'a>(&'a self, params: &'a [Value]) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.submit(params))
    }

    fn profile_extension<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(self.extension(name))
    }

    fn get_profile<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DeliveryError>> {
        Box::pin(self.stored_profile(name))
    }

    fn register_profile<'a>(
        &'a self,
        name: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(self.register(name, body))
    }

    fn issue_challenge<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(self.challenge(name))
    }

    fn redeem_challenge<'a>(
        &'a self,
        name: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<String, DeliveryError>> {
        Box::pin(self.answer_challenge(name, body))
    }

    fn authorize<'a>(
        &'a self,
        name: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<EnsName, DeliveryError>> {
        Box::pin(self.check_token(name, bearer))
    }

    fn normalize_name(&self, name: &str) -> Result<EnsName, DeliveryError> {
        names::parse_name(name)
    }

    fn plug_live(&self, live: Arc<dyn LiveSink>) {
        if self.live.set(live).is_err() {
            tracing::warn!("live delivery was plugged in twice; the first one stays");
        }
    }

    fn live_session<'a>(
        &'a self,
        name: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<LiveSession, DeliveryError>> {
        Box::pin(self.session(name, token))
    }
}
