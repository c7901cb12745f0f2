//! What a user's client saw in a room: each event as matrix-sdk hands it over, decrypted where
//! it could, and the ones it could not decrypt reported as such, with matrix-sdk's reason.
//!
//! This is the question the encryption tests ask ("what did bob's client show?"), so nothing is
//! filtered or repaired here: an undecryptable event stays one.

use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::UInt;
use serde_json::Value;

use crate::error::ClientError;
use crate::ids::{OwnedEventId, OwnedUserId, RoomId};
use crate::user::MatrixUser;

/// Events per page of `/messages`.
const PAGE: u32 = 100;
/// At most this many pages are read: a history longer than 10,000 events is refused rather
/// than read without end.
const MOST_PAGES: usize = 100;

/// How an event reached the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decryption {
    /// Sent in the clear.
    Clear,
    /// Sent encrypted, and this device decrypted it.
    Decrypted,
    /// Sent encrypted, and this device could not decrypt it; why, in matrix-sdk's words.
    Undecryptable { reason: String },
}

/// One event of a room's timeline, as this device sees it.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    pub event_id: Option<OwnedEventId>,
    pub sender: Option<OwnedUserId>,
    /// The type after decryption (`m.room.message`); `m.room.encrypted` for an undecryptable one.
    pub event_type: String,
    /// The content after decryption; the ciphertext's for an undecryptable one.
    pub content: Value,
    pub decryption: Decryption,
}

impl SeenEvent {
    /// The `body` of a message.
    pub fn body(&self) -> Option<&str> {
        self.content.get("body").and_then(Value::as_str)
    }

    /// The `msgtype` of a message.
    pub fn msgtype(&self) -> Option<&str> {
        self.content.get("msgtype").and_then(Value::as_str)
    }

    /// Whether this is an `m.room.message` (decrypted, or sent so).
    pub fn is_message(&self) -> bool {
        self.event_type == "m.room.message"
    }

    fn from_timeline(event: &TimelineEvent) -> Self {
        let raw: Value = serde_json::from_str(event.raw().json().get()).unwrap_or(Value::Null);
        let decryption = match &event.kind {
            TimelineEventKind::PlainText { .. } => Decryption::Clear,
            TimelineEventKind::Decrypted(_) => Decryption::Decrypted,
            TimelineEventKind::UnableToDecrypt { utd_info, .. } => {
                Decryption::Undecryptable { reason: format!("{:?}", utd_info.reason) }
            }
        };
        SeenEvent {
            event_id: event.event_id(),
            sender: event.sender(),
            event_type: raw.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
            content: raw.get("content").cloned().unwrap_or(Value::Null),
            decryption,
        }
    }
}

impl MatrixUser {
    /// The room's whole timeline, oldest first, as this device sees it (`/messages` forwards,
    /// each event decrypted if this device holds its room key).
    pub async fn read(&self, room: &RoomId) -> Result<Vec<SeenEvent>, ClientError> {
        let room = self.room(room).await?;
        let mut seen = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..MOST_PAGES {
            let mut options = MessagesOptions::forward();
            options.limit = UInt::from(PAGE);
            options.from = from.take();
            let page = room.messages(options).await?;
            if page.chunk.is_empty() {
                return Ok(seen);
            }
            seen.extend(page.chunk.iter().map(SeenEvent::from_timeline));
            match page.end {
                Some(end) => from = Some(end),
                None => return Ok(seen),
            }
        }
        Err(ClientError::HistoryTooLong { room: room.room_id().to_string(), pages: MOST_PAGES })
    }

    /// The messages of the room (events that are, or decrypt to, `m.room.message`, and the ones
    /// that could not be decrypted), oldest first.
    pub async fn messages(&self, room: &RoomId) -> Result<Vec<SeenEvent>, ClientError> {
        let events = self.read(room).await?;
        Ok(events
            .into_iter()
            .filter(|event| {
                event.is_message() || matches!(event.decryption, Decryption::Undecryptable { .. })
            })
            .collect())
    }
}
