//! `[limits]`: what one client, or all of them together, can hold of the node.
//!
//! A client that opens connections and sends nothing, sends its request a byte at a time, or
//! starts large bodies and never finishes them costs the node file descriptors and memory
//! without doing anything the node could refuse by content. These keys bound each of those
//! costs; `docs/relay.md` ("Limits") says what happens at each bound and
//! `crate::server` enforces them. The defaults leave a busy node (hundreds of clients, bodies
//! up to a full acknowledgement of 16 MiB) unthrottled and keep its memory under the budget
//! written there.
//!
//! The section is meant to grow: every limit on what a client can ask of the node goes here,
//! with its unit in the key's name.

use serde::{Deserialize, Serialize};

use super::Problem;

/// `[limits]`: connection, timing and buffering bounds of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections served at once. Beyond it the node stops accepting: new connections wait in
    /// the kernel's listen queue until one closes.
    pub max_connections: u32,
    /// Connections served at once from one IP address; a further one is closed at once. 0: no
    /// per-address cap (behind a reverse proxy every client has the proxy's address).
    pub max_connections_per_ip: u32,
    /// How long a request head may take to arrive, in seconds. On HTTP/1 the wait for the next
    /// request on a kept-alive connection counts too; on HTTP/2 a new connection must open its
    /// first stream within it.
    pub header_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed, in seconds.
    pub idle_timeout_secs: u64,
    /// The time a request body may take beyond what its size needs at
    /// `body_min_bytes_per_sec`, in seconds.
    pub body_timeout_secs: u64,
    /// The slowest a request body may arrive on average, in bytes per second.
    pub body_min_bytes_per_sec: u64,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: u32,
    /// Requests in flight at once on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub http2_max_streams: u32,
    /// How often an HTTP/2 connection is pinged, in seconds; a ping unanswered for as long closes
    /// it. 0: no pings.
    pub http2_ping_secs: u64,
    /// Request body bytes one connection may hold in memory at once (HTTP/2 multiplexes).
    pub connection_body_bytes: u64,
    /// Request body bytes the whole node may hold in memory at once. A request that would go
    /// beyond is answered 503 with Retry-After.
    pub total_body_bytes: u64,
    /// Logged-in live-delivery sockets (`/socket.io/`) at once, all accounts together; a further
    /// handshake is refused. Each also holds its connection (so `max_connections` caps them
    /// too, and they count for `max_connections_per_ip`). 0: no live delivery.
    pub max_live_sockets: u32,
    /// Logged-in live-delivery sockets of one account at once (its devices and tabs).
    pub max_live_sockets_per_account: u32,
}

/// Connections served at once unless configured: well under the usual 1024 open files of a
/// service, which the database and the node's own files share.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS / 2,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            body_min_bytes_per_sec: 64 * 1024,
            max_header_bytes: 64 * 1024,
            http2_max_streams: 64,
            http2_ping_secs: 30,
            connection_body_bytes: 32 * 1024 * 1024,
            total_body_bytes: 64 * 1024 * 1024,
            // Half the connections: sockets held open for hours never take every slot from
            // the requests of the API.
            max_live_sockets: DEFAULT_MAX_CONNECTIONS / 2,
            max_live_sockets_per_account: 8,
        }
    }
}

/// An hour: a longer wait for one request is an attack, not a slow network.
const MAX_TIMEOUT_SECS: u64 = 3_600;
/// hyper keeps a request head in a buffer of at least 8 KiB.
const MIN_HEADER_BYTES: u32 = 8 * 1024;
const MAX_HEADER_BYTES: u32 = 1024 * 1024;
const MAX_CONNECTIONS: u32 = 1_000_000;
const MAX_HTTP2_STREAMS: u32 = 10_000;
/// 16 GiB: more buffered request bodies than any node of this kind should hold.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Every problem of `[limits]`; `largest_body` is the largest request body a route of this
/// configuration accepts, which both body budgets must be able to hold.
pub(super) fn problems(limits: &LimitsConfig, largest_body: u64) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut range = |key: &str, value: u64, (min, max): (u64, u64), unit: &str| {
        if !(min..=max).contains(&value) {
            out.push(Problem {
                key: format!("limits.{key}"),
                message: format!("{value}{unit} is out of range; expected {min} to {max}"),
            });
        }
    };
    let connections = (1, u64::from(MAX_CONNECTIONS));
    let timeout = (1, MAX_TIMEOUT_SECS);
    range("max_connections", limits.max_connections.into(), connections, "");
    range("max_connections_per_ip", limits.max_connections_per_ip.into(), (0, connections.1), "");
    range("header_timeout_secs", limits.header_timeout_secs, timeout, " seconds");
    range("idle_timeout_secs", limits.idle_timeout_secs, timeout, " seconds");
    range("body_timeout_secs", limits.body_timeout_secs, timeout, " seconds");
    range("body_min_bytes_per_sec", limits.body_min_bytes_per_sec, (1, MAX_BODY_BYTES), " bytes/s");
    let header_bytes = (u64::from(MIN_HEADER_BYTES), u64::from(MAX_HEADER_BYTES));
    range("max_header_bytes", limits.max_header_bytes.into(), header_bytes, " bytes");
    range("http2_max_streams", limits.http2_max_streams.into(), (1, u64::from(MAX_HTTP2_STREAMS)), "");
    range("http2_ping_secs", limits.http2_ping_secs, (0, MAX_TIMEOUT_SECS), " seconds");
    range("connection_body_bytes", limits.connection_body_bytes, (1, MAX_BODY_BYTES), " bytes");
    range("total_body_bytes", limits.total_body_bytes, (1, MAX_BODY_BYTES), " bytes");
    range("max_live_sockets", limits.max_live_sockets.into(), (0, connections.1), "");
    range("max_live_sockets_per_account", limits.max_live_sockets_per_account.into(), connections, "");
    // A budget smaller than the largest body would refuse every such body, however idle the
    // node: a configuration mistake, not a limit.
    let mut at_least = |key: &str, value: u64, min: u64, why: &str| {
        if value < min {
            out.push(Problem {
                key: format!("limits.{key}"),
                message: format!("{value} bytes is less than {why} ({min} bytes)"),
            });
        }
    };
    let largest = "the largest request body a route accepts";
    at_least("connection_body_bytes", limits.connection_body_bytes, largest_body, largest);
    at_least("total_body_bytes", limits.total_body_bytes, largest_body, largest);
    at_least(
        "total_body_bytes",
        limits.total_body_bytes,
        limits.connection_body_bytes,
        "limits.connection_body_bytes",
    );
    out
}
