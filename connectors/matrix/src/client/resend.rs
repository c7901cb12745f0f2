//! Sends that happen once even when the homeserver forgot their transaction id.
//!
//! `PUT …/send/{type}/{txnId}` is idempotent only as long as the homeserver remembers the txn
//! id, and Synapse keeps an application service's txn ids (no device) in memory only: a send
//! that reached Synapse just before it crashed is posted a second time when the bridge retries
//! it after the restart (seen in `tests/fault_synapse.rs`). So a send the engine retries
//! ([`Attempt::Retry`]) first reads the ghost's latest events of that type in the room and
//! answers the earlier event's id if one carries the same content. The content is unique to
//! the send: it carries the txn id under [`TXN_KEY`], or is ciphertext, unique by its
//! ratchet index. Only retries pay the read;
//! the engine keeps one send in flight per conversation, so the earlier event, if any, is
//! among the ghost's last few in its portal.

use ruma::api::Direction;
use ruma::api::client::filter::RoomEventFilter;
use ruma::api::client::message::get_message_events;
use ruma::{OwnedEventId, RoomId, UInt, UserId};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Client, ClientError};

/// The content key that carries the send's txn id, so that a retry can recognise its own
/// earlier event.
pub const TXN_KEY: &str = "network.dm3.txn_id";

/// How many of the ghost's latest events of the type a retry reads back.
const LOOK_BACK: u32 = 50;

/// Whether a send was tried before under the same txn id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Nothing can have reached the homeserver yet.
    First,
    /// An earlier attempt may have posted the event without the bridge hearing so.
    Retry,
}

impl Attempt {
    pub fn of(retry: bool) -> Self {
        if retry { Attempt::Retry } else { Attempt::First }
    }
}

/// The part of a timeline event the look-back compares.
#[derive(Deserialize)]
struct Posted {
    event_id: OwnedEventId,
    #[serde(default)]
    content: Map<String, Value>,
}

impl Client {
    /// The id of an event `sender` already posted in `room` with exactly `content`, among its
    /// latest of `event_type`.
    pub(super) async fn posted_before(
        &self,
        sender: &UserId,
        room: &RoomId,
        event_type: &str,
        content: &Map<String, Value>,
    ) -> Result<Option<OwnedEventId>, ClientError> {
        let mut request = get_message_events::v3::Request::new(room.to_owned(), Direction::Backward);
        request.limit = UInt::from(LOOK_BACK);
        let mut filter = RoomEventFilter::default();
        filter.senders = Some(vec![sender.to_owned()]);
        filter.types = Some(vec![event_type.to_owned()]);
        request.filter = filter;
        let response = self.call(request, Some(sender)).await?;
        let found = response
            .chunk
            .iter()
            .filter_map(|raw| raw.deserialize_as_unchecked::<Posted>().ok())
            .find(|posted| &posted.content == content)
            .map(|posted| posted.event_id);
        if let Some(event_id) = &found {
            tracing::info!(%room, %event_id, "a retried send had reached the homeserver; not posted again");
        }
        Ok(found)
    }
}
