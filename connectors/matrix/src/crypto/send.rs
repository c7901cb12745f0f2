//! A ghost's event sent into an encrypted room: Megolm, its key shared over Olm first, in the
//! order that never sends what was not saved.
//!
//! [`GhostDevices::send_encrypted`] holds the ghost's lease (`olm-account:<user>`, the same as
//! for its keys), and then:
//!
//! 1. sends again the room keys an earlier attempt saved but did not see acknowledged
//!    ([`OutboundStore::pending`]), with their transaction ids;
//! 2. reads the room (members, rotation), its members' devices (kept lists, `/keys/query` for
//!    those not kept or outdated, each checked: [`super::device_lists`], [`super::recipients`])
//!    and the room's outbound session; replaces the session when it is
//!    spent ([`super::outbound::Rotation`]) or a device it was shared with is gone;
//! 3. encrypts the room key for every device that lacks it, over the Olm session the ghost's
//!    device has with it, or one opened with a claimed one-time key; encrypts the event;
//! 4. **saves** the group session (its ratchet now past the event), the Olm sessions, the
//!    devices now holding the key and the room keys to send, in one transaction over the
//!    account's version: a conflict (another process stepped the ghost) starts again from 2;
//! 5. sends the room keys (`/sendToDevice` as the device), forgets them as pending, then sends
//!    the event as the device with the job's transaction id.
//!
//! A `kill -9` anywhere loses nothing: before 4 nothing left the process; after it, the next
//! attempt sends the saved room keys first and encrypts again at the next index under the same
//! transaction id, which the homeserver answers with the first event if it had arrived. A
//! device that has no one-time key left is skipped, logged, and tried at the next event.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ruma::{OwnedEventId, OwnedTransactionId, RoomId, TransactionId, UserId};
use serde_json::{Map, Value};
use vodozemac::olm::SessionConfig;

use super::device::GhostDevice;
use super::devices::{ATTEMPTS, DeviceError, GhostDevices, Loaded};
use super::olm;
use super::outbound::{OutboundError, OutboundSession};
use super::outbound_store::{OutboundStep, OutboundStore, PendingToDevice, SharedWith};
use super::recipients::{Recipient, by_user, one_time_key, room_sending};
use super::share::{Sender, ShareError, encrypt, room_key_payload};
use super::store::{AccountWrite, Saved, SessionWrite};
use crate::client::ClientError;

/// The to-device event type of an Olm message.
const ENCRYPTED: &str = "m.room.encrypted";

/// Why an event could not be sent encrypted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("this node keeps no outbound Megolm sessions")]
    NoOutboundStore,
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error(transparent)]
    Share(#[from] ShareError),
    #[error("a stored Olm session or pending room key cannot be read: {0}")]
    Stored(String),
}

impl From<ClientError> for SendError {
    fn from(error: ClientError) -> Self {
        SendError::Device(DeviceError::Homeserver(error))
    }
}

impl From<super::store::OlmStoreError> for SendError {
    fn from(error: super::store::OlmStoreError) -> Self {
        SendError::Device(DeviceError::Store(error))
    }
}

impl SendError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Device(e) => e.is_retryable(),
            SendError::NoOutboundStore | SendError::Outbound(_) | SendError::Stored(_) => false,
            SendError::Share(_) => true,
        }
    }

    /// The homeserver's error, if it was one (for its retry-after).
    pub fn homeserver(&self) -> Option<&ClientError> {
        match self {
            SendError::Device(DeviceError::Homeserver(e)) => Some(e),
            _ => None,
        }
    }
}

/// What one attempt prepared, saved and then sent.
struct Prepared {
    content: Map<String, Value>,
    pending: Option<PendingToDevice>,
}

impl GhostDevices {
    /// Keeps outbound sessions in `store`, so that ghosts can send into encrypted rooms; the
    /// first store set stays.
    pub fn set_outbound(&self, store: Arc<dyn OutboundStore>) {
        if self.outbound.set(store).is_err() {
            tracing::warn!("the outbound Megolm store was set twice; the first stays");
        }
    }

    /// Whether ghosts can send encrypted (an outbound store is set).
    pub fn can_send(&self) -> bool {
        self.outbound.get().is_some()
    }

