//! A fake Telegram Bot API server that speaks the real wire format, for teloxide to talk to.
//!
//! Telegram's servers cannot run here, so this axum server answers the methods the connector
//! uses the way the Bot API documents them: `{"ok":true,"result":…}`, or
//! `{"ok":false,"error_code":…,"description":…,"parameters":{"retry_after":N}}` with the HTTP
//! status of the code. Requests come as JSON or multipart (uploads), at `/bot<token>/<method>`;
//! files are served at `/file/bot<token>/<path>`. Dates are in seconds, as Telegram sends them.
//!
//! The test drives the "Telegram users" side (`user_text`, `user_reply`, …, which queue
//! updates), scripts failures (`rate_limit_every`, `fail_next`), and reads back what the bot did
//! (`sent`, `edits`, `deleted`, `reactions`): the fake records only what it accepted.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use url::Url;

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
    next_update_id: u32,
    pending: Vec<Value>,
    next_message_id: HashMap<i64, i32>,
    messages: HashMap<(i64, i32), Value>,
    sent: Vec<Sent>,
    edits: Vec<(i64, i32, String)>,
    deleted: Vec<(i64, i32)>,
    reactions: Vec<(i64, i32, Vec<String>)>,
    files: HashMap<String, (String, Vec<u8>, u64)>,
    webhook: Option<Value>,
    privacy_mode: bool,
    calls: HashMap<String, u32>,
    rate_limit_every: Option<(String, u32, u32)>,
    /// Calls of this method after the first `n` fail with 400 until cleared.
    outage_after: Option<(String, u32)>,
    fail_next: VecDeque<(String, Failure)>,
    get_updates_offsets: Vec<Option<i64>>,
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
            .route("/file/{bot}/{*path}", get(file))
            .route("/{bot}/{method}", any(method))
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

    fn user_message(&self, user: i64, mut fields: Value) -> (u32, i32) {
        let mut inner = self.lock();
        let id = next_message_id(&mut inner, user);
        let object = fields.as_object_mut().unwrap();
        object.insert("message_id".into(), json!(id));
        object.insert("from".into(), user_json(user));
        object.insert("chat".into(), chat_json(user));
        object.insert("date".into(), json!(now_secs()));
        inner.messages.insert((user, id), fields.clone());
        let update_id = push_update(&mut inner, "message", fields, &self.shared);
        (update_id, id)
    }

    /// Registers a file the bot can fetch; answers its file id.
    pub fn add_file(&self, name: &str, bytes: Vec<u8>, declared_size: u64) -> String {
        let mut inner = self.lock();
        let file_id = format!("BQACAgIAAx{}", inner.files.len() + 1);
        inner.files.insert(file_id.clone(), (format!("documents/{name}"), bytes, declared_size));
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
        let mut inner = self.lock();
        let method = method.to_ascii_lowercase();
        let made = inner.calls.get(&method).copied().unwrap_or(0);
        inner.outage_after = Some((method, made + n));
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

fn user_json(user: i64) -> Value {
    json!({"id": user, "is_bot": false, "first_name": format!("User{user}"), "username": format!("user{user}"), "language_code": "en"})
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

fn push_update(inner: &mut Inner, kind: &str, message: Value, shared: &Shared) -> u32 {
    let update_id = inner.next_update_id;
    inner.next_update_id += 1;
    inner.pending.push(json!({"update_id": update_id, kind: message}));
    shared.update_arrived.notify_waiters();
    update_id
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn error(failure: &Failure) -> Response {
    let mut body = json!({"ok": false, "error_code": failure.code, "description": failure.description});
    if let Some(seconds) = failure.retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    (StatusCode::from_u16(failure.code).unwrap(), Json(body)).into_response()
}

fn bad_request(description: &str) -> Response {
    error(&Failure { code: 400, description: format!("Bad Request: {description}"), retry_after: None })
}

/// The parameters of a call: JSON fields, and uploaded files by field name.
struct Params {
    fields: Map<String, Value>,
    files: HashMap<String, (String, Vec<u8>)>,
}

impl Params {
    fn str(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.fields.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A structured field, sent as JSON text in multipart bodies.
    fn object(&self, name: &str) -> Option<Value> {
        match self.fields.get(name)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }
}

async fn read_params(request: Request) -> Result<Params, Response> {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut params = Params { fields: Map::new(), files: HashMap::new() };
    if multipart {
        let mut form = Multipart::from_request(request, &()).await.map_err(IntoResponse::into_response)?;
        while let Some(field) = form.next_field().await.map_err(IntoResponse::into_response)? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.map_err(IntoResponse::into_response)?;
            if bytes.len() > MAX_UPLOAD {
                return Err(error(&Failure {
                    code: 413,
                    description: "Request Entity Too Large".into(),
                    retry_after: None,
                }));
            }
            match file_name {
                Some(file_name) => {
                    params.files.insert(name, (file_name, bytes.to_vec()));
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    params.fields.insert(name, Value::String(text));
                }
            }
        }
    } else {
        let bytes: Bytes = request.into_body().collect().await.map_err(|_| bad_request("body"))?.to_bytes();
        if !bytes.is_empty() {
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(fields)) => params.fields = fields,
                _ => return Err(bad_request("the body is not a JSON object")),
            }
        }
    }
    Ok(params)
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return error(&Failure { code: 401, description: "Unauthorized".into(), retry_after: None });
    }
    // Bot API method names are case-insensitive (teloxide sends `SendMessage`).
    let method = method.to_ascii_lowercase();
    let params = match read_params(request).await {
        Ok(params) => params,
        Err(response) => return response,
    };
    {
        let mut inner = shared.inner.lock().unwrap();
        let count = {
            let count = inner.calls.entry(method.clone()).or_insert(0);
            *count += 1;
            *count
        };
        if let Some(position) = inner.fail_next.iter().position(|(m, _)| *m == method) {
            let (_, failure) = inner.fail_next.remove(position).unwrap();
            return error(&failure);
        }
        if let Some((down, after)) = &inner.outage_after
            && *down == method
            && count > *after
        {
            return bad_request("scripted outage");
        }
        if let Some((limited, n, seconds)) = &inner.rate_limit_every
            && *limited == method
            && count % n == 0
        {
            return error(&Failure::too_many(*seconds));
        }
    }
    match method.as_str() {
        "getupdates" => get_updates(&shared, &params).await,
        other => {
            let mut inner = shared.inner.lock().unwrap();
            call(&mut inner, other, &params)
        }
    }
}

