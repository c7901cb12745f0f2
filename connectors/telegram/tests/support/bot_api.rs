//! A fake Telegram Bot API server that speaks the real wire format, for teloxide to talk to.
//!
//! Telegram's servers cannot run here, so this axum server answers the methods the connector
//! uses the way the Bot API documents them: `{"ok":true,"result":…}`, or
//! `{"ok":false,"error_code":…,"description":…,"parameters":{"retry_after":N}}` with the HTTP
//! status of the code. Requests come as JSON or multipart (uploads), at `/bot<token>/<method>`;
//! files are served at `/file/bot<token>/<path>`. Dates are in seconds, as Telegram sends them.
//!
//! The test drives the "Telegram users" side (`user_text`, `user_reply`, `user_reaction`, …,
//! which queue updates; `push_raw` queues any JSON, even what Telegram never sends, and
//! `serve_again` serves an update a second time, as a server that lost the confirmation would),
//! scripts failures (`rate_limit_every`, `fail_next`), and reads back what the bot did
//! (`sent`, `edits`, `deleted`, `reactions`): the fake records only what it accepted. Every call
//! is also logged with its arrival time and answer ([`BotApi::log`]), so a test can check the
//! bot's timing, e.g. that it waited `retry_after` after a 429.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::Notify;
use url::Url;

mod methods;
mod wire;

pub const TOKEN: &str = "123456:TEST-token_abcdefghijklmnopqrstuv";
pub const BOT_ID: i64 = 123_456;
pub const BOT_USERNAME: &str = "dm3_test_bot";
/// Largest upload the public Bot API takes.
const MAX_UPLOAD: usize = 50 * 1024 * 1024;
/// Largest file `getFile` serves.
const MAX_DOWNLOAD: u64 = 20 * 1024 * 1024;
/// The reactions Telegram allows a bot (a sample of the real list).
const ALLOWED_REACTIONS: [&str; 6] = ["👍", "👎", "❤", "🔥", "🎉", "😁"];

/// What the bot sent and the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub method: String,
    pub chat: i64,
    pub message_id: i32,
    /// `text` or `caption`, as sent (HTML when `parse_mode` is HTML).
    pub text: String,
    pub parse_mode: Option<String>,
    pub reply_to: Option<i32>,
    /// An uploaded file: its name and bytes; or a file id / URL sent by reference.
    pub file: Option<SentFile>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SentFile {
    Upload { name: String, bytes: Vec<u8> },
    Reference(String),
}

/// One call the fake answered: when it arrived, for which chat, and the HTTP status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The method, lowercased (`sendmessage`).
    pub method: String,
    pub chat: Option<i64>,
    pub at: Instant,
    pub status: u16,
    /// The `retry_after` of a 429 answer.
    pub retry_after: Option<u32>,
}

/// A scripted failure.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u32>,
}

impl Failure {
    pub fn blocked() -> Self {
        Self { code: 403, description: "Forbidden: bot was blocked by the user".into(), retry_after: None }
    }

    /// What Telegram's front ends answer while its servers are down.
    pub fn bad_gateway() -> Self {
        Self { code: 502, description: "Bad Gateway".into(), retry_after: None }
    }

