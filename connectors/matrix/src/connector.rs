//! The Matrix connector as the engine sees it: the neutral [`Connector`] traits over [`Client`].
//!
//! The engine hands an [`Outbound`] request naming a conversation (a room id), a sender (a DM3
//! name) and an idempotency key (derived from the DM3 message hash); this module turns it into
//! the ghost's client-server call:
//! - the sender's ghost acts (`?user_id=`), so the Matrix user sees the DM3 user, not a bot;
//! - the idempotency key is the Matrix transaction id, so a retried send after a crash or a
//!   timeout is recognised by the homeserver instead of posted twice;
//! - the DM3 time goes into `?ts=`.
//!
//! Edits, reactions, deletes, read receipts, media (uploads and downloads here, the message
//! conversion in [`crate::media`]), portals
//! ([`crate::portal`]) and native content (bridge payloads, [`crate::native`]) are all supported
//! by Matrix, so every capability trait is implemented.
//! Nothing goes into a room in the clear once it is encrypted: every send asks the homeserver
//! first ([`crate::sending`]) and, in an encrypted room, is encrypted with the ghost's device
//! or refused by the gate of [`crate::cleartext`].
//!
//! [`Connector::start`] pings the homeserver through the bridge, the check that catches the
//! common misconfiguration where the homeserver cannot reach the bridge's URL (a top support topic
//! of bridges, docs/contributing.md), with a message that names the setting to fix. It then reads the homeserver's
//! upload limit, which caps [`Capabilities::media`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dm3_bridge_connector::{
    Attachment, AttachmentSource, BoxFuture, Capabilities, Connector, ConnectorError, Content,
    ConversationId, Delete, DeleteHandling, Edit, EditHandling, Health, MediaHandling, Message,
    NativeHandling, NetworkId, NetworkMessageId, Outbound, PortalHandling, Reaction, ReactionHandling,
    ReadReceipt, ReceiptHandling, Text, Unsupported,
};
use ruma::events::reaction::ReactionEventContent;
use ruma::events::relation::{Annotation, InReplyTo, Reply};
use ruma::events::room::message::{Relation, ReplacementMetadata, RoomMessageEventContent};
use ruma::events::room::{EncryptedFile, MediaSource};
use ruma::{
    EventId, OwnedEventId, OwnedMxcUri, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomId, UserId,
};
use url::Url;

use crate::client::{Client, ClientError};
use crate::crypto::GhostDevices;
use crate::ghost::GhostNamespace;
use crate::media::{media_message, mxc_uri, sealed_file_of};
use crate::media_cipher;
use crate::outgoing::{Route, Target, content_object};

/// The event type of messages, notices, media, replies and edits.
const MESSAGE: &str = "m.room.message";

/// The largest file unless configured otherwise: Synapse's default `max_upload_size`, and a
/// bound on what the engine holds in memory for one file.
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 50 * 1024 * 1024;

/// The Matrix connector.
pub struct MatrixConnector {
    network: NetworkId,
    client: Arc<Client>,
    ghosts: GhostNamespace,
    /// The configured limit on files.
    configured_media_bytes: u64,
    /// The limit in force: the configured one, lowered to the homeserver's at start.
    media_bytes: AtomicU64,
    /// The ghosts' devices, when `[matrix] encryption` is not `off` ([`crate::crypto`]).
    devices: OnceLock<Arc<GhostDevices>>,
    /// Set when encrypted events are opened ([`crate::encrypted_inbound`]).
    pub(crate) decrypting: OnceLock<crate::decrypting::Decrypting>,
    /// `[matrix] encryption = "require"`: portals created encrypted, rooms in the clear refused.
    require_encryption: bool,
}

impl MatrixConnector {
    /// A connector named `network`, acting through `client` as the ghosts of `ghosts`, with
    /// files up to [`DEFAULT_MAX_MEDIA_BYTES`].
    pub fn new(network: NetworkId, client: Arc<Client>, ghosts: GhostNamespace) -> Self {
        Self {
            network,
            client,
            ghosts,
            configured_media_bytes: DEFAULT_MAX_MEDIA_BYTES,
            media_bytes: AtomicU64::new(DEFAULT_MAX_MEDIA_BYTES),
            devices: OnceLock::new(),
            decrypting: OnceLock::new(),
            require_encryption: false,
        }
    }

    /// Creates portals encrypted and refuses rooms in the clear if `require`
    /// (`[matrix] encryption = "require"`, [`crate::sending`]).
    pub fn requiring_encryption(mut self, require: bool) -> Self {
        self.require_encryption = require;
        self
    }

