//! The application-service API the homeserver calls: an axum [`Router`] the service mounts.
//!
//! | route | answer |
//! |---|---|
//! | `PUT /_matrix/app/v1/transactions/{txnId}` | `{}` once the [`TransactionSink`] stored the batch (or had it already) |
//! | `GET /_matrix/app/v1/users/{userId}` | `{}` after registering the ghost, if the [`GhostDirectory`] knows the identity; 404 otherwise |
//! | `GET /_matrix/app/v1/rooms/{roomAlias}` | 404: the bridge creates no rooms by alias (yet) |
//! | `POST /_matrix/app/v1/ping` | `{}` |
//! | anything else | 404 `M_UNRECOGNIZED` (405 for a known path with the wrong method) |
//!
//! Every known route first checks the homeserver token ([`crate::auth`]): missing is 401
//! `M_UNAUTHORIZED`, wrong is 403 `M_FORBIDDEN`, as the spec says. Bodies are read with a hard
//! size limit before any parsing, and the transaction is parsed with ruma's endpoint type.
//!
//! With ghost devices ([`crate::crypto`]), the one-time-key counts a transaction carries
//! (MSC3202) go to the [`KeySupply`] once the transaction is stored; a malformed count never
//! refuses the transaction; the to-device messages (room keys, MSC2409) are kept before the
//! answer, since the homeserver forgets them once it has its 200 (and sends a transaction
//! answered 500 again without them), and opened afterwards ([`crate::crypto::inbox`]); the
//! device-list changes (MSC3202 `device_lists`) are recorded before the transaction is stored,
//! for the same reason ([`crate::crypto::device_lists`]).
//!
//! The user query blocks the homeserver's invite until it answers, so it does the minimum:
//! one directory lookup, one registration, one display-name call.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use dm3_bridge_connector::NetworkId;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use ruma::api::IncomingRequestExt as _;
use ruma::api::appservice::event::push_events;
use ruma::{OwnedUserId, UserId};

use crate::auth::{HsTokenVerifier, TokenCheck};
use crate::client::Client;
use crate::command::CommandPrefix;
use crate::crypto::{GhostDevices, KeySupply, device_list_updates, key_counts, to_device_events};
use crate::directory::GhostDirectory;
use crate::ghost::GhostNamespace;
use crate::registration::{Registration, RegistrationScope};
use crate::response::{MatrixError, empty};
use crate::transaction::{Recorded, Transaction, TransactionSink};

/// Largest transaction body accepted unless configured otherwise. Synapse batches at most 100
/// timeline events of at most 64 KiB each, plus ephemeral events.
pub const DEFAULT_MAX_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;

/// The connector's name in the engine's tables unless [`Appservice::network`] says otherwise.
pub const DEFAULT_NETWORK: &str = "matrix";

/// Everything the routes need.
pub struct Appservice<S: ?Sized, G: ?Sized> {
    verifier: HsTokenVerifier,
    network: NetworkId,
    scope: RegistrationScope,
    ghosts: GhostNamespace,
    commands: CommandPrefix,
    client: Arc<Client>,
    sink: Arc<S>,
    directory: Arc<G>,
    max_transaction_bytes: usize,
    /// Where the one-time-key counts of ghost devices go (MSC3202), and who opens the
    /// to-device messages sent to them (MSC2409), if the bridge has devices.
    key_supply: Option<KeySupply>,
    devices: Option<Arc<GhostDevices>>,
}

impl<S: TransactionSink + ?Sized, G: GhostDirectory + ?Sized> Appservice<S, G> {
    /// The routes of `registration`, registering ghosts through `client`, handing transactions
    /// to `sink` (the engine's `InboundSink` as it is, [`crate::batch`]) and asking `directory`
    /// which ghosts exist.
    pub fn new(registration: &Registration, client: Arc<Client>, sink: Arc<S>, directory: Arc<G>) -> Self {
        Self {
            verifier: HsTokenVerifier::new(registration.hs_token()),
            network: NetworkId::new(DEFAULT_NETWORK)
                .unwrap_or_else(|e| unreachable!("`{DEFAULT_NETWORK}` is a valid network id: {e}")),
            scope: registration.scope(),
            ghosts: registration.ghosts().clone(),
            commands: CommandPrefix::default(),
            client,
            sink,
            directory,
            max_transaction_bytes: DEFAULT_MAX_TRANSACTION_BYTES,
            key_supply: None,
            devices: None,
        }
    }