    pub fn too_many(seconds: u32) -> Self {
        Self {
            code: 429,
            description: format!("Too Many Requests: retry after {seconds}"),
            retry_after: Some(seconds),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Usernames set by the test (`set_username`); `user<id>` otherwise.
    usernames: HashMap<i64, Option<String>>,
    next_update_id: u32,
    pending: Vec<Value>,
    /// Every update queued so far, by id (for `serve_again`).
    history: HashMap<u32, Value>,
    /// Updates served again: their offset does not drop them before they were served.
    again: Vec<u32>,
    next_message_id: HashMap<i64, i32>,
    messages: HashMap<(i64, i32), Value>,
    sent: Vec<Sent>,
    edits: Vec<(i64, i32, String)>,
    deleted: Vec<(i64, i32)>,
    reactions: Vec<(i64, i32, Vec<String>)>,
    /// Each user's reactions on a message of their chat, as Telegram lists them (JSON).
    user_reactions: HashMap<(i64, i32), Value>,
    /// The update kinds the bot asked for last (`getUpdates` or `setWebhook`); `None` or empty
    /// is Telegram's default.
    allowed_updates: Option<Vec<String>>,
    files: HashMap<String, (String, Vec<u8>, u64)>,
    webhook: Option<Value>,
    privacy_mode: bool,
    calls: HashMap<String, u32>,
    rate_limit_every: Option<(String, u32, u32)>,
    /// Calls of this method after the first `n` fail with 400 until cleared.
    outage_after: Option<(String, u32, Failure)>,
    fail_next: VecDeque<(String, Failure)>,
    get_updates_offsets: Vec<Option<i64>>,
    log: Vec<Call>,
    /// Every accepted call but `getUpdates`: the method (lower case) and its parameters.
    accepted_params: Vec<(String, serde_json::Map<String, Value>)>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    update_arrived: Notify,
}

/// The running fake.
pub struct BotApi {
    pub url: Url,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for BotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl BotApi {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        {
            let mut inner = shared.inner.lock().unwrap();
            inner.next_update_id = 1000;
            inner.privacy_mode = true;
        }
        let app = Router::new()
            .route("/file/{bot}/{*path}", get(wire::file))
            .route("/{bot}/{method}", any(wire::method))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, server }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    // ---- the Telegram users' side ----

    /// A private text message from `user`; answers (update id, message id).
    pub fn user_text(&self, user: i64, text: &str) -> (u32, i32) {
        let mut message = json!({"text": text});
        if text.starts_with('/') {
            let len = text.split_whitespace().next().unwrap().encode_utf16().count();
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        self.user_message(user, message)
    }

    /// A text message with entities.
    pub fn user_formatted(&self, user: i64, text: &str, entities: Value) -> (u32, i32) {
        self.user_message(user, json!({"text": text, "entities": entities}))
    }

    /// A reply from `user` to message `to` of their chat.
    pub fn user_reply(&self, user: i64, text: &str, to: i32) -> (u32, i32) {
        let original = self.lock().messages.get(&(user, to)).cloned().expect("the replied-to message exists");
        self.user_message(user, json!({"text": text, "reply_to_message": original}))
    }

    /// A document from `user`; `declared_size` is what Telegram reports (the bytes are served).
    pub fn user_document(
        &self,
        user: i64,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
        declared_size: u64,
    ) -> (u32, i32) {
        let file_id = self.add_file(name, bytes, declared_size);
        self.user_message(
            user,
            json!({"document": {"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_name": name, "mime_type": mime, "file_size": declared_size}, "caption": "see attached"}),
        )
    }

    /// A photo from `user` (Telegram lists its sizes; this one has a single size).
    pub fn user_photo(&self, user: i64, bytes: Vec<u8>, caption: &str) -> (u32, i32) {
        let size = bytes.len() as u64;
        let file_id = self.add_file("photo.jpg", bytes, size);
        self.user_message(
            user,
            json!({"photo": [{"file_id": file_id, "file_unique_id": format!("u{file_id}"), "width": 64, "height": 48, "file_size": size}], "caption": caption}),
        )
    }

    /// A location, which DM3 has no form for.
    pub fn user_location(&self, user: i64) -> (u32, i32) {
        self.user_message(user, json!({"location": {"latitude": 52.5, "longitude": 13.4}}))
    }

    /// `user` edits their message `id` to `text`.
    pub fn user_edit(&self, user: i64, id: i32, text: &str) -> u32 {
        let mut inner = self.lock();
        let mut message = inner.messages.get(&(user, id)).cloned().expect("the edited message exists");
        message["text"] = json!(text);
        message["edit_date"] = json!(now_secs());
        inner.messages.insert((user, id), message.clone());
        push_update(&mut inner, "edited_message", message, &self.shared)
    }

    /// `user` changes their reactions on message `id` of their chat to `emoji` (the whole list,
    /// empty to take every reaction back); answers the update id. The update carries the list
    /// before and after, as Telegram's `message_reaction` does.
    pub fn user_reaction(&self, user: i64, id: i32, emoji: &[&str]) -> u32 {
        let new = emoji.iter().map(|e| json!({"type": "emoji", "emoji": e})).collect();
        self.user_reaction_types(user, id, Value::Array(new))
    }

    /// [`Self::user_reaction`] with any reaction types, as JSON (`{"type": "custom_emoji",
    /// "custom_emoji_id": …}`, `{"type": "paid"}`).
    pub fn user_reaction_types(&self, user: i64, id: i32, new: Value) -> u32 {
        let mut inner = self.lock();
        let old = inner.user_reactions.insert((user, id), new.clone()).unwrap_or_else(|| json!([]));
        let update = json!({
            "chat": chat_json(user),
            "message_id": id,
            "user": user_json(&inner, user),
            "date": now_secs(),
            "old_reaction": old,
            "new_reaction": new,
        });
        push_update(&mut inner, "message_reaction", update, &self.shared)
    }

    /// Queues `update` (all but its `update_id`) as it is, however malformed; answers its id.
    pub fn push_raw(&self, update: Value) -> u32 {
        let mut inner = self.lock();
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        let mut update = update;
        update["update_id"] = json!(update_id);
        inner.history.insert(update_id, update.clone());
        inner.pending.push(update);
        self.shared.update_arrived.notify_waiters();
        update_id
    }

    /// A `message_reaction` on message `id` of `chat` that names neither `user` nor
    /// `actor_chat`: Telegram never sends one, and teloxide 0.13 panics reading it.
    pub fn reaction_without_actor(&self, chat: i64, id: i32) -> u32 {
        self.push_raw(json!({"message_reaction": {
            "chat": chat_json(chat),
            "message_id": id,
            "date": now_secs(),
            "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        }}))
    }

    /// Serves update `update_id` once more, after what is pending, even if an offset already
    /// confirmed it: what a server that lost the confirmation, or a webhook retry, does.
    pub fn serve_again(&self, update_id: u32) {
        let mut inner = self.lock();
        let update = inner.history.get(&update_id).cloned().expect("the update was queued before");
        inner.again.push(update_id);
        inner.pending.push(update);
        self.shared.update_arrived.notify_waiters();
    }

    /// The JSON of update `update_id`, as it was queued.
    pub fn update_json(&self, update_id: u32) -> Value {
        self.lock().history.get(&update_id).cloned().expect("the update was queued before")
    }

    /// Gives `user` the username `username` (without `@`; `None`: no username) in what they send
    /// from now on, as Telegram does when a username changes hands.
    pub fn set_username(&self, user: i64, username: Option<&str>) {
        self.lock().usernames.insert(user, username.map(str::to_owned));
    }

    fn user_message(&self, user: i64, mut fields: Value) -> (u32, i32) {
        let mut inner = self.lock();
        let id = next_message_id(&mut inner, user);
        let object = fields.as_object_mut().unwrap();
        object.insert("message_id".into(), json!(id));
        object.insert("from".into(), user_json(&inner, user));
        object.insert("chat".into(), chat_json(user));
        object.insert("date".into(), json!(now_secs()));
        inner.messages.insert((user, id), fields.clone());
        let update_id = push_update(&mut inner, "message", fields, &self.shared);
        (update_id, id)
    }

    /// Registers a file the bot can fetch; answers its file id.
    pub fn add_file(&self, name: &str, bytes: Vec<u8>, declared_size: u64) -> String {
        let mut inner = self.lock();
        let number = inner.files.len() + 1;
        let file_id = format!("BQACAgIAAx{number}");
        // Unique like Telegram's paths (`documents/file_12.json`): files may share a name.
        inner
            .files
            .insert(file_id.clone(), (format!("documents/file_{number}_{name}"), bytes, declared_size));
        file_id
    }

    // ---- scripting ----

    /// Every `n`-th call of `method` answers 429 with `retry_after = seconds`.
    pub fn rate_limit_every(&self, method: &str, n: u32, seconds: u32) {
        self.lock().rate_limit_every = Some((method.to_ascii_lowercase(), n, seconds));
    }

    /// The next call of `method` fails with `failure`.
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.lock().fail_next.push_back((method.to_ascii_lowercase(), failure));
    }

    /// Calls of `method` after the first `n` fail (400) until [`Self::end_outage`].
    pub fn outage_after(&self, method: &str, n: u32) {
        self.fail_after(
            method,
            n,
            Failure { code: 400, description: "Bad Request: scripted outage".into(), retry_after: None },
        );
    }

    /// Calls of `method` after the first `n` get `failure` until [`Self::end_outage`].
    pub fn fail_after(&self, method: &str, n: u32, failure: Failure) {
        let mut inner = self.lock();
        let method = method.to_ascii_lowercase();
        let made = inner.calls.get(&method).copied().unwrap_or(0);
        inner.outage_after = Some((method, made + n, failure));
    }

    pub fn end_outage(&self) {
        self.lock().outage_after = None;
    }

    /// Whether `getMe` reports privacy mode on (the default, as for a new bot).
    pub fn set_privacy_mode(&self, on: bool) {
        self.lock().privacy_mode = on;
    }

    // ---- what the bot did ----

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.chat == chat).collect()
    }

    /// The parameters of every accepted call of `method` (case-insensitive), in order.
    pub fn params_of(&self, method: &str) -> Vec<serde_json::Map<String, Value>> {
        let method = method.to_lowercase();
        self.lock().accepted_params.iter().filter(|(m, _)| *m == method).map(|(_, p)| p.clone()).collect()
    }

    pub fn edits(&self) -> Vec<(i64, i32, String)> {
        self.lock().edits.clone()
    }

    pub fn deleted(&self) -> Vec<(i64, i32)> {
        self.lock().deleted.clone()
    }

    pub fn reactions(&self) -> Vec<(i64, i32, Vec<String>)> {
        self.lock().reactions.clone()
    }

    pub fn webhook(&self) -> Option<Value> {
        self.lock().webhook.clone()
    }

    pub fn calls(&self, method: &str) -> u32 {
        self.lock().calls.get(&method.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// Updates Telegram still holds (not confirmed by an offset past them).
    pub fn pending_updates(&self) -> usize {
        self.lock().pending.len()
    }

    /// Every call so far, in the order they arrived.
    pub fn log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// The `offset` of every `getUpdates` call so far.
    pub fn get_updates_offsets(&self) -> Vec<Option<i64>> {
        self.lock().get_updates_offsets.clone()
    }

    /// Waits until `chat` got at least `n` messages from the bot.
    pub async fn wait_for_sent(&self, chat: i64, n: usize) -> Vec<Sent> {
        wait_until(|| {
            let sent = self.sent_to(chat);
            (sent.len() >= n).then_some(sent)
        })
        .await
    }
}

/// What a Telegram client shows of the HTML the bot sent.
pub fn visible_text(html: &str) -> String {
    methods::plain(html)
}

/// Polls `check` until it answers, for at most 10 s.
pub async fn wait_until<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn user_json(inner: &Inner, user: i64) -> Value {
    let mut json =
        json!({"id": user, "is_bot": false, "first_name": format!("User{user}"), "language_code": "en"});
    let username = inner.usernames.get(&user).cloned().unwrap_or_else(|| Some(format!("user{user}")));
    if let Some(username) = username {
        json["username"] = json!(username);
    }
    json
}

fn bot_json() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "DM3 bridge", "username": BOT_USERNAME})
}

fn chat_json(chat: i64) -> Value {
    json!({"id": chat, "type": "private", "first_name": format!("User{chat}"), "username": format!("user{chat}")})
}

fn next_message_id(inner: &mut Inner, chat: i64) -> i32 {
    let next = inner.next_message_id.entry(chat).or_insert(1);
    let id = *next;
    *next += 1;
    id
}

/// Update kinds Telegram sends only to a bot that names them in `allowed_updates`.
const NOT_SENT_BY_DEFAULT: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// Remembers the `allowed_updates` of a call that has them ("if not specified, the previous
/// setting will be used").
fn set_allowed_updates(inner: &mut Inner, allowed: Option<Value>) {
    if let Some(Value::Array(kinds)) = allowed {
        inner.allowed_updates = Some(kinds.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
    }
}

/// Whether Telegram would send `update` to the bot, given what it asked for.
fn is_allowed(inner: &Inner, update: &Value) -> bool {
    let kind =
        update.as_object().and_then(|o| o.keys().find(|k| *k != "update_id")).cloned().unwrap_or_default();
    match &inner.allowed_updates {
        Some(kinds) if !kinds.is_empty() => kinds.contains(&kind),
        _ => !NOT_SENT_BY_DEFAULT.contains(&kind.as_str()),
    }
}

fn push_update(inner: &mut Inner, kind: &str, object: Value, shared: &Shared) -> u32 {
    let update_id = inner.next_update_id;
    inner.next_update_id += 1;
    let update = json!({"update_id": update_id, kind: object});
    inner.history.insert(update_id, update.clone());
    inner.pending.push(update);
    shared.update_arrived.notify_waiters();
    update_id
}
