//! The bridge's client-server API client: the calls an application service makes as its ghosts.
//!
//! Every call carries the as_token as a Bearer header (never as a query parameter, which
//! MSC4127 removed and which would end up in access logs) and, when acting as a ghost, the
//! identity assertion `?user_id=@ghost:server`. Requests and responses are ruma's endpoint
//! types, so paths, escaping and bodies follow the spec without hand-built URLs.
//!
//! What the bridge relies on, and where it is handled:
//! - **Idempotent sends.** `PUT …/send/{type}/{txnId}` with a transaction id the caller derives
//!   from the source message; the homeserver answers a repeated txn id (same access token, same
//!   asserted user) with the first event's id instead of posting again, as long as it remembers
//!   it. A retry first looks for its earlier event, for a homeserver that restarted ([`resend`]).
//! - **Original time.** `?ts=` (timestamp massaging, appservices only) keeps the DM3 time.
//! - **Rate limits.** `M_LIMIT_EXCEEDED` becomes [`ClientError::RetryAfter`] with the server's
//!   delay, so the engine's queue backs off instead of dropping (bridges that dropped lost files: 42wim/matterbridge #1238).
//! - **Ghost registration.** `m.login.application_service` with `inhibit_login` (no device,
//!   no access token; v1.17 OAuth-only servers refuse it otherwise); `M_USER_IN_USE` means the
//!   ghost exists already and is success.
//!
//! Tokens never reach a log: the token lives in [`AsToken`], the URL holds none, and errors
//! carry only status, errcode and the server's message.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use dm3_bridge_connector::Health;
use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::client::account::register::{self, LoginType, RegistrationKind};
use ruma::api::client::appservice::request_ping;
use ruma::api::client::membership::{invite_user, join_room_by_id, joined_members, leave_room};
use ruma::api::client::message::send_message_event;
use ruma::api::client::profile::{get_profile, set_profile_field};
use ruma::api::client::receipt::create_receipt::{self, v3::ReceiptType};
use ruma::api::client::redact::redact_event;
use ruma::api::client::room::create_room::{self, v3::RoomPreset};
use ruma::api::client::state::{get_state_event_for_key, get_state_events};
use ruma::api::error::{ErrorKind, RetryAfter as RumaRetryAfter};
use ruma::api::path_builder::{PathBuilder, SinglePath, VersionHistory};
use ruma::api::{
    AppserviceUserIdentity, EndpointError as _, IncomingResponseExt as _, MatrixVersion, OutgoingRequest,
    OutgoingRequestAppserviceExt as _, SupportedVersions,
};
use ruma::events::reaction::ReactionEventContent;
use ruma::events::relation::Annotation;
use ruma::events::room::message::RoomMessageEventContent;
use ruma::events::{MessageLikeEventContent, MessageLikeEventType, StateEventType};
use ruma::profile::ProfileFieldValue;
use ruma::serde::Raw;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomId,
    TransactionId, UInt, UserId,
};
use url::Url;

mod e2e;
mod key_request;
mod keys;
mod media;
mod resend;
mod to_device_sync;

pub use e2e::{AsDevice, ClaimedKeys, DeviceKeysByUser, QueriedKeys};
pub use keys::{GHOST_DEVICE_NAME, KeysUpload};
pub use media::Downloaded;
pub use resend::{Attempt, TXN_KEY};
pub use to_device_sync::{CaughtUp, MAX_SYNC_TO_DEVICE};

use crate::encryption::RoomEncryption;
use crate::reach::Reach;
use crate::room_state::RoomFacts;
use crate::secret::AsToken;

/// The event type of ciphertext, sent exactly as prepared.
const ENCRYPTED_EVENT: &str = "m.room.encrypted";

/// Longest response body the client reads (room state and send answers are small).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A rate limit: try again after `delay`, if the server said how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub delay: Option<Duration>,
}

