//! The bridge's two far ends, answering at once, for the bridge_load bench.
//!
//! - [`Homeserver`]: the Matrix client-server calls the bridge makes as an application service
//!   (ping, register, display name, createRoom, join, send, receipts, the media config, a
//!   room's state once its invitees joined, and that no room is encrypted), each
//!   answered with the smallest body its ruma response type accepts. A `send` of a text with a
//!   bench marker (`bench#<i>#`), or of a gateway envelope whose hash the bench registered, is
//!   recorded with the time it arrived; a `createRoom` records
//!   which ghost created which room, so the Matrix → DM3 phase can write into the portals.
//! - [`DeliveryServices`]: `POST /ds/<n>/rpc`, the delivery service of DM3 user `n`; each
//!   `dm3_submitMessage` is recorded with its arrival time and answered `200`. The bridge keeps
//!   the order of a conversation, so the k-th envelope at `/ds/<n>` is the k-th message sent to
//!   user `n`.
//!
//! Why not a real homeserver or delivery service here: this mode times the bridge alone. Their
//! own cost is measured elsewhere (Synapse mode of the same bench; `relay_load` for a relay).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};

/// What the loopback homeserver saw.
#[derive(Default)]
pub struct HomeserverLog {
    /// Message index (from the body's `bench#<i>#`) → arrival.
    pub sends: Arc<Mutex<HashMap<u64, Instant>>>,
    /// Room id → the ghost that created it.
    pub rooms: Mutex<Vec<(String, String)>>,
    /// A sealed envelope's `messageHash` → its message index: how a carried gateway envelope
    /// (`network.dm3.envelope`, no readable text) is recorded in `sends`.
    pub gateway_hashes: Mutex<HashMap<String, u64>>,
    /// Room id → the users its creator invited.
    invited: Mutex<HashMap<String, Vec<String>>>,
    next_id: Mutex<u64>,
}

impl HomeserverLog {
    fn next(&self) -> u64 {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        *next
    }
}

/// The loopback homeserver; `url` is its client-server base URL.
pub struct Homeserver {
    pub url: String,
    pub log: Arc<HomeserverLog>,
}

/// The message index a bench text carries, if any.
pub fn marker(text: &str) -> Option<u64> {
    let rest = &text[text.find("bench#")? + "bench#".len()..];
    rest[..rest.find('#')?].parse().ok()
}