fn call(inner: &mut Inner, method: &str, params: &Params) -> Response {
    match method {
        "getme" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "DM3 bridge", "username": BOT_USERNAME,
            "can_join_groups": true, "can_read_all_group_messages": !inner.privacy_mode,
            "supports_inline_queries": false, "can_connect_to_business": false, "has_main_web_app": false,
        })),
        "getwebhookinfo" => {
            let url =
                inner.webhook.as_ref().and_then(|w| w["url"].as_str().map(str::to_owned)).unwrap_or_default();
            let mut info = json!({"url": url, "has_custom_certificate": false, "pending_update_count": inner.pending.len()});
            if let Some(webhook) = &inner.webhook {
                info["max_connections"] = webhook["max_connections"].clone();
                info["allowed_updates"] = webhook["allowed_updates"].clone();
            }
            ok(info)
        }
        "setwebhook" => {
            let Some(url) = params.str("url") else { return bad_request("url is empty") };
            inner.webhook = Some(json!({
                "url": url,
                "secret_token": params.str("secret_token"),
                "max_connections": params.int("max_connections"),
                "allowed_updates": params.object("allowed_updates"),
            }));
            ok(json!(true))
        }
        "deletewebhook" => {
            inner.webhook = None;
            ok(json!(true))
        }
        "sendmessage" => {
            let (Some(chat), Some(text)) = (params.int("chat_id"), params.str("text")) else {
                return bad_request("chat_id and text are required");
            };
            if text.is_empty() {
                return bad_request("message text is empty");
            }
            let reply_to =
                params.object("reply_parameters").and_then(|r| r["message_id"].as_i64()).map(|m| m as i32);
            let message = bot_message(inner, chat, json!({"text": plain(&text)}));
            record(inner, "sendMessage", chat, &message, text, params, reply_to, None)
        }
        "sendphoto" | "senddocument" => {
            let field = if method == "sendphoto" { "photo" } else { "document" };
            let Some(chat) = params.int("chat_id") else { return bad_request("chat_id is required") };
            // The file is a part of its own, or named by `attach://<part>`, or a file id / URL.
            let attached = params.str(field).and_then(|v| v.strip_prefix("attach://").map(str::to_owned));
            let upload =
                params.files.get(field).or_else(|| attached.as_ref().and_then(|part| params.files.get(part)));
            let file = match (upload, params.str(field)) {
                (Some((name, bytes)), _) => SentFile::Upload { name: name.clone(), bytes: bytes.clone() },
                (None, Some(reference)) if attached.is_none() => SentFile::Reference(reference),
                _ => return bad_request("there is no file in the request"),
            };
            let (name, size) = match &file {
                SentFile::Upload { name, bytes } => (name.clone(), bytes.len()),
                SentFile::Reference(_) => ("file".to_owned(), 0),
            };
            let file_id = format!("AgACAgIAAx{}", inner.files.len() + 1);
            let bytes = match &file {
                SentFile::Upload { bytes, .. } => bytes.clone(),
                SentFile::Reference(_) => Vec::new(),
            };
            inner.files.insert(file_id.clone(), (format!("photos/{name}"), bytes, size as u64));
            let caption = params.str("caption").unwrap_or_default();
            let media = if method == "sendphoto" {
                json!({"photo": [{"file_id": file_id, "file_unique_id": format!("u{file_id}"), "width": 10, "height": 10, "file_size": size}]})
            } else {
                json!({"document": {"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_name": name, "file_size": size}})
            };
            let mut fields = media;
            if !caption.is_empty() {
                fields["caption"] = json!(plain(&caption));
            }
            let reply_to =
                params.object("reply_parameters").and_then(|r| r["message_id"].as_i64()).map(|m| m as i32);
            let message = bot_message(inner, chat, fields);
            let method = if method == "sendphoto" { "sendPhoto" } else { "sendDocument" };
            record(inner, method, chat, &message, caption, params, reply_to, Some(file))
        }
        "editmessagetext" | "editmessagecaption" => {
            let (Some(chat), Some(id)) = (params.int("chat_id"), params.int("message_id")) else {
                return bad_request("chat_id and message_id are required");
            };
            let id = id as i32;
            let field = if method == "editmessagetext" { "text" } else { "caption" };
            let Some(new) = params.str(field) else { return bad_request("the new text is missing") };
            let Some(message) = inner.messages.get(&(chat, id)).cloned() else {
                return bad_request("message to edit not found");
            };
            if message["from"]["id"].as_i64() != Some(BOT_ID) {
                return bad_request("message can't be edited");
            }
            if method == "editmessagetext" && message.get("text").is_none() {
                return bad_request("there is no text in the message to edit");
            }
            if message.get(field).and_then(Value::as_str) == Some(plain(&new).as_str()) {
                return bad_request(
                    "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                );
            }
            let mut edited = message;
            edited[field] = json!(plain(&new));
            edited["edit_date"] = json!(now_secs());
            inner.messages.insert((chat, id), edited.clone());
            inner.edits.push((chat, id, new));
            ok(edited)
        }
        "deletemessage" => {
            let (Some(chat), Some(id)) = (params.int("chat_id"), params.int("message_id")) else {
                return bad_request("chat_id and message_id are required");
            };
            if inner.messages.remove(&(chat, id as i32)).is_none() {
                return bad_request("message to delete not found");
            }
            inner.deleted.push((chat, id as i32));
            ok(json!(true))
        }
        "setmessagereaction" => {
            let (Some(chat), Some(id)) = (params.int("chat_id"), params.int("message_id")) else {
                return bad_request("chat_id and message_id are required");
            };
            if !inner.messages.contains_key(&(chat, id as i32)) {
                return bad_request("message to react not found");
            }
            let emoji: Vec<String> = params
                .object("reaction")
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r["emoji"].as_str().map(str::to_owned))
                .collect();
            if emoji.iter().any(|e| !ALLOWED_REACTIONS.contains(&e.as_str())) {
                return bad_request("REACTION_INVALID");
            }
            inner.reactions.push((chat, id as i32, emoji));
            ok(json!(true))
        }
        "getfile" => {
            let Some(file_id) = params.str("file_id") else { return bad_request("file_id is required") };
            let Some((path, _, size)) = inner.files.get(&file_id) else {
                return bad_request("invalid file_id");
            };
            if *size > MAX_DOWNLOAD {
                return bad_request("file is too big");
            }
            ok(
                json!({"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_size": size, "file_path": path}),
            )
        }
        _ => error(&Failure { code: 404, description: "Not Found".into(), retry_after: None }),
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    inner: &mut Inner,
    method: &str,
    chat: i64,
    message: &Value,
    text: String,
    params: &Params,
    reply_to: Option<i32>,
    file: Option<SentFile>,
) -> Response {
    let message_id = message["message_id"].as_i64().unwrap() as i32;
    inner.sent.push(Sent {
        method: method.to_owned(),
        chat,
        message_id,
        text,
        parse_mode: params.str("parse_mode"),
        reply_to,
        file,
    });
    ok(message.clone())
}

