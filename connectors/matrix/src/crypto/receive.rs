//! To-device messages received by ghost devices, opened and kept, and room events decrypted
//! with the room keys they brought.
//!
//! The homeserver forgets a to-device message once the bridge answered the transaction that
//! carried it, so the route keeps it first ([`super::inbox_store`]) and [`super::inbox`] opens
//! it here afterwards. Each message is one step, written in one transaction with the account
//! over the version read ([`super::store::OlmStepWrite`]): the Olm session it opened or
//! advanced, the room key it carried, and the kept message marked opened, so a message is
//! never opened twice. A message that does not open is told apart:
//! - no session opens it ([`Opening::NotYet`]): an earlier message of its Olm session may still
//!   come (the catch-up brings what the push lost), or it was opened before (the catch-up brings
//!   what the push brought too): it waits, and is dropped quietly if nothing opens it;
//! - forged or not for this device ([`Opening::Never`]): logged and dropped; the sender's client
//!   sends the key again when asked.

use ruma::UserId;
use serde_json::{Map, Value};

use super::account::AccountError;
use super::devices::{DeviceError, GhostDevices};
use super::inbox_store::Via;
use super::megolm::{self, MegolmError};
use super::olm::{self, OlmError};
use super::store::{AccountWrite, IndexClaim, OlmStepWrite, RoomKeyWrite, Saved, SessionWrite};
use super::to_device::ToDeviceEvent;

/// How often a step that found another process's write starts again from the read.
const ATTEMPTS: usize = 3;

/// Why a room event could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error(transparent)]
    Megolm(#[from] MegolmError),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl DecryptError {
    /// Whether the key may still come (hold the event and try again).
    pub fn is_missing_key(&self) -> bool {
        matches!(self, DecryptError::Megolm(MegolmError::MissingKey(_)))
    }
}

/// A room event decrypted, and what its key is known by.
#[derive(Debug)]
pub struct OpenedEvent {
    /// The plaintext event (`type`, `content`, `room_id`).
    pub event: Map<String, Value>,
    /// The Curve25519 key of the device whose Olm message brought the key.
    pub sender_key: String,
    /// The user whose Olm message brought the key.
    pub sender_user: String,
    /// The Ed25519 key the sending device claimed in that Olm message.
    pub signing_key: String,
    pub session_id: String,
    pub message_index: u32,
}

/// What opening one to-device message did.
#[derive(Debug)]
pub enum Opening {
    /// Opened and kept; whether it brought a room key.
    Kept { room_key: bool },
    /// No Olm session opens it (yet): a message before it may still come, or it was opened before.
    NotYet,
    /// It can never open here: why.
    Never(String),
}
impl GhostDevices {
    /// Opens and keeps what `events` bring at once, without keeping them first; how many room
    /// keys were kept. An error only when the store failed. The route keeps them first instead
    /// ([`super::inbox`]); this is for callers that hold the messages themselves.
    pub async fn receive(&self, events: Vec<ToDeviceEvent>) -> Result<usize, DeviceError> {
        let mut kept = 0;
        for event in events {
            if let Opening::Kept { room_key: true } = self.open_to_device(&event, None, Via::Push).await? {
                kept += 1;
            }
        }
        Ok(kept)
    }

