//! What a send needs to know before it goes out: the route ([`crate::sending`] decides it) and
//! where it goes. Kept apart from the connector's methods so that the send paths can name
//! them without depending on the module that implements them.

use std::sync::Arc;

use dm3_bridge_connector::{ConnectorError, Outbound};
use ruma::{RoomId, TransactionId, UserId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::Attempt;
use crate::crypto::GhostDevices;

/// How a send reaches its room.
#[derive(Clone)]
pub enum Route {
    Clear,
    /// Megolm, through the ghost's device.
    Encrypted(Arc<GhostDevices>),
}

impl<'a> Target<'a> {
    /// Where `request` goes, as the ghost `ghost` in `room` under `txn` (its parts, parsed).
    pub(crate) fn of<T>(
        ghost: &'a UserId,
        room: &'a RoomId,
        txn: &'a TransactionId,
        request: &Outbound<T>,
    ) -> Self {
        Self { ghost, room, txn, timestamp_ms: request.timestamp_ms, attempt: Attempt::of(request.retry) }
    }
}

impl Route {
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Route::Encrypted(_))
    }
}

/// Who sends into which room, idempotent by which transaction id, stamped when.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub ghost: &'a UserId,
    pub room: &'a RoomId,
    pub txn: &'a TransactionId,
    pub timestamp_ms: Option<u64>,
    /// Whether the engine tried this send before ([`crate::client::Attempt`]): in the clear, a
    /// retry first looks for its earlier event; encrypted, the ghost's device's txn id suffices
    /// (Synapse keeps it across its restarts).
    pub attempt: Attempt,
}

/// Typed content as the JSON object it is sent as.
pub(crate) fn content_object(content: &impl Serialize) -> Result<Map<String, Value>, ConnectorError> {
    match serde_json::to_value(content) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ConnectorError::Permanent("the event content is not a JSON object".to_owned())),
        Err(e) => Err(ConnectorError::Permanent(format!("the event content cannot be serialized: {e}"))),
    }
}
