//! DM3 messages through Matrix, sealed and opened on the user's machine (docs/gateway.md
//! sections 1.2 and 5): a message is sealed once per delivery service of its recipient (P13)
//! and each envelope sent as one `network.dm3.envelope` message; the ones the node carries in
//! are opened with the user's own key. The node never sees a key or a plaintext.

use dm3::crypto::signing::VerifyKey;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::envelope::Envelope;
use dm3::gateway_envelope::matrix::{EVENT_TYPE, MSGTYPE};
use dm3::gateway_envelope::{GatewayEnvelope, MatrixGatewayContent};
use dm3::message::{Message, MessageBuilder, MessageHash};
use dm3::profile::SignedUserProfile;

use super::GatewayUser;
use super::error::GatewayClientError;
use crate::ids::{OwnedEventId, OwnedUserId, RoomId};

/// Whom a message is for: the name, its verified profile, and each of its delivery services
/// with the profile that gives its encryption key.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub name: EnsName,
    pub profile: SignedUserProfile,
    pub delivery_services: Vec<(EnsName, DeliveryServiceProfile)>,
}

/// A `network.dm3.envelope` message of the room, opened or not.
#[derive(Debug, Clone)]
pub struct ReadEnvelope {
    pub event_id: Option<OwnedEventId>,
    /// The Matrix account that sent it (the sender's ghost, or a gateway user).
    pub sender: Option<OwnedUserId>,
    pub opened: Result<OpenedMessage, String>,
}

/// A DM3 message opened with the user's key.
#[derive(Debug, Clone)]
pub struct OpenedMessage {
    pub delivery_service: EnsName,
    pub message: Message,
    pub hash: MessageHash,
}

impl OpenedMessage {
    /// Checks the message's signature with the signing key of `from`'s profile (resolved by
    /// the caller): what proves who wrote it, since anyone can seal an envelope to anyone.
    pub fn verify(&self, sender_profile: &SignedUserProfile) -> Result<(), String> {
        let key = sender_profile.profile().verify_key().map_err(|e| e.to_string())?;
        self.verify_with(&key)
    }

    fn verify_with(&self, key: &VerifyKey) -> Result<(), String> {
        self.message.verify(key, self.message.from()).map_err(|e| e.to_string())
    }
}

impl GatewayUser {
    /// Seals a text message from `from` (this user's name) to `to` and sends one
    /// `network.dm3.envelope` message into `room` per delivery service of `to`; answers their
    /// event ids, in the order of the recipient's delivery services.
    pub async fn send_text(
        &self,
        room: &RoomId,
        from: &EnsName,
        to: &Recipient,
        text: &str,
    ) -> Result<Vec<OwnedEventId>, GatewayClientError> {
        let message = MessageBuilder::now(to.name.as_str(), from.as_str())
            .text(text, None)
            .sign(&self.keys().profile_keys().signing);
        self.send_message(room, to, &message).await
    }

    /// Sends a signed message as [`send_text`](Self::send_text) does.
    pub async fn send_message(
        &self,
        room: &RoomId,
        to: &Recipient,
        message: &Message,
    ) -> Result<Vec<OwnedEventId>, GatewayClientError> {
        let refuse = |reason: String| GatewayClientError::Profile { name: to.name.to_string(), reason };
        if to.delivery_services.is_empty() {
            return Err(refuse("it lists no delivery service".into()));
        }
        let recipient_key = to.profile.profile().encryption_key().map_err(|e| refuse(e.to_string()))?;
        // Every content is made before the first is sent: a recipient whose second delivery
        // service cannot be sealed for gets nothing rather than half.
        let mut contents = Vec::with_capacity(to.delivery_services.len());
        for (ds_name, ds_profile) in &to.delivery_services {
            let ds_key = ds_profile.encryption_key().map_err(|e| refuse(format!("{ds_name}: {e}")))?;
            let envelope =
                Envelope::seal(message, &self.keys().profile_keys().signing, &recipient_key, &ds_key)?;
            let document = GatewayEnvelope::from_envelope(&envelope, ds_name.clone())?;
            contents.push(MatrixGatewayContent::encode(document)?.to_content());
        }
        let mut sent = Vec::with_capacity(contents.len());
        for content in contents {
            sent.push(self.matrix().send_content(room, EVENT_TYPE, content).await?);
        }
        Ok(sent)
    }

    /// The room's `network.dm3.envelope` messages, oldest first, each opened with this user's
    /// key or with the reason it could not be (not a gateway document, sealed to someone else,
    /// tampered with). Matrix-undecryptable events are left out: they are no envelopes yet.
    pub async fn read_envelopes(&self, room: &RoomId) -> Result<Vec<ReadEnvelope>, GatewayClientError> {
        let messages = self.matrix().messages(room).await?;
        Ok(messages
            .into_iter()
            .filter(|event| event.is_message() && event.msgtype() == Some(MSGTYPE))
            .map(|event| ReadEnvelope {
                opened: self.open(&event.content),
                event_id: event.event_id,
                sender: event.sender,
            })
            .collect())
    }

    fn open(&self, content: &serde_json::Value) -> Result<OpenedMessage, String> {
        let document = MatrixGatewayContent::decode(content).map_err(|e| e.to_string())?.into_envelope();
        let opened =
            document.envelope().open(&self.keys().profile_keys().encryption).map_err(|e| e.to_string())?;
        Ok(OpenedMessage {
            delivery_service: document.delivery_service().clone(),
            message: opened.message,
            hash: opened.message_hash,
        })
    }
}