/// Why a client-server call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `M_LIMIT_EXCEEDED`: back off.
    #[error("rate limited by the homeserver{}", .0.delay.map(|d| format!(", retry after {} ms", d.as_millis())).unwrap_or_default())]
    RetryAfter(RetryAfter),
    /// The homeserver refused with a Matrix error.
    #[error("the homeserver answered {status} {errcode}: {message}")]
    Matrix { status: u16, errcode: String, message: String },
    /// The homeserver could not be reached, or the connection failed mid-way.
    #[error("the homeserver could not be reached: {0}")]
    Transport(String),
    /// The homeserver's answer did not have the shape of the endpoint's response.
    #[error("unexpected answer from the homeserver: {0}")]
    BadResponse(String),
    /// The request could not be built (an id that does not fit, a bug).
    #[error("could not build the request: {0}")]
    Request(String),
    /// A file is larger than the caller accepts.
    #[error("the file is larger than the {max} bytes allowed")]
    TooLarge { max: u64 },
}

impl ClientError {
    /// The Matrix errcode, if the homeserver gave one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ClientError::Matrix { errcode, .. } => Some(errcode),
            ClientError::RetryAfter(_) => Some("M_LIMIT_EXCEEDED"),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (rate limit, transport, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::RetryAfter(_) | ClientError::Transport(_) => true,
            ClientError::Matrix { status, .. } => *status >= 500,
            ClientError::BadResponse(_) | ClientError::Request(_) | ClientError::TooLarge { .. } => false,
        }
    }
}

/// Whether [`Client::register_ghost`] created the user or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    AlreadyExisted,
}

/// Picks the path of an endpoint: the versions we speak for versioned endpoints, nothing for
/// single-path ones.
pub trait PathInput: PathBuilder {
    fn input(versions: &SupportedVersions) -> Self::Input<'_>;
}

impl PathInput for VersionHistory {
    fn input(versions: &SupportedVersions) -> Cow<'_, SupportedVersions> {
        Cow::Borrowed(versions)
    }
}

impl PathInput for SinglePath {
    fn input(_: &SupportedVersions) {}
}

/// A client-server API client acting as the application service and its ghosts.
pub struct Client {
    http: reqwest::Client,
    homeserver: String,
    as_token: AsToken,
    appservice_id: String,
    versions: SupportedVersions,
    /// Whether the last call got an answer ([`crate::reach`]).
    reach: Reach,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("homeserver", &self.homeserver)
            .field("appservice_id", &self.appservice_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the homeserver at `homeserver` (its client-server base URL), presenting
    /// `as_token` for the application service `appservice_id`.
    pub fn new(
        homeserver: &Url,
        as_token: AsToken,
        appservice_id: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Request(e.to_string()))?;
        Ok(Self::with_http(http, homeserver, as_token, appservice_id))
    }

    /// The same, on a caller's `reqwest` client (shared connection pool, own timeouts).
    pub fn with_http(
        http: reqwest::Client,
        homeserver: &Url,
        as_token: AsToken,
        appservice_id: impl Into<String>,
    ) -> Self {
        // The newest stable paths every current homeserver serves: `/v3/` for the client API,
        // `/v1/` for the appservice ping (added in v1.7).
        let versions = SupportedVersions {
            versions: BTreeSet::from([MatrixVersion::V1_1, MatrixVersion::V1_7, MatrixVersion::V1_11]),
            features: BTreeSet::new(),
        };
        Self {
            http,
            homeserver: homeserver.as_str().trim_end_matches('/').to_owned(),
            as_token,
            appservice_id: appservice_id.into(),
            versions,
            reach: Reach::default(),
        }
    }

    /// The homeserver's client-server base URL.
    pub fn homeserver(&self) -> &str {
        &self.homeserver
    }

    /// The application service's id (the registration's `id`).
    pub fn appservice_id(&self) -> &str {
        &self.appservice_id
    }

    /// Whether the homeserver can be reached, as the last call found it.
    pub fn health(&self) -> Health {
        self.reach.health(&self.homeserver)
    }

    /// Asks the homeserver for `/_matrix/client/versions` (no token, no side effect), only to
    /// learn whether it answers; the answer is recorded for [`Client::health`]. At most
    /// `timeout`: a homeserver that hangs is as unreachable as one that refuses.
    pub async fn probe(&self, timeout: Duration) {
        let url = format!("{}/_matrix/client/versions", self.homeserver);
        match self.http.get(url).timeout(timeout).send().await {
            Ok(_) => self.reach.reached(&self.homeserver),
            Err(e) => self.reach.unreachable(&self.homeserver, &e.without_url().to_string()),
        }
    }