fn bot_message(inner: &mut Inner, chat: i64, mut fields: Value) -> Value {
    let id = next_message_id(inner, chat);
    let object = fields.as_object_mut().unwrap();
    object.insert("message_id".into(), json!(id));
    object.insert("from".into(), bot_json());
    object.insert("chat".into(), chat_json(chat));
    object.insert("date".into(), json!(now_secs()));
    inner.messages.insert((chat, id), fields.clone());
    fields
}

/// The visible text of Telegram HTML (what a client shows).
pub fn plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// `getUpdates`: drops what `offset` confirms, answers what is pending, or waits for an update
/// until `timeout` seconds have passed (the long poll).
async fn get_updates(shared: &Shared, params: &Params) -> Response {
    let offset = params.int("offset");
    let timeout = Duration::from_secs(params.int("timeout").unwrap_or(0).max(0) as u64);
    let limit = params.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let deadline = tokio::time::Instant::now() + timeout;
    shared.inner.lock().unwrap().get_updates_offsets.push(offset);
    loop {
        let notified = shared.update_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut inner = shared.inner.lock().unwrap();
            if inner.webhook.is_some() {
                return error(&Failure {
                    code: 409,
                    description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".into(),
                    retry_after: None,
                });
            }
            if let Some(offset) = offset {
                inner.pending.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
            }
            if !inner.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                let updates: Vec<Value> = inner.pending.iter().take(limit).cloned().collect();
                return ok(Value::Array(updates));
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn file(State(shared): State<Arc<Shared>>, Path((bot, path)): Path<(String, String)>) -> Response {
    if bot != format!("bot{TOKEN}") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let inner = shared.inner.lock().unwrap();
    match inner.files.values().find(|(p, _, _)| *p == path) {
        Some((_, bytes, _)) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
