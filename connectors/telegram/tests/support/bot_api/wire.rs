//! The HTTP side of the fake: the Bot API envelope, parameters from JSON or multipart bodies,
//! failure scripting, the long poll, and the file route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};

use super::methods::call;
use super::{Call, Failure, MAX_UPLOAD, Shared, TOKEN, is_allowed, set_allowed_updates};

pub(super) fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

pub(super) fn error(failure: &Failure) -> Response {
    let mut body = json!({"ok": false, "error_code": failure.code, "description": failure.description});
    if let Some(seconds) = failure.retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    (StatusCode::from_u16(failure.code).unwrap(), Json(body)).into_response()
}

pub(super) fn bad_request(description: &str) -> Response {
    error(&Failure { code: 400, description: format!("Bad Request: {description}"), retry_after: None })
}

/// The parameters of a call: JSON fields, and uploaded files by field name.
pub(super) struct Params {
    pub(super) fields: Map<String, Value>,
    pub(super) files: HashMap<String, (String, Vec<u8>)>,
}

impl Params {
    pub(super) fn str(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub(super) fn int(&self, name: &str) -> Option<i64> {
        match self.fields.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A structured field, sent as JSON text in multipart bodies.
    pub(super) fn object(&self, name: &str) -> Option<Value> {
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

pub(super) async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    let arrived = Instant::now();
    if bot != format!("bot{TOKEN}") {
        return error(&Failure { code: 401, description: "Unauthorized".into(), retry_after: None });
    }
    // Bot API method names are case-insensitive (teloxide sends `SendMessage`).
    let method = method.to_ascii_lowercase();
    let params = match read_params(request).await {
        Ok(params) => params,
        Err(response) => return response,
    };
    let chat = params.int("chat_id");
    let log = |status: u16, retry_after: Option<u32>| {
        let call = Call { method: method.clone(), chat, at: arrived, status, retry_after };
        shared.inner.lock().unwrap().log.push(call);
    };
    if let Some(failure) = scripted_failure(&shared, &method) {
        log(failure.code, failure.retry_after);
        return error(&failure);
    }
    let response = match method.as_str() {
        "getupdates" => get_updates(&shared, &params).await,
        other => {
            let mut inner = shared.inner.lock().unwrap();
            let response = call(&mut inner, other, &params);
            if response.status().is_success() {
                inner.accepted_params.push((other.to_owned(), params.fields.clone()));
            }
            response
        }
    };
    log(response.status().as_u16(), None);
    response
}

/// Counts the call, and answers the failure scripted for it, if any.
fn scripted_failure(shared: &Shared, method: &str) -> Option<Failure> {
    let mut inner = shared.inner.lock().unwrap();
    let count = {
        let count = inner.calls.entry(method.to_owned()).or_insert(0);
        *count += 1;
        *count
    };
    if let Some(position) = inner.fail_next.iter().position(|(m, _)| m == method) {
        return inner.fail_next.remove(position).map(|(_, failure)| failure);
    }
    if let Some((down, after, failure)) = &inner.outage_after
        && down == method
        && count > *after
    {
        return Some(failure.clone());
    }
    if let Some((limited, n, seconds)) = &inner.rate_limit_every
        && limited == method
        && count % n == 0
    {
        return Some(Failure::too_many(*seconds));
    }
    None
}

/// `getUpdates`: drops what `offset` confirms, answers what is pending, or waits for an update
/// until `timeout` seconds have passed (the long poll).
async fn get_updates(shared: &Shared, params: &Params) -> Response {
    let offset = params.int("offset");
    let timeout = Duration::from_secs(params.int("timeout").unwrap_or(0).max(0) as u64);
    let limit = params.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let deadline = tokio::time::Instant::now() + timeout;
    {
        let mut inner = shared.inner.lock().unwrap();
        inner.get_updates_offsets.push(offset);
        set_allowed_updates(&mut inner, params.object("allowed_updates"));
    }
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
                let again = std::mem::take(&mut inner.again);
                inner.pending.retain(|u| {
                    let id = u["update_id"].as_i64().unwrap();
                    id >= offset || again.contains(&(id as u32))
                });
                inner.again = again;
            }
            // Telegram never sends kinds the bot did not ask for (nor keeps them for later).
            let pending = std::mem::take(&mut inner.pending);
            inner.pending = pending.into_iter().filter(|u| is_allowed(&inner, u)).collect();
            if !inner.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                let updates: Vec<Value> = inner.pending.iter().take(limit).cloned().collect();
                // Served again once: the next offset past it confirms it like any other.
                let served: Vec<u32> =
                    updates.iter().map(|u| u["update_id"].as_u64().unwrap() as u32).collect();
                inner.again.retain(|id| !served.contains(id));
                return ok(Value::Array(updates));
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

pub(super) async fn file(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let inner = shared.inner.lock().unwrap();
    match inner.files.values().find(|(p, _, _)| *p == path) {
        Some((_, bytes, _)) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