    /// Whether only encrypted rooms are carried.
    pub fn requires_encryption(&self) -> bool {
        self.require_encryption
    }

    /// Gives a ghost that takes part in an encrypted room a device, through `devices`.
    pub fn with_devices(self, devices: Arc<GhostDevices>) -> Self {
        self.set_devices(devices);
        self
    }

    /// The same on a connector already shared (the service builds the devices over its store
    /// after the connector); the first devices set stay.
    pub fn set_devices(&self, devices: Arc<GhostDevices>) {
        if self.devices.set(devices).is_err() {
            tracing::warn!("the connector's ghost devices were set twice; the first stay");
        }
    }

    /// The ghosts' devices, if the connector makes them.
    pub fn devices(&self) -> Option<&Arc<GhostDevices>> {
        self.devices.get()
    }

    /// Files up to `max_bytes` (lowered to the homeserver's limit by [`Connector::start`]).
    pub fn with_max_media_bytes(mut self, max_bytes: u64) -> Self {
        self.configured_media_bytes = max_bytes;
        self.media_bytes = AtomicU64::new(max_bytes);
        self
    }

    /// The largest file in force.
    pub fn max_media_bytes(&self) -> u64 {
        self.media_bytes.load(Ordering::Relaxed)
    }

    /// The client-server client the connector acts through.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The ghosts the connector acts as.
    pub fn ghosts(&self) -> &GhostNamespace {
        &self.ghosts
    }

    /// What every unencrypted room carries.
    pub fn room_capabilities(&self) -> Capabilities {
        Capabilities::full(self.max_media_bytes())
    }

    /// Reads the homeserver's upload limit (`m.upload.size`) and lowers the limit in force to
    /// it; answers the limit in force.
    pub async fn refresh_media_limit(&self) -> Result<u64, ClientError> {
        let homeserver = self.client.media_upload_limit().await?;
        let limit = self.configured_media_bytes.min(homeserver);
        self.media_bytes.store(limit, Ordering::Relaxed);
        Ok(limit)
    }

    pub(crate) fn parts<T>(
        &self,
        request: &Outbound<T>,
    ) -> Result<(OwnedUserId, OwnedRoomId, OwnedTransactionId), ConnectorError> {
        let ghost =
            self.ghosts.user_id(&request.sender).map_err(|e| ConnectorError::Permanent(e.to_string()))?;
        Ok((
            ghost,
            room_id(&request.conversation)?,
            OwnedTransactionId::from(request.idempotency_key.as_str()),
        ))
    }
}

pub(crate) fn room_id(conversation: &ConversationId) -> Result<OwnedRoomId, ConnectorError> {
    RoomId::parse(conversation.as_str())
        .map_err(|e| ConnectorError::Permanent(format!("`{conversation}` is not a Matrix room id: {e}")))
}

pub(crate) fn event_id(id: &NetworkMessageId) -> Result<OwnedEventId, ConnectorError> {
    EventId::parse(id.as_str())
        .map_err(|e| ConnectorError::Permanent(format!("`{id}` is not a Matrix event id: {e}")))
}

pub(crate) fn network_id(id: &EventId) -> Result<NetworkMessageId, ConnectorError> {
    NetworkMessageId::new(id.as_str()).map_err(|e| ConnectorError::Permanent(e.to_string()))
}

/// Classifies a client error for the engine's retry policy.
pub(crate) fn classify(error: ClientError) -> ConnectorError {
    match error {
        ClientError::RetryAfter(retry) => ConnectorError::RetryAfter(retry.delay),
        e if e.is_retryable() => ConnectorError::Transient(e.to_string()),
        e => ConnectorError::Permanent(e.to_string()),
    }
}

pub(crate) fn text_content(text: &Text, notice: bool) -> RoomMessageEventContent {
    match (&text.html, notice) {
        (Some(html), false) => RoomMessageEventContent::text_html(&text.body, html),
        (None, false) => RoomMessageEventContent::text_plain(&text.body),
        (Some(html), true) => RoomMessageEventContent::notice_html(&text.body, html),
        (None, true) => RoomMessageEventContent::notice_plain(&text.body),
    }
}

impl Connector for MatrixConnector {
    fn network(&self) -> &NetworkId {
        &self.network
    }