    /// Registers a ghost by localpart, without a device or an access token.
    pub async fn register_ghost(&self, localpart: &str) -> Result<Registered, ClientError> {
        let mut request = register::v3::Request::new();
        request.username = Some(localpart.to_owned());
        request.login_type = Some(LoginType::ApplicationService);
        request.inhibit_login = true;
        request.kind = RegistrationKind::User;
        match self.call(request, None).await {
            Ok(_) => Ok(Registered::Created),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(Registered::AlreadyExisted),
            Err(e) => Err(e),
        }
    }

    /// Sets a user's display name.
    pub async fn set_display_name(&self, user: &UserId, name: &str) -> Result<(), ClientError> {
        let request = set_profile_field::v3::Request::new(
            user.to_owned(),
            ProfileFieldValue::DisplayName(name.to_owned()),
        );
        self.call(request, Some(user)).await.map(|_| ())
    }

    /// Whether `user` exists, asked as `asker` through their profile: a homeserver answers 404
    /// for a user it does not know (its own, or over federation another's): `M_NOT_FOUND` as the
    /// specification says, or `M_UNKNOWN` ("No row found") as Synapse does for its own users.
    pub async fn user_exists(&self, asker: &UserId, user: &UserId) -> Result<bool, ClientError> {
        match self.call(get_profile::v3::Request::new(user.to_owned()), Some(asker)).await {
            Ok(_) => Ok(true),
            Err(ClientError::Matrix { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a private direct-message room as `creator` (a ghost) and invites `invitee`;
    /// end-to-end encrypted (Megolm) from its first event if `encrypted`.
    pub async fn create_dm(
        &self,
        creator: &UserId,
        invitee: &UserId,
        encrypted: bool,
    ) -> Result<OwnedRoomId, ClientError> {
        let mut request = create_room::v3::Request::new();
        request.is_direct = true;
        request.invite = vec![invitee.to_owned()];
        request.preset = Some(RoomPreset::TrustedPrivateChat);
        // Whoever joins later (which suspends the portal) reads nothing from before their
        // invite; the invitee reads from theirs, so a DM3 user's first messages wait for them.
        let history = serde_json::json!({
            "type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}
        });
        let encryption = serde_json::json!({
            "type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}
        });
        let initial_state = if encrypted { vec![history, encryption] } else { vec![history] };
        request.initial_state = initial_state
            .iter()
            .map(|event| Raw::new(event).map(Raw::cast_unchecked))
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Request(e.to_string()))?;
        self.call(request, Some(creator)).await.map(|r| r.room_id)
    }

    /// Invites `invitee` to `room` as `inviter`.
    pub async fn invite(&self, inviter: &UserId, room: &RoomId, invitee: &UserId) -> Result<(), ClientError> {
        let recipient = invite_user::v3::InvitationRecipient::UserId(invite_user::v3::InviteUserId::new(
            invitee.to_owned(),
        ));
        let request = invite_user::v3::Request::new(room.to_owned(), recipient);
        self.call(request, Some(inviter)).await.map(|_| ())
    }

    /// Joins `room` as `user` (a ghost accepting an invite).
    pub async fn join(&self, user: &UserId, room: &RoomId) -> Result<(), ClientError> {
        self.call(join_room_by_id::v3::Request::new(room.to_owned()), Some(user)).await.map(|_| ())
    }

    /// Leaves `room` as `user`, or rejects the invite if `user` was only invited; `reason` is
    /// shown to the room's members.
    pub async fn leave(&self, user: &UserId, room: &RoomId, reason: Option<&str>) -> Result<(), ClientError> {
        let mut request = leave_room::v3::Request::new(room.to_owned());
        request.reason = reason.map(str::to_owned);
        self.call(request, Some(user)).await.map(|_| ())
    }

    /// The users who joined `room`, as seen by `user` (who must be in it).
    pub async fn joined_members(
        &self,
        user: &UserId,
        room: &RoomId,
    ) -> Result<Vec<OwnedUserId>, ClientError> {
        let request = joined_members::v3::Request::new(room.to_owned());
        self.call(request, Some(user)).await.map(|r| r.joined.into_keys().collect())
    }

    /// Sends a message-like event as `sender`, idempotent by `txn_id` (also across a restart of
    /// the homeserver: [`resend`]), stamped `timestamp_ms`.
    pub async fn send<C: MessageLikeEventContent>(
        &self,
        sender: &UserId,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        content: &C,
        attempt: Attempt,
    ) -> Result<OwnedEventId, ClientError> {
        let body = match serde_json::to_value(content) {
            Ok(serde_json::Value::Object(body)) => body,
            Ok(_) => return Err(ClientError::Request("event content is not a JSON object".to_owned())),
            Err(e) => return Err(ClientError::Request(e.to_string())),
        };
        let event_type = content.event_type().to_string();
        self.send_raw(sender, room, txn_id, timestamp_ms, &event_type, &body, attempt).await
    }

    /// Sends an `m.room.message` (text, notice, media, reply, edit) as `sender`.
    pub async fn send_message(
        &self,
        sender: &UserId,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        content: &RoomMessageEventContent,
        attempt: Attempt,
    ) -> Result<OwnedEventId, ClientError> {
        self.send(sender, room, txn_id, timestamp_ms, content, attempt).await
    }

    /// Sends an event of `event_type` with `content` (a bridge payload) as `sender`, idempotent
    /// by `txn_id`, stamped `timestamp_ms`. The content gets the txn id under [`TXN_KEY`],
    /// except ciphertext, which goes exactly as prepared (unique already, and the key would sit
    /// in the clear beside it).
    #[allow(clippy::too_many_arguments)] // the send's own parts, each named by the spec
    pub async fn send_raw(
        &self,
        sender: &UserId,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        event_type: &str,
        content: &serde_json::Map<String, serde_json::Value>,
        attempt: Attempt,
    ) -> Result<OwnedEventId, ClientError> {
        let mut content = content.clone();
        if event_type != ENCRYPTED_EVENT {
            content.insert(TXN_KEY.to_owned(), serde_json::Value::String(txn_id.to_string()));
        }
        if attempt == Attempt::Retry
            && let Some(earlier) = self.posted_before(sender, room, event_type, &content).await?
        {
            return Ok(earlier);
        }
        let body =
            serde_json::value::to_raw_value(&content).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut request = send_message_event::v3::Request::new_raw(
            room.to_owned(),
            txn_id.to_owned(),
            MessageLikeEventType::from(event_type),
            Raw::from_json(body),
        );
        request.timestamp = timestamp_ms.map(millis).transpose()?;
        self.call(request, Some(sender)).await.map(|r| r.event_id)
    }

    /// Reacts to `target` with `key` as `sender`.
    #[allow(clippy::too_many_arguments)] // the send's own parts, each named by the spec
    pub async fn send_reaction(
        &self,
        sender: &UserId,
        room: &RoomId,
        txn_id: &TransactionId,
        timestamp_ms: Option<u64>,
        target: &EventId,
        key: &str,
        attempt: Attempt,
    ) -> Result<OwnedEventId, ClientError> {
        let content = ReactionEventContent::new(Annotation::new(target.to_owned(), key.to_owned()));
        self.send(sender, room, txn_id, timestamp_ms, &content, attempt).await
    }

    /// Redacts `target` as `sender`, idempotent by `txn_id`.
    pub async fn redact(
        &self,
        sender: &UserId,
        room: &RoomId,
        target: &EventId,
        txn_id: &TransactionId,
        reason: Option<&str>,
    ) -> Result<OwnedEventId, ClientError> {
        let mut request =
            redact_event::v3::Request::new(room.to_owned(), target.to_owned(), txn_id.to_owned());
        request.reason = reason.map(str::to_owned);
        self.call(request, Some(sender)).await.map(|r| r.event_id)
    }

    /// Marks everything up to `event` read by `user` (`m.read`).
    pub async fn send_receipt(
        &self,
        user: &UserId,
        room: &RoomId,
        event: &EventId,
    ) -> Result<(), ClientError> {
        let request = create_receipt::v3::Request::new(room.to_owned(), ReceiptType::Read, event.to_owned());
        self.call(request, Some(user)).await.map(|_| ())
    }

    /// The facts of `room`'s current state that decide whether it may be a portal, as seen by
    /// `user` (who must be in the room: `M_FORBIDDEN` otherwise).
    pub async fn room_facts(&self, user: &UserId, room: &RoomId) -> Result<RoomFacts, ClientError> {
        let request = get_state_events::v3::Request::new(room.to_owned());
        self.call(request, Some(user)).await.map(|response| RoomFacts::from_state(&response.room_state))
    }

    /// Whether `room` is end-to-end encrypted, as seen by `user` (who must be in the room).
    pub async fn room_encryption(&self, user: &UserId, room: &RoomId) -> Result<RoomEncryption, ClientError> {
        let request = get_state_event_for_key::v3::Request::new(
            room.to_owned(),
            StateEventType::RoomEncryption,
            String::new(),
        );
        match self.call(request, Some(user)).await {
            Ok(response) => {
                // Read loosely: content the typed event refuses is encryption all the same.
                let content = response
                    .into_content()
                    .deserialize_as_unchecked::<serde_json::Map<String, serde_json::Value>>()
                    .unwrap_or_default();
                Ok(RoomEncryption::from_content(&content))
            }
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(RoomEncryption::Unencrypted),
            Err(e) => Err(e),
        }
    }

    /// Asks the homeserver to ping the bridge (`POST /_matrix/client/v1/appservice/{id}/ping`);
    /// answers the round trip the homeserver measured. An error here at start-up means the
    /// homeserver cannot reach the bridge's URL or does not accept its tokens.
    pub async fn ping(&self, transaction_id: Option<OwnedTransactionId>) -> Result<Duration, ClientError> {
        let mut request = request_ping::v1::Request::new(self.appservice_id.clone());
        request.transaction_id = transaction_id;
        self.call(request, None).await.map(|r| r.duration)
    }

    /// One call: build with ruma, send with reqwest, parse with ruma.
    async fn call<R>(&self, request: R, as_user: Option<&UserId>) -> Result<R::IncomingResponse, ClientError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        self.call_as(request, identity(as_user)).await
    }

    /// One call as `identity` (a ghost, or one of its devices: `?user_id=…&device_id=…`).
    async fn call_as<R>(
        &self,
        request: R,
        identity: AppserviceUserIdentity<'_>,
    ) -> Result<R::IncomingResponse, ClientError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        self.call_bounded(request, identity, MAX_RESPONSE_BYTES).await
    }

    /// [`call_as`](Self::call_as) reading at most `limit` bytes of the answer.
    async fn call_bounded<R>(
        &self,
        request: R,
        identity: AppserviceUserIdentity<'_>,
        limit: usize,
    ) -> Result<R::IncomingResponse, ClientError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let response = self.execute(request, identity).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_bounded(response, limit).await?;
        let http_response = http_response(status, headers, &body)?;
        if status.as_u16() >= 400 {
            return Err(matrix_error(ruma::api::error::Error::from_http_response(http_response)));
        }
        R::IncomingResponse::try_from_http_response(http_response)
            .map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Builds `request` with ruma and sends it; the body of the answer is left to the caller.
    async fn execute<R>(
        &self,
        request: R,
        identity: AppserviceUserIdentity<'_>,
    ) -> Result<reqwest::Response, ClientError>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let http_request = request
            .try_into_http_request_with_identity::<Vec<u8>>(
                &self.homeserver,
                SendAccessToken::Appservice(self.as_token.expose()),
                identity,
                <R::PathBuilder as PathInput>::input(&self.versions),
            )
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let request =
            reqwest::Request::try_from(http_request).map_err(|e| ClientError::Request(e.to_string()))?;
        match self.http.execute(request).await {
            Ok(response) => {
                self.reach.reached(&self.homeserver);
                Ok(response)
            }
            Err(e) => {
                let reason = e.without_url().to_string();
                self.reach.unreachable(&self.homeserver, &reason);
                Err(ClientError::Transport(reason))
            }
        }
    }
}

