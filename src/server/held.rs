//! A connection's places under the connection caps, held for as long as anything serves it.
//!
//! The accept loop takes a place under `limits.max_connections` and one under
//! `limits.max_connections_per_ip` before it serves a connection. An ordinary connection gives
//! them back when its task ends. A connection upgraded to a websocket (live delivery,
//! `crate::live`) outlives that task: hyper hands the socket over and the task returns. So the
//! places travel in every request's extensions as a [`HeldConnection`], and the Socket.IO server,
//! which keeps the upgrade request's parts for the socket's whole life, keeps them too: a
//! websocket counts against both caps until it closes, and `dm3_http_connections` counts it.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::peers::PeerSlot;
use crate::telemetry::metrics::HTTP_CONNECTIONS;

/// The places of one connection; given back when the last clone is dropped.
#[derive(Clone)]
pub(super) struct HeldConnection {
    _places: Arc<Places>,
}

struct Places {
    _slot: OwnedSemaphorePermit,
    _peer: PeerSlot,
}

impl HeldConnection {
    pub(super) fn new(slot: OwnedSemaphorePermit, peer: PeerSlot) -> Self {
        metrics::gauge!(HTTP_CONNECTIONS).increment(1.0);
        Self { _places: Arc::new(Places { _slot: slot, _peer: peer }) }
    }
}

impl Drop for Places {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_CONNECTIONS).decrement(1.0);
    }
}