    fn start(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        Box::pin(async move {
            match self.client.ping(None).await {
                Ok(round_trip) => {
                    tracing::info!(
                        round_trip_ms = round_trip.as_millis(),
                        "the homeserver reaches the bridge"
                    )
                }
                Err(e) if e.errcode() == Some("M_UNRECOGNIZED") => {
                    tracing::warn!(
                        "the homeserver has no appservice ping (Matrix 1.7); its reach is not checked"
                    )
                }
                Err(e) => return Err(crate::ping::explain(e, self.client.homeserver())),
            }
            match self.refresh_media_limit().await {
                Ok(limit) => tracing::info!(max_media_bytes = limit, "largest file bridged to Matrix"),
                Err(e) => tracing::warn!(
                    max_media_bytes = self.max_media_bytes(),
                    error = %e,
                    "the homeserver's upload limit could not be read; keeping the configured one"
                ),
            }
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
        // The routes are served by the service, which stops them; nothing runs here.
        Box::pin(async { Ok(()) })
    }

    /// Unhealthy while the homeserver does not answer ([`crate::reach`]).
    fn health(&self) -> Health {
        self.client.health()
    }

    fn capabilities<'a>(
        &'a self,
        _: &'a ConversationId,
    ) -> BoxFuture<'a, Result<Capabilities, ConnectorError>> {
        Box::pin(async { Ok(self.room_capabilities()) })
    }

    fn send_message<'a>(
        &'a self,
        message: &'a Outbound<Message>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, txn) = self.parts(message)?;
            let route = match self.route(&ghost, &room).await {
                // The bridge's own notices hold no bridged content: in the clear where the
                // connector cannot encrypt.
                Err(ConnectorError::Unsupported(_))
                    if matches!(message.payload.content, Content::Notice(_)) =>
                {
                    Route::Clear
                }
                route => route?,
            };
            let mut content = match &message.payload.content {
                Content::Text(text) => text_content(text, false),
                Content::Notice(text) => text_content(text, true),
                // A retry uploads again (an orphan file at worst); the send below is the
                // idempotent step, so the room still shows the message once.
                Content::Attachment { attachment, caption } if route.is_encrypted() => {
                    let file = self.stored_sealed(attachment, &ghost).await?;
                    media_message(attachment, caption.as_ref(), MediaSource::Encrypted(Box::new(file)))
                }
                Content::Attachment { attachment, caption } => {
                    let uri = self.stored(attachment, Some(&ghost)).await?;
                    media_message(attachment, caption.as_ref(), MediaSource::Plain(uri))
                }
            };
            if let Some(target) = &message.payload.reply_to {
                content.relates_to = Some(Relation::Reply(Reply::new(InReplyTo::new(event_id(target)?))));
            }
            let content = content_object(&content)?;
            let id = self.post(&route, Target::of(&ghost, &room, &txn, message), MESSAGE, &content).await?;
            network_id(&id)
        })
    }

    fn edits(&self) -> Option<&dyn EditHandling> {
        Some(self)
    }

    fn reactions(&self) -> Option<&dyn ReactionHandling> {
        Some(self)
    }

    fn deletes(&self) -> Option<&dyn DeleteHandling> {
        Some(self)
    }

    fn receipts(&self) -> Option<&dyn ReceiptHandling> {
        Some(self)
    }

    fn media(&self) -> Option<&dyn MediaHandling> {
        Some(self)
    }

    fn portals(&self) -> Option<&dyn PortalHandling> {
        Some(self)
    }

    fn decryption(&self) -> Option<&dyn dm3_bridge_connector::DecryptionHandling> {
        self.decrypting.get().map(|_| self as &dyn dm3_bridge_connector::DecryptionHandling)
    }

    fn native(&self) -> Option<&dyn NativeHandling> {
        Some(self)
    }
}

impl EditHandling for MatrixConnector {
    fn send_edit<'a>(
        &'a self,
        edit: &'a Outbound<Edit>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, txn) = self.parts(edit)?;
            let route = self.route(&ghost, &room).await?;
            let target = event_id(&edit.payload.target)?;
            let content = text_content(&edit.payload.text, false)
                .make_replacement(ReplacementMetadata::new(target, None));
            let content = content_object(&content)?;
            let id = self.post(&route, Target::of(&ghost, &room, &txn, edit), MESSAGE, &content).await?;
            network_id(&id)
        })
    }
}

impl ReactionHandling for MatrixConnector {
    fn send_reaction<'a>(
        &'a self,
        reaction: &'a Outbound<Reaction>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, txn) = self.parts(reaction)?;
            let route = self.route(&ghost, &room).await?;
            let target = event_id(&reaction.payload.target)?;
            let content = content_object(&ReactionEventContent::new(Annotation::new(
                target,
                reaction.payload.key.as_str().to_owned(),
            )))?;
            let id =
                self.post(&route, Target::of(&ghost, &room, &txn, reaction), "m.reaction", &content).await?;
            network_id(&id)
        })
    }
}