/// The identity assertion of a call as `as_user`, or as the bridge's bot with `None`.
fn identity(as_user: Option<&UserId>) -> AppserviceUserIdentity<'_> {
    match as_user {
        Some(user) => AppserviceUserIdentity::new(user),
        None => AppserviceUserIdentity::default(),
    }
}

/// The answer as the `http` type ruma parses.
fn http_response(
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: &[u8],
) -> Result<axum::http::Response<&[u8]>, ClientError> {
    let mut builder = axum::http::Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder.body(body).map_err(|e| ClientError::BadResponse(e.to_string()))
}

/// Reads at most `limit` bytes of `response`'s body; `None` if it is longer.
async fn read_up_to(mut response: reqwest::Response, limit: u64) -> Result<Option<Vec<u8>>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| ClientError::Transport(e.without_url().to_string()))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

async fn read_bounded(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    read_up_to(response, limit as u64)
        .await?
        .ok_or_else(|| ClientError::BadResponse(format!("answer larger than {limit} bytes")))
}

fn millis(timestamp_ms: u64) -> Result<MilliSecondsSinceUnixEpoch, ClientError> {
    UInt::new(timestamp_ms)
        .map(MilliSecondsSinceUnixEpoch)
        .ok_or_else(|| ClientError::Request(format!("timestamp {timestamp_ms} is out of range")))
}