    /// Sends an event of `event_type` with `content` into the encrypted `room` as `ghost`'s
    /// device, idempotent by `txn_id`; answers the event id.
    pub async fn send_encrypted(
        &self,
        ghost: &UserId,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        event_type: &str,
        content: &Map<String, Value>,
    ) -> Result<OwnedEventId, SendError> {
        let device = self.ensure(ghost).await?;
        let outbound = self.outbound.get().ok_or(SendError::NoOutboundStore)?.as_ref();
        if !self.store().hold(ghost).await? {
            return Err(DeviceError::HeldElsewhere.into());
        }
        let replace = self.flush(outbound, &device, room).await?;
        for _ in 0..ATTEMPTS {
            let event = (event_type, content);
            let Some(prepared) = self.prepare(outbound, &device, room, event, replace).await? else {
                continue;
            };
            if let Some(pending) = &prepared.pending {
                self.send_pending(outbound, &device, pending).await?;
            }
            let id = self
                .client()
                .send_encrypted(device.as_device(), room, txn_id, timestamp_ms, &prepared.content)
                .await?;
            return Ok(id);
        }
        Err(DeviceError::Contended.into())
    }

    /// Steps 2 to 4; `None` if the save found another process's write.
    async fn prepare(
        &self,
        outbound: &dyn OutboundStore,
        device: &GhostDevice,
        room: &RoomId,
        (event_type, content): (&str, &Map<String, Value>),
        replace: bool,
    ) -> Result<Option<Prepared>, SendError> {
        let ghost = &device.user;
        let Some(mut loaded) = self.load(ghost).await? else { return Err(DeviceError::NoAccount.into()) };
        let sending = room_sending(&self.client().room_state(device.as_device(), room).await?);
        // The ghost's own devices are the bridge's: the sending one, and at most stale ones whose
        // keys it no longer holds. Neither needs the room key, and keeping the ghost's list would
        // let its own changes (the device's creation, its cross-signing) outdate a list every
        // send reads, so each send after them would ask the homeserver again.
        let others: Vec<_> = sending.members.iter().filter(|member| *member != ghost).cloned().collect();
        let (recipients, _) = self.devices_of(device, &others, false).await?;
        let now = now_ms();
        let mut session = match outbound.outbound(ghost, room.as_str()).await? {
            Some(stored) => OutboundSession::from_stored(stored)?,
            None => OutboundSession::new(now),
        };
        let current: BTreeSet<SharedWith> = recipients.iter().map(Recipient::shared_with).collect();
        let gone = session.shared.iter().any(|shared| !current.contains(shared));
        if !session.is_new && (replace || gone || session.is_spent(sending.rotation, now)) {
            tracing::info!(%ghost, %room, gone, "the room's outbound Megolm session is replaced");
            session = OutboundSession::new(now);
        }
        let lacking: Vec<&Recipient> =
            recipients.iter().filter(|r| !session.shared.contains(&r.shared_with())).collect();
        let (messages, olm_sessions, shared) =
            self.share(&mut loaded, device, room, &session, &lacking).await?;
        let identity = loaded.account.identity_keys();
        let encrypted = session.encrypt(
            room.as_str(),
            event_type,
            content,
            &identity.curve25519.to_base64(),
            device.device.as_str(),
        );
        let pending = (!messages.is_empty())
            .then(|| PendingToDevice { txn_id: new_txn_id(), body: Value::Object(messages).to_string() });
        let pickle = loaded.account.pickle().map_err(DeviceError::from)?;
        let step = OutboundStep {
            account: AccountWrite {
                ghost,
                device: &device.device,
                pickle: &pickle,
                device_published: loaded.device_published,
                expected: loaded.version,
            },
            room_id: room.as_str(),
            new_session: session.is_new,
            session: session.write()?,
            olm_sessions,
            shared,
            pending: pending.clone(),
        };
        Ok(match outbound.save_outbound_step(step).await? {
            Saved::Written(_) => Some(Prepared { content: encrypted, pending }),
            Saved::Conflict => {
                tracing::info!(%ghost, "the ghost's Olm state was written by another process; reading it again");
                None
            }
        })
    }