impl DeleteHandling for MatrixConnector {
    fn send_delete<'a>(&'a self, delete: &'a Outbound<Delete>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, txn) = self.parts(delete)?;
            let target = event_id(&delete.payload.target)?;
            let reason = match delete.payload.reason.as_deref() {
                Some(reason) => match self.cleartext_allowed(&ghost, &room).await {
                    Ok(()) => Some(reason),
                    Err(ConnectorError::Unsupported(_)) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            self.client.redact(&ghost, &room, &target, &txn, reason).await.map(|_| ()).map_err(classify)
        })
    }
}

impl ReceiptHandling for MatrixConnector {
    fn send_receipt<'a>(
        &'a self,
        receipt: &'a Outbound<ReadReceipt>,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let (ghost, room, _) = self.parts(receipt)?;
            let target = event_id(&receipt.payload.up_to)?;
            self.client.send_receipt(&ghost, &room, &target).await.map_err(classify)
        })
    }
}

impl MatrixConnector {
    /// The `mxc://` URI of `attachment` on the homeserver, uploading it (as `uploader`) if it is
    /// inline.
    pub(crate) async fn stored(
        &self,
        attachment: &Attachment,
        uploader: Option<&UserId>,
    ) -> Result<OwnedMxcUri, ConnectorError> {
        let max = self.max_media_bytes();
        if attachment.size() > max {
            return Err(Unsupported::AttachmentTooLarge { size: attachment.size(), max }.into());
        }
        match attachment.source() {
            AttachmentSource::Inline(bytes) => self
                .client()
                .upload(uploader, bytes.clone(), attachment.mime().as_str(), attachment.name())
                .await
                .map_err(classify),
            AttachmentSource::Url(url) => mxc_uri(url),
        }
    }

    /// `attachment` sealed for an end-to-end encrypted room and uploaded as `uploader`: the
    /// homeserver stores only ciphertext (typed `application/octet-stream`, named `file`, so
    /// neither says what it is); the returned `file` object, sent inside an encrypted event,
    /// opens it. A file by URL is fetched first, within the same limit.
    pub async fn stored_sealed(
        &self,
        attachment: &Attachment,
        uploader: &UserId,
    ) -> Result<EncryptedFile, ConnectorError> {
        let max = self.max_media_bytes();
        if attachment.size() > max {
            return Err(Unsupported::AttachmentTooLarge { size: attachment.size(), max }.into());
        }
        let plaintext = match attachment.source() {
            AttachmentSource::Inline(bytes) => bytes.clone(),
            AttachmentSource::Url(url) => MediaHandling::download(self, url, max).await?,
        };
        let sealed = media_cipher::seal(plaintext).map_err(|e| ConnectorError::Transient(e.to_string()))?;
        let uri = self
            .client()
            .upload(Some(uploader), sealed.ciphertext.clone(), "application/octet-stream", "file")
            .await
            .map_err(classify)?;
        Ok(sealed.into_encrypted_file(uri))
    }
}

impl MediaHandling for MatrixConnector {
    fn upload<'a>(&'a self, attachment: &'a Attachment) -> BoxFuture<'a, Result<Attachment, ConnectorError>> {
        Box::pin(async move {
            let uri = self.stored(attachment, None).await?;
            let url = Url::parse(uri.as_str()).map_err(|e| {
                ConnectorError::Permanent(format!("the homeserver answered an unusable URI `{uri}`: {e}"))
            })?;
            Attachment::remote(attachment.name(), attachment.mime().clone(), url, attachment.size())
                .map_err(|e| ConnectorError::Permanent(e.to_string()))
        })
    }

    fn download<'a>(
        &'a self,
        url: &'a Url,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>> {
        Box::pin(async move {
            // Messages name `uri`, never `url`: an encrypted file's fragment holds its key.
            let uri = mxc_uri(url)?;
            let sealed = sealed_file_of(url)?;
            let bytes = match self.client().download(&uri, max_bytes).await {
                Ok(downloaded) => downloaded.bytes,
                Err(ClientError::TooLarge { max }) => {
                    return Err(ConnectorError::Permanent(format!(
                        "the file {uri} is larger than the {max} bytes allowed"
                    )));
                }
                Err(e) => return Err(classify(e)),
            };
            match sealed {
                None => Ok(bytes),
                Some(file) => media_cipher::open(&file, bytes).map_err(|e| {
                    ConnectorError::Permanent(format!("the encrypted file {uri} cannot be opened: {e}"))
                }),
            }
        })
    }
}