impl Homeserver {
    pub async fn start(server_name: &str) -> Homeserver {
        let log = Arc::new(HomeserverLog::default());
        let server_name = Arc::new(server_name.to_owned());
        let app = Router::new().fallback({
            let (log, server_name) = (log.clone(), server_name.clone());
            move |method: Method, uri: Uri, query: RawQuery, body: Bytes| {
                let (log, server_name) = (log.clone(), server_name.clone());
                async move {
                    // No room of the bench is encrypted: the bridge asks before every send in
                    // the clear (the Matrix connector's `cleartext`), and Synapse answers so.
                    if uri.path().contains("/state/m.room.encryption") {
                        let absent = json!({"errcode": "M_NOT_FOUND", "error": "Event not found."});
                        return (StatusCode::NOT_FOUND, axum::Json(absent));
                    }
                    (StatusCode::OK, axum::Json(answer(&log, &server_name, &method, &uri, query.0, &body)))
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Homeserver { url, log }
    }
}

fn answer(
    log: &HomeserverLog,
    server_name: &str,
    method: &Method,
    uri: &Uri,
    query: Option<String>,
    body: &[u8],
) -> Value {
    let path = uri.path();
    let as_user = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("user_id="))
            .map(|u| u.replace("%40", "@").replace("%3A", ":"))
    });
    if *method == Method::PUT && path.contains("/send/") {
        let received = Instant::now();
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let index = match body["msgtype"].as_str() {
            Some("network.dm3.envelope") => gateway_index(log, &body),
            _ => body["body"].as_str().and_then(marker),
        };
        if let Some(index) = index {
            log.sends.lock().unwrap().insert(index, received);
        }
        return json!({"event_id": format!("$loop{}:{server_name}", log.next())});
    }
    if path.ends_with("/createRoom") {
        let room = format!("!room{}:{server_name}", log.next());
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let invited = body["invite"].as_array().into_iter().flatten().filter_map(Value::as_str);
        log.invited.lock().unwrap().insert(room.clone(), invited.map(str::to_owned).collect());
        log.rooms.lock().unwrap().push((room.clone(), as_user.unwrap_or_default()));
        return json!({"room_id": room});
    }
    if *method == Method::GET && path.ends_with("/state") {
        return room_state(log, &room_in(path));
    }
    if path.ends_with("/register") {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let localpart = body["username"].as_str().unwrap_or("ghost");
        return json!({"user_id": format!("@{localpart}:{server_name}")});
    }
    if path.contains("/join") {
        return json!({"room_id": room_in(path)});
    }
    if path.contains("/appservice/") && path.ends_with("/ping") {
        return json!({"duration_ms": 0});
    }
    if path.ends_with("/media/config") {
        return json!({"m.upload.size": 50_000_000});
    }
    json!({})
}

/// The index of the gateway envelope a `network.dm3.envelope` content carries, by its hash.
fn gateway_index(log: &HomeserverLog, content: &Value) -> Option<u64> {
    let envelope: Value = serde_json::from_str(content["network.dm3.envelope"]["envelope"].as_str()?).ok()?;
    let hash = envelope["metadata"]["messageHash"].as_str()?;
    log.gateway_hashes.lock().unwrap().get(hash).copied()
}

/// The room of `…/rooms/<room>/<what>`.
fn room_in(path: &str) -> String {
    path.split('/').rev().nth(1).unwrap_or_default().replace("%21", "!").replace("%3A", ":")
}

/// A portal's state once its invitees joined: the direct chat of the ghost and its user that the
/// bridge checks before it takes a membership change (`room_state`).
fn room_state(log: &HomeserverLog, room: &str) -> Value {
    let creator = log.rooms.lock().unwrap().iter().find(|(id, _)| id == room).map(|(_, ghost)| ghost.clone());
    let Some(creator) = creator else { return json!([]) };
    let invited = log.invited.lock().unwrap().get(room).cloned().unwrap_or_default();
    let state = |kind: &str, key: &str, content: Value| {
        json!({"type": kind, "state_key": key, "sender": creator, "room_id": room,
               "event_id": format!("${kind}{key}"), "origin_server_ts": 0, "content": content})
    };
    let mut events = vec![
        state("m.room.create", "", json!({"creator": creator, "room_version": "10"})),
        state("m.room.join_rules", "", json!({"join_rule": "invite"})),
        state("m.room.history_visibility", "", json!({"history_visibility": "shared"})),
        state("m.room.member", &creator, json!({"membership": "join"})),
    ];
    events.extend(invited.iter().map(|user| state("m.room.member", user, json!({"membership": "join"}))));
    Value::Array(events)
}

/// What the loopback delivery services saw: per DM3 user, the arrival of each envelope, in order.
#[derive(Default)]
pub struct DeliveryLog {
    pub arrivals: Mutex<HashMap<usize, Vec<Instant>>>,
}

/// The delivery services of DM3 users `0..`; user `n`'s URL is [`DeliveryServices::url`]`(n)`.
pub struct DeliveryServices {
    base: String,
    pub log: Arc<DeliveryLog>,
}

impl DeliveryServices {
    pub async fn start() -> DeliveryServices {
        let log = Arc::new(DeliveryLog::default());
        let app = Router::new().route("/ds/{user}/rpc", post(submit)).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        DeliveryServices { base, log }
    }

    pub fn url(&self, user: usize) -> String {
        format!("{}/ds/{user}", self.base)
    }
}

async fn submit(
    State(log): State<Arc<DeliveryLog>>,
    Path(user): Path<usize>,
    body: Bytes,
) -> axum::Json<Value> {
    let received = Instant::now();
    // Only what a delivery service must see to take it: a dm3_submitMessage call (looked for,
    // not parsed: the bench shares the node's two cores).
    assert!(
        body.windows(17).any(|w| w == b"dm3_submitMessage"),
        "the bridge posted something else: {}",
        String::from_utf8_lossy(&body)
    );
    log.arrivals.lock().unwrap().entry(user).or_default().push(received);
    axum::Json(json!({"jsonrpc": "2.0", "result": "success"}))
}