/// Maps ruma's error to ours, pulling out the rate limit.
fn matrix_error(error: ruma::api::error::Error) -> ClientError {
    let status = error.status_code.as_u16();
    match error.error_kind() {
        Some(ErrorKind::LimitExceeded(data)) => {
            let delay = data.retry_after.as_ref().map(|retry| match retry {
                RumaRetryAfter::Delay(delay) => *delay,
                RumaRetryAfter::DateTime(at) => at.duration_since(SystemTime::now()).unwrap_or_default(),
            });
            ClientError::RetryAfter(RetryAfter { delay })
        }
        Some(kind) => {
            let message = match &error.body {
                ruma::api::error::ErrorBody::Standard(body) => body.message.clone(),
                _ => String::new(),
            };
            ClientError::Matrix { status, errcode: kind.errcode().to_string(), message }
        }
        None => {
            ClientError::Matrix { status, errcode: String::new(), message: "no Matrix error body".to_owned() }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn error(status: u16, body: serde_json::Value) -> ClientError {
        let body = body.to_string();
        let response = axum::http::Response::builder().status(status).body(body.as_bytes()).unwrap();
        matrix_error(ruma::api::error::Error::from_http_response(response))
    }

    #[test]
    fn limit_exceeded_becomes_retry_after() {
        let e = error(
            429,
            serde_json::json!({"errcode": "M_LIMIT_EXCEEDED", "error": "slow", "retry_after_ms": 1500}),
        );
        assert!(
            matches!(e, ClientError::RetryAfter(RetryAfter { delay: Some(d) }) if d == Duration::from_millis(1500))
        );
        assert!(e.is_retryable());
        let e = error(429, serde_json::json!({"errcode": "M_LIMIT_EXCEEDED", "error": "slow"}));
        assert!(matches!(e, ClientError::RetryAfter(RetryAfter { delay: None })));
    }

    #[test]
    fn other_errors_keep_their_errcode() {
        let e = error(400, serde_json::json!({"errcode": "M_USER_IN_USE", "error": "taken"}));
        assert_eq!(e.errcode(), Some("M_USER_IN_USE"));
        assert!(!e.is_retryable());
        assert!(error(502, serde_json::json!({"errcode": "M_UNKNOWN", "error": "x"})).is_retryable());
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let client =
            Client::new(&Url::parse("http://127.0.0.1:1").unwrap(), AsToken::new("sekrit"), "dm3").unwrap();
        assert!(!format!("{client:?}").contains("sekrit"));
    }
}
