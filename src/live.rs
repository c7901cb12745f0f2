//! Live delivery: envelopes pushed to logged-in DM3 clients over Socket.IO, as the reference
//! delivery service does (docs/protocol.md P19, §9.3; docs/relay.md, "Live delivery").
//!
//! The stock messenger connects to `/socket.io/` with the websocket transport and
//! `auth = {account: {ensName}, token}` right after its login, and listens for `message`, whose
//! argument is the stored envelope (P9: `deliveryInformation` in clear, the postmark as a
//! string). This module serves exactly that, with socketioxide (Socket.IO v4 over
//! engine.io 4) mounted on the node's router, so the accept loop's connection caps and the
//! per-client rate limits apply to the handshake like to any request:
//! - [`handshake`]: the session check of the CONNECT packet; a refusal is the `connect_error`
//!   the client sees, as with the reference. An admitted socket gets `authorized` and joins the
//!   room of its account, the only room anything is emitted to;
//! - [`seats`]: sockets in all and per account (`[limits]`), and until when each may receive.
//!
//! The relay tells this module of each envelope once it is committed ([`LiveSink`], plugged
//! in at start-up), so nothing is shown that a crash could still lose and a duplicate is never
//! pushed again. A session's end is kept with its socket: a push checks it, and a timer closes
//! the socket when it comes, so nothing reaches a client after its token expired. Polling stays
//! the source of truth: a socket that is refused, closed or too slow to read loses nothing that
//! `GET /delivery/messages/incoming` still has.
//!
//! Bounds, beyond the seats: only the websocket transport (no polling sessions held between
//! requests), at most [`MAX_INCOMING_BYTES`] per message from a client (it has nothing to send
//! but its handshake), [`OUTGOING_PACKETS`] packets queued per socket (a socket that falls
//! further behind is closed), a client that does not join within `limits.header_timeout_secs`
//! closed, and a peer that misses a ping (every 25 s, 20 s to answer, the reference's
//! defaults) closed.

mod handshake;
mod seats;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use dm3::ens::EnsName;
use serde_json::Value;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, TransportType};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::LimitsConfig;
use crate::protocol::{DeliveryProtocol, LiveSink};
use crate::telemetry::metrics::{LIVE_HANDSHAKES, LIVE_PUSHES};
use handshake::{Handshake, Refusal, admit};
use seats::{Seat, Seats};

/// Where the reference serves Socket.IO, and where the messenger connects (its default path).
pub const PATH: &str = "/socket.io/";
/// The event that carries a stored envelope to its receiver.
pub const MESSAGE: &str = "message";
/// The event an admitted socket gets first, as from the reference.
pub const AUTHORIZED: &str = "authorized";

/// The largest message a client may send: its CONNECT packet with the handshake (a name and
/// a 43-character token) is the only one the node reads.
pub const MAX_INCOMING_BYTES: usize = 8 * 1024;
/// Packets queued for one socket at most. A client that reads keeps this near zero; a burst of
/// submits for one account (a group commit) fits; a client that does not read is closed here
/// rather than holding `OUTGOING_PACKETS × relay.size_limit` bytes for longer.
pub const OUTGOING_PACKETS: usize = 64;
/// The reference's (socket.io's) heartbeat: a ping every 25 s, 20 s to answer it.
const PING_INTERVAL: Duration = Duration::from_secs(25);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The Socket.IO server and its seats; the relay's [`LiveSink`].
pub struct LiveDelivery {
    io: SocketIo,
    seats: Arc<Seats>,
}