    /// Hands the one-time-key counts in transactions to `supply`, which tops ghost devices up
    /// ([`crate::crypto::supply`]).
    pub fn key_supply(mut self, supply: KeySupply) -> Self {
        self.key_supply = Some(supply);
        self
    }

    /// Opens the to-device messages in transactions (room keys) with `devices` before the
    /// homeserver gets its 200 ([`crate::crypto::receive`]).
    pub fn ghost_devices(mut self, devices: Arc<GhostDevices>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// The connector's name in the engine's tables (its batches carry it).
    pub fn network(mut self, network: NetworkId) -> Self {
        self.network = network;
        self
    }

    /// How a Matrix user's command to the bridge starts ([`crate::command`]).
    pub fn command_prefix(mut self, prefix: CommandPrefix) -> Self {
        self.commands = prefix;
        self
    }

    /// Overrides the transaction body limit.
    pub fn max_transaction_bytes(mut self, limit: usize) -> Self {
        self.max_transaction_bytes = limit;
        self
    }

    /// The router to mount (at the root: the paths are absolute). It has no router-wide
    /// fallback, so it merges into the node's router: unknown paths under `/_matrix/` and wrong
    /// methods on known ones get Matrix errors, everything else is left to the node.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        let wrong_method = || async { MatrixError::method_not_allowed() };
        Router::new()
            .route(
                "/_matrix/app/v1/transactions/{txn_id}",
                put(put_transaction::<S, G>).fallback(wrong_method),
            )
            .route("/_matrix/app/v1/users/{user_id}", get(get_user::<S, G>).fallback(wrong_method))
            .route("/_matrix/app/v1/rooms/{room_alias}", get(get_room_alias).fallback(wrong_method))
            .route("/_matrix/app/v1/ping", post(post_ping).fallback(wrong_method))
            .route_layer(middleware::from_fn_with_state(state.clone(), require_hs_token::<S, G>))
            .route("/_matrix/{*rest}", any(|| async { MatrixError::unrecognized() }))
            .with_state(state)
    }
}

async fn require_hs_token<S: TransactionSink + ?Sized, G: GhostDirectory + ?Sized>(
    State(state): State<Arc<Appservice<S, G>>>,
    request: Request,
    next: Next,
) -> Response {
    match state.verifier.check(request.headers(), request.uri().query()) {
        TokenCheck::Valid => next.run(request).await,
        TokenCheck::Missing => MatrixError::unauthorized().into_response(),
        TokenCheck::Wrong => {
            tracing::warn!(path = %request.uri().path(), "application-service request with a wrong homeserver token");
            MatrixError::forbidden().into_response()
        }
    }
}