    /// Opens one to-device message; `seq` is its place in the kept messages, marked opened in
    /// the step's transaction. An error only when the store failed or the account kept changing.
    pub(super) async fn open_to_device(
        &self,
        event: &ToDeviceEvent,
        seq: Option<u64>,
        via: Via,
    ) -> Result<Opening, DeviceError> {
        let ghost: &UserId = &event.to_user;
        if event.event_type != "m.room.encrypted" {
            tracing::debug!(%ghost, event_type = %event.event_type, "an unencrypted to-device event, ignored");
            return Ok(Opening::Never(format!("an unencrypted {}", event.event_type)));
        }
        let sender_key = match olm::sender_key(&event.content) {
            Ok(key) => key.to_base64(),
            Err(error) => return Ok(Opening::Never(error.to_string())),
        };
        for _ in 0..ATTEMPTS {
            let Some(mut loaded) = self.load(ghost).await? else {
                tracing::warn!(%ghost, "a to-device message for a ghost without a device; dropped");
                return Ok(Opening::Never("the ghost has no device here".to_owned()));
            };
            if loaded.device.device != event.to_device {
                tracing::warn!(%ghost, device = %event.to_device, "a to-device message for another device of the ghost; dropped");
                return Ok(Opening::Never("for another device of the ghost".to_owned()));
            }
            let sessions = self.store().olm_sessions(ghost, &sender_key).await?;
            let sessions = sessions.iter().filter_map(|p| olm::unpickle(p).ok()).collect();
            let sender = event.sender.as_str();
            let opened = match olm::open(
                &mut loaded.account,
                &loaded.device,
                sender,
                &event.content,
                sessions,
            ) {
                Ok(opened) => opened,
                Err(OlmError::NoSession) => {
                    // Not a forgery: a message whose session opens later, or one opened
                    // before and brought again (the catch-up repeats what the push brought).
                    tracing::debug!(%ghost, %sender, via = via.as_str(), "no Olm session opens a to-device message (yet)");
                    return Ok(Opening::NotYet);
                }
                Err(error) => {
                    tracing::warn!(%ghost, %sender, %error, "a to-device message did not open; dropped");
                    return Ok(Opening::Never(error.to_string()));
                }
            };
            let payload_type =
                opened.payload.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            let room_key = match room_key(&opened.payload, &sender_key, sender) {
                Ok(key) => key,
                Err(error) => {
                    tracing::warn!(%ghost, %sender, %error, "a room key was refused");
                    None
                }
            };
            let pickle = loaded.account.pickle()?;
            let session = olm::pickle(&opened.session).map_err(|e| AccountError::Pickle(e.to_string()))?;
            let kept = room_key.is_some();
            let step = OlmStepWrite {
                account: AccountWrite {
                    ghost,
                    device: &loaded.device.device,
                    pickle: &pickle,
                    device_published: loaded.device_published,
                    expected: loaded.version,
                },
                session: SessionWrite {
                    sender_key: sender_key.clone(),
                    session_id: opened.session.session_id(),
                    pickle: session,
                },
                room_key,
                inbox_seq: seq,
            };
            match self.store().save_olm_step(step).await? {
                Saved::Written(_) => {
                    tracing::debug!(%ghost, %sender, payload = %payload_type, room_key = kept, via = via.as_str(),
                        "to-device message opened and kept");
                    return Ok(Opening::Kept { room_key: kept });
                }
                Saved::Conflict => continue,
            }
        }
        Err(DeviceError::Contended)
    }

    /// Decrypts a Megolm `m.room.encrypted` `content` of an event in `room_id`, with a room
    /// key `ghost`'s device received: the plaintext event (`type`, `content`) and the
    /// Curve25519 key of the device that sent it.
    pub async fn decrypt(
        &self,
        ghost: &UserId,
        room_id: &str,
        content: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, String), DecryptError> {
        self.open_event(ghost, room_id, content).await.map(|opened| (opened.event, opened.sender_key))
    }

    /// [`decrypt`](Self::decrypt), with what the caller checks the event against: who sent
    /// the key, and where in its session the ciphertext was. A key kept before its sender was
    /// recorded is a missing key (asked for again, it is kept with its sender).
    pub async fn open_event(
        &self,
        ghost: &UserId,
        room_id: &str,
        content: &Map<String, Value>,
    ) -> Result<OpenedEvent, DecryptError> {
        let envelope = megolm::envelope(content)?;
        let stored =
            self.store().room_key(ghost, room_id, &envelope.session_id).await.map_err(DeviceError::from)?;
        let Some(stored) = stored.filter(|key| !key.sender_user.is_empty()) else {
            return Err(MegolmError::MissingKey(envelope.session_id).into());
        };
        let mut session = megolm::unpickle(&stored.pickle)
            .map_err(|e| MegolmError::Undecryptable(format!("stored key: {e}")))?;
        let (event, message_index) = megolm::decrypt_at(&mut session, room_id, &envelope)?;
        Ok(OpenedEvent {
            event,
            sender_key: stored.sender_key,
            sender_user: stored.sender_user,
            signing_key: stored.signing_key,
            session_id: envelope.session_id,
            message_index,
        })
    }

    /// Keeps `claim.event_id` as the event at its key's message index: `false` if another
    /// event was decrypted there first (a replay).
    pub async fn claim_index(&self, claim: IndexClaim<'_>) -> Result<bool, DeviceError> {
        Ok(self.store().claim_index(claim).await?)
    }
}

/// The room key an opened payload from `sender` carries, if it is `m.room_key` or an
/// `m.forwarded_room_key` the sending device made itself.
fn room_key(
    payload: &Map<String, Value>,
    sender_key: &str,
    sender: &str,
) -> Result<Option<RoomKeyWrite>, MegolmError> {
    let content = || {
        payload
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| MegolmError::BadKey("no content".to_owned()))
    };
    let key = match payload.get("type").and_then(Value::as_str) {
        Some("m.room_key") => megolm::room_key(content()?)?,
        Some("m.forwarded_room_key") => megolm::forwarded_room_key(content()?, sender_key)?,
        _ => return Ok(None),
    };
    let signing_key =
        payload.get("keys").and_then(|k| k.get("ed25519")).and_then(Value::as_str).unwrap_or_default();
    let pickle = megolm::pickle(&key.session).map_err(|e| MegolmError::BadKey(e.to_string()))?;
    Ok(Some(RoomKeyWrite {
        room_id: key.room_id,
        session_id: key.session_id,
        sender_key: sender_key.to_owned(),
        signing_key: signing_key.to_owned(),
        sender_user: sender.to_owned(),
        pickle,
    }))
}