impl LiveDelivery {
    /// Live delivery over `protocol`'s sessions within `limits`, and the routes to mount; `None`
    /// when `limits.max_live_sockets` is 0. Every socket is closed when `stop` is cancelled.
    pub fn start(
        protocol: Arc<dyn DeliveryProtocol>,
        limits: &LimitsConfig,
        stop: CancellationToken,
    ) -> Option<(Arc<Self>, Router)> {
        if limits.max_live_sockets == 0 {
            return None;
        }
        let seats = Seats::new(limits.max_live_sockets, limits.max_live_sockets_per_account);
        let (service, io) = SocketIo::builder()
            .transports([TransportType::Websocket])
            .ping_interval(PING_INTERVAL)
            .ping_timeout(PING_TIMEOUT)
            .connect_timeout(Duration::from_secs(limits.header_timeout_secs))
            .max_payload(u64::try_from(MAX_INCOMING_BYTES).unwrap_or(u64::MAX))
            .ws_max_message_size(MAX_INCOMING_BYTES)
            .ws_max_frame_size(MAX_INCOMING_BYTES)
            .max_buffer_size(OUTGOING_PACKETS)
            .build_svc();
        let check = {
            let seats = seats.clone();
            move |socket: SocketRef, TryData(auth): TryData<Handshake>| {
                let (protocol, seats) = (protocol.clone(), seats.clone());
                async move { check_handshake(protocol.as_ref(), &seats, &socket, auth.ok()).await }
            }
        };
        let joined = {
            let io = io.clone();
            move |socket: SocketRef| {
                let io = io.clone();
                async move { on_joined(&io, socket) }
            }
        };
        io.ns("/", joined.with(check));
        let live = Arc::new(Self { io, seats });
        let closing = live.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            closing.io.close().await;
        });
        Some((live, Router::new().route_service(PATH, service)))
    }
}

/// The CONNECT middleware: a seat for a valid session, kept in the socket's extensions (so it
/// is given back with the socket), or the refusal the client gets as `connect_error`.
async fn check_handshake(
    protocol: &dyn DeliveryProtocol,
    seats: &Arc<Seats>,
    socket: &SocketRef,
    auth: Option<Handshake>,
) -> Result<(), Refusal> {
    match admit(protocol, seats, auth).await {
        Ok(seat) => {
            socket.extensions.insert(Arc::new(seat));
            metrics::counter!(LIVE_HANDSHAKES, "outcome" => "authorized").increment(1);
            Ok(())
        }
        Err(refusal) => {
            metrics::counter!(LIVE_HANDSHAKES, "outcome" => refusal.label()).increment(1);
            tracing::debug!(reason = refusal.label(), "live-delivery handshake refused");
            Err(refusal)
        }
    }
}

/// An admitted socket: `authorized`, the account's room, and the timer of its session's end.
fn on_joined(io: &SocketIo, socket: SocketRef) {
    let Some(seat) = socket.extensions.get::<Arc<Seat>>() else {
        // The middleware admits only with a seat; without one the socket cannot be pushed to.
        let _ = socket.disconnect();
        return;
    };
    socket.join(room(&seat.name));
    // No argument, as the reference emits it: an empty array is an empty argument list.
    let _ = socket.emit(AUTHORIZED, &[0u8; 0]);
    // Given back at once, not when the last handle on the socket goes.
    socket.on_disconnect(async |socket: SocketRef| {
        socket.extensions.remove::<Arc<Seat>>();
    });
    // The timer holds the socket's id, not the socket, so an early close frees everything; the
    // seat's drop cancels it.
    let (io, sid, ended) = (io.clone(), socket.id, seat.ended.clone());
    let left = Duration::from_millis(u64::try_from(seat.expires_at_ms.saturating_sub(now_ms())).unwrap_or(0));
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(left) => {
                if let Some(socket) = io.of("/").and_then(|ns| ns.get_socket(sid)) {
                    let _ = socket.disconnect();
                }
            }
            () = ended.cancelled() => {}
        }
    });
}

/// The room of an account's sockets: its normalized name.
fn room(name: &EnsName) -> String {
    name.to_string()
}

impl LiveSink for LiveDelivery {
    fn listening(&self, receiver: &EnsName) -> bool {
        self.seats.listening(receiver)
    }

    fn stored(&self, receiver: &EnsName, envelope: &str) {
        let Some(sockets) = self.io.of("/").map(|ns| ns.to(room(receiver)).sockets()) else { return };
        if sockets.is_empty() {
            return;
        }
        let payload: Value = match serde_json::from_str(envelope) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "a stored envelope is not JSON; not pushed");
                return;
            }
        };
        for socket in sockets {
            let open = socket.extensions.get::<Arc<Seat>>().is_some_and(|seat| seat.open());
            let outcome = if !open {
                // The session ended before its timer closed the socket: nothing more for it.
                let _ = socket.disconnect();
                "expired"
            } else if socket.emit(MESSAGE, &payload).is_err() {
                // Its queue is full (it does not read) or it is closing; it fetches by polling.
                let _ = socket.disconnect();
                "dropped"
            } else {
                "sent"
            };
            metrics::counter!(LIVE_PUSHES, "outcome" => outcome).increment(1);
        }
    }
}