    /// Encrypts the room key of `session` for each of `lacking`: the to-device messages, the
    /// Olm sessions to save, and the devices that will hold the key.
    async fn share(
        &self,
        loaded: &mut Loaded,
        device: &GhostDevice,
        room: &RoomId,
        session: &OutboundSession,
        lacking: &[&Recipient],
    ) -> Result<(Map<String, Value>, Vec<SessionWrite>, Vec<SharedWith>), SendError> {
        let mut messages = Map::new();
        let mut writes = Vec::new();
        let mut shared = Vec::new();
        if lacking.is_empty() {
            return Ok((messages, writes, shared));
        }
        let identity = loaded.account.identity_keys();
        let sender = Sender {
            device,
            curve25519: identity.curve25519.to_base64(),
            ed25519: identity.ed25519.to_base64(),
        };
        let room_key = session.room_key(room.as_str());
        let mut sessions = Vec::new();
        let mut unreached = Vec::new();
        for recipient in lacking {
            let key = recipient.curve25519.to_base64();
            let stored = self.store().olm_sessions(&device.user, &key).await?;
            match stored.first() {
                Some(pickle) => sessions
                    .push((*recipient, olm::unpickle(pickle).map_err(|e| SendError::Stored(e.to_string()))?)),
                None => unreached.push(*recipient),
            }
        }
        if !unreached.is_empty() {
            let claimed = self.client().claim_one_time_keys(device.as_device(), &by_user(&unreached)).await?;
            for recipient in unreached {
                let one_time = claimed
                    .get(&recipient.user)
                    .and_then(|devices| devices.get(&recipient.device))
                    .and_then(|(key_id, object)| one_time_key(recipient, key_id, object));
                let Some(one_time) = one_time else {
                    tracing::warn!(user = %recipient.user, device = %recipient.device, "no one-time key of the device could be claimed; it gets the room key at a later event");
                    continue;
                };
                match loaded.account.olm().create_outbound_session(
                    SessionConfig::version_1(),
                    recipient.curve25519,
                    one_time,
                ) {
                    Ok(opened) => sessions.push((recipient, opened)),
                    Err(error) => {
                        tracing::warn!(user = %recipient.user, device = %recipient.device, %error, "no Olm session opens with the device's keys; it gets no room key")
                    }
                }
            }
        }
        for (recipient, mut olm_session) in sessions {
            let payload = room_key_payload(&sender, recipient, &room_key);
            let content = encrypt(&mut olm_session, &sender, recipient, &payload)?;
            let by_device =
                messages.entry(recipient.user.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(by_device) = by_device {
                by_device.insert(recipient.device.to_string(), Value::Object(content));
            }
            writes.push(SessionWrite {
                sender_key: recipient.curve25519.to_base64(),
                session_id: olm_session.session_id(),
                pickle: olm::pickle(&olm_session).map_err(|e| SendError::Stored(e.to_string()))?,
            });
            shared.push(recipient.shared_with());
        }
        Ok((messages, writes, shared))
    }

    /// Step 1: room keys saved by an earlier attempt, sent before anything new. One the
    /// homeserver refuses for good (or that cannot be read) is logged and forgotten, so that it
    /// cannot stop the room for ever; `true` then, and the session is replaced, so the devices
    /// it was for get the new one's key.
    async fn flush(
        &self,
        outbound: &dyn OutboundStore,
        device: &GhostDevice,
        room: &RoomId,
    ) -> Result<bool, SendError> {
        let mut forgot = false;
        for pending in outbound.pending(&device.user, room.as_str()).await? {
            match self.send_pending(outbound, device, &pending).await {
                Ok(()) => {}
                Err(error) if !error.is_retryable() => {
                    tracing::warn!(ghost = %device.user, %room, %error, "a saved room key cannot be sent; forgotten, and the session replaced");
                    outbound.to_device_sent(&device.user, &pending.txn_id).await?;
                    forgot = true;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(forgot)
    }

    async fn send_pending(
        &self,
        outbound: &dyn OutboundStore,
        device: &GhostDevice,
        pending: &PendingToDevice,
    ) -> Result<(), SendError> {
        let messages: Map<String, Value> =
            serde_json::from_str(&pending.body).map_err(|e| SendError::Stored(e.to_string()))?;
        let txn = OwnedTransactionId::from(pending.txn_id.as_str());
        self.client().send_to_device(device.as_device(), ENCRYPTED, &txn, &messages).await?;
        outbound.to_device_sent(&device.user, &pending.txn_id).await?;
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh transaction id for a `/sendToDevice`: random, kept with what it sends.
fn new_txn_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the time still tells attempts apart; the id is not a secret.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("dm3rk{hex}")
}
