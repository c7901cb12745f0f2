//! The Bot API methods the connector uses, answered as Telegram answers them.

use serde_json::{Value, json};

use super::wire::{Params, bad_request, error, ok};
use super::{
    ALLOWED_REACTIONS, BOT_ID, BOT_USERNAME, Failure, Inner, MAX_DOWNLOAD, Sent, SentFile, bot_json,
    chat_json, next_message_id, now_secs, set_allowed_updates,
};
use axum::response::Response;

pub(super) fn call(inner: &mut Inner, method: &str, params: &Params) -> Response {
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
            set_allowed_updates(inner, params.object("allowed_updates"));
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
pub(super) fn plain(html: &str) -> String {
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