async fn put_transaction<S: TransactionSink + ?Sized, G: GhostDirectory + ?Sized>(
    State(state): State<Arc<Appservice<S, G>>>,
    Path(txn_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MatrixError> {
    let bytes = read_limited(&headers, body, state.max_transaction_bytes).await?;
    let http_request = axum::http::Request::builder()
        .method(Method::PUT)
        .uri(format!("/_matrix/app/v1/transactions/{txn_id}"))
        .body(bytes.as_ref())
        .map_err(|e| MatrixError::bad_json(e.to_string()))?;
    let request = push_events::v1::Request::try_from_http_request(http_request, &[txn_id.as_str()])
        .map_err(|e| MatrixError::bad_json(format!("not a transaction: {e}")))?;
    let events = request.events.len();
    let transaction = Transaction {
        network: state.network.clone(),
        ghosts: state.ghosts.clone(),
        commands: state.commands.clone(),
        scope: state.scope.clone(),
        txn_id: request.txn_id,
        events: request.events,
        ephemeral: request.ephemeral,
        decrypts: state.devices.is_some(),
    };
    // Before the store: if the store fails, the homeserver sends the transaction again
    // (Synapse without its device lists), and the marks are kept already.
    if let Some(devices) = &state.devices {
        mark_device_lists(devices, &bytes, &txn_id).await?;
        // To-device messages are gone once the homeserver has our 200, and a transaction
        // answered 500 comes again without them (Synapse keeps them in memory only): kept
        // first, before the events, and opened afterwards ([`crate::crypto::inbox`]).
        let messages = to_device_events(&bytes, &state.ghosts);
        if !messages.is_empty() {
            devices.accept_to_device(messages, &txn_id).await.map_err(|e| {
                tracing::error!(txn_id, error = %e, "to-device messages not kept; the homeserver will retry");
                MatrixError::internal("the to-device messages could not be kept; retry later")
            })?;
        }
    }
    match state.sink.record(transaction).await {
        Ok(Recorded::New) => tracing::debug!(txn_id, events, "transaction recorded"),
        Ok(Recorded::AlreadySeen) => tracing::debug!(txn_id, "transaction seen before; not delivered again"),
        Err(e) => {
            tracing::error!(txn_id, error = %e, "transaction not stored; the homeserver will retry");
            return Err(MatrixError::internal("the transaction could not be stored; retry later"));
        }
    }
    // After the store, and for a repeated transaction too: counts are the homeserver's latest.
    if let Some(supply) = &state.key_supply {
        supply.report(key_counts(&bytes, &state.ghosts));
    }
    Ok(empty())
}

/// Records the transaction's device-list changes (MSC3202) before it is answered: a lost mark
/// would keep a stale list, and a member's new device would miss the ghosts' room keys.
async fn mark_device_lists(devices: &GhostDevices, body: &[u8], txn_id: &str) -> Result<(), MatrixError> {
    let updates = device_list_updates(body);
    devices.device_lists_changed(&updates).await.map_err(|e| {
        tracing::error!(txn_id, error = %e, "device-list changes not recorded; the homeserver will retry");
        MatrixError::internal("the device-list changes could not be recorded; retry later")
    })
}

async fn get_user<S: TransactionSink + ?Sized, G: GhostDirectory + ?Sized>(
    State(state): State<Arc<Appservice<S, G>>>,
    Path(user_id): Path<String>,
) -> Result<Response, MatrixError> {
    let unknown = || MatrixError::not_found("no such user on this bridge");
    let user_id: OwnedUserId = UserId::parse(&user_id).map_err(|_| unknown())?;
    let identity = state.ghosts.identity(&user_id).map_err(|_| unknown())?;
    let profile = match state.directory.lookup(&identity).await {
        Ok(Some(profile)) => profile,
        Ok(None) => return Err(unknown()),
        Err(e) => {
            tracing::warn!(%user_id, error = %e, "ghost directory unavailable");
            return Err(MatrixError::internal("the bridge could not look the user up; retry later"));
        }
    };
    let failed = |step: &str, e: crate::client::ClientError| {
        tracing::warn!(%user_id, error = %e, "{step} failed");
        MatrixError::internal(format!("{step} failed"))
    };
    let registered = state
        .client
        .register_ghost(user_id.localpart())
        .await
        .map_err(|e| failed("registering the ghost", e))?;
    state
        .client
        .set_display_name(&user_id, &profile.display_name)
        .await
        .map_err(|e| failed("setting the ghost's display name", e))?;
    tracing::info!(%user_id, ?registered, "ghost provisioned on the homeserver's query");
    Ok(empty())
}

async fn get_room_alias(Path(alias): Path<String>) -> MatrixError {
    tracing::debug!(alias, "room alias query: the bridge provides no rooms by alias");
    MatrixError::not_found("the bridge provides no rooms by alias")
}

async fn post_ping(body: Bytes) -> Response {
    // `{"transaction_id": …}` lets the bridge match a ping it requested; the answer is `{}`
    // either way, so the body is only logged.
    let transaction_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("transaction_id").and_then(|t| t.as_str()).map(str::to_owned));
    tracing::debug!(?transaction_id, "ping from the homeserver");
    empty()
}

/// Reads at most `limit` bytes: a declared larger body is refused unread, a longer stream is
/// cut off at the limit.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, MatrixError> {
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(MatrixError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(MatrixError::too_large(limit)),
        Err(e) => Err(MatrixError::bad_json(format!("the body could not be read: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashSet;
    use std::sync::Mutex;

    use axum::http::StatusCode;
    use dm3_bridge_connector::{BoxFuture, RemoteIdentity};
    use ruma::ServerName;
    use tower::ServiceExt as _;
    use url::Url;

    use super::*;
    use crate::directory::{DirectoryError, GhostProfile};
    use crate::secret::AsToken;
    use crate::transaction::SinkError;

    #[derive(Default)]
    struct MemorySink {
        seen: Mutex<HashSet<(RegistrationScope, String)>>,
        delivered: Mutex<Vec<Transaction>>,
    }

    impl TransactionSink for MemorySink {
        async fn record(&self, transaction: Transaction) -> Result<Recorded, SinkError> {
            let key = (transaction.scope.clone(), transaction.txn_id.to_string());
            if !self.seen.lock().unwrap().insert(key) {
                return Ok(Recorded::AlreadySeen);
            }
            self.delivered.lock().unwrap().push(transaction);
            Ok(Recorded::New)
        }
    }

    struct NoGhosts;

    impl GhostDirectory for NoGhosts {
        fn lookup<'a>(
            &'a self,
            _: &'a RemoteIdentity,
        ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>> {
            Box::pin(async { Ok(None) })
        }
    }

    fn setup() -> (Registration, Arc<MemorySink>, Router) {
        let server = <&ServerName>::try_from("example.org").unwrap();
        let registration =
            Registration::builder("dm3", Url::parse("http://127.0.0.1:1").unwrap(), server).build().unwrap();
        let client =
            Client::new(&Url::parse("http://127.0.0.1:1").unwrap(), AsToken::new("x"), "dm3").unwrap();
        let sink = Arc::new(MemorySink::default());
        let router = Appservice::new(&registration, Arc::new(client), sink.clone(), Arc::new(NoGhosts))
            .max_transaction_bytes(4096)
            .router();
        (registration, sink, router)
    }

    async fn call(
        router: &Router,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response =
            router.clone().oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    const EVENT: &str = r#"{"events":[{"type":"m.room.message","event_id":"$e1","room_id":"!r","sender":"@bob:example.org","origin_server_ts":1,"content":{"msgtype":"m.text","body":"hi"}}]}"#;

    #[tokio::test]
    async fn token_is_required_and_checked() {
        let (registration, sink, router) = setup();
        let uri = "/_matrix/app/v1/transactions/1";
        let (status, body) = call(&router, Method::PUT, uri, None, EVENT).await;
        assert_eq!((status, body.contains("M_UNAUTHORIZED")), (StatusCode::UNAUTHORIZED, true));
        let (status, body) = call(&router, Method::PUT, uri, Some("wrong"), EVENT).await;
        assert_eq!((status, body.contains("M_FORBIDDEN")), (StatusCode::FORBIDDEN, true));
        assert!(sink.delivered.lock().unwrap().is_empty());
        let (status, body) =
            call(&router, Method::PUT, uri, Some(registration.hs_token().expose()), EVENT).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
        assert_eq!(sink.delivered.lock().unwrap()[0].events.len(), 1);
    }

    #[tokio::test]
    async fn replayed_transaction_is_acknowledged_but_not_delivered_again() {
        let (registration, sink, router) = setup();
        let token = Some(registration.hs_token().expose());
        for _ in 0..2 {
            let (status, _) =
                call(&router, Method::PUT, "/_matrix/app/v1/transactions/7", token, EVENT).await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(sink.delivered.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn oversized_and_malformed_bodies_are_refused() {
        let (registration, sink, router) = setup();
        let token = Some(registration.hs_token().expose());
        let big = format!(r#"{{"events":[],"pad":"{}"}}"#, "x".repeat(5000));
        let (status, body) = call(&router, Method::PUT, "/_matrix/app/v1/transactions/1", token, &big).await;
        assert_eq!((status, body.contains("M_TOO_LARGE")), (StatusCode::PAYLOAD_TOO_LARGE, true));
        let (status, body) = call(&router, Method::PUT, "/_matrix/app/v1/transactions/1", token, "{").await;
        assert_eq!((status, body.contains("M_BAD_JSON")), (StatusCode::BAD_REQUEST, true));
        assert!(sink.delivered.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_users_rooms_and_routes() {
        let (registration, _, router) = setup();
        let token = Some(registration.hs_token().expose());
        let (status, body) =
            call(&router, Method::GET, "/_matrix/app/v1/users/@_dm3_alice.eth:example.org", token, "").await;
        assert_eq!((status, body.contains("M_NOT_FOUND")), (StatusCode::NOT_FOUND, true));
        let (status, _) =
            call(&router, Method::GET, "/_matrix/app/v1/users/@someone:example.org", token, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) =
            call(&router, Method::GET, "/_matrix/app/v1/rooms/%23a:example.org", token, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call(&router, Method::POST, "/_matrix/app/v1/ping", token, "{}").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "{}"));
        let (status, body) = call(&router, Method::GET, "/_matrix/app/v1/nothing", token, "").await;
        assert_eq!((status, body.contains("M_UNRECOGNIZED")), (StatusCode::NOT_FOUND, true));
        let (status, body) = call(&router, Method::GET, "/_matrix/app/v1/ping", token, "").await;
        assert_eq!((status, body.contains("M_UNRECOGNIZED")), (StatusCode::METHOD_NOT_ALLOWED, true));
    }
}
