//! Serving one connection: HTTP/1 or HTTP/2 with the protocol bounds of `[limits]`, and a
//! watchdog that closes the connection once no request has been in flight for too long.
//!
//! hyper-util's auto builder tells the protocols apart by the client's first bytes. What each
//! bound does on each protocol:
//!
//! | bound | HTTP/1 | HTTP/2 |
//! | --- | --- | --- |
//! | `header_timeout_secs` | hyper's head timer, which also runs while a kept-alive connection waits for its next request | the first stream must open within it (watchdog) |
//! | `idle_timeout_secs` | watchdog (the head timer usually closes first) | watchdog: GOAWAY |
//! | `max_header_bytes` | hyper's read buffer, so the largest head | `SETTINGS_MAX_HEADER_LIST_SIZE` |
//! | `http2_max_streams` | (one request at a time) | `SETTINGS_MAX_CONCURRENT_STREAMS` |
//! | `http2_ping_secs` | | keep-alive pings; an unanswered one closes |
//!
//! The watchdog counts requests in flight: from the handler's start to its answer. A
//! connection with none for the idle time (for the header time until its first request) is
//! asked to close gracefully (HTTP/2: GOAWAY, streams in progress finish), and dropped if it
//! has not closed one header time later, so a client that neither talks nor reads cannot keep
//! it. Each request also gets the connection's body budget, the peer's address
//! (`ConnectInfo`) and the connection's places under the caps (`HeldConnection`) in its
//! extensions.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body_guard::ConnectionBudget;
use super::held::HeldConnection;
use crate::config::LimitsConfig;
use crate::telemetry::metrics::HTTP_LIMITED;

/// What every connection of one server shares.
pub(super) struct Shared {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    limits: LimitsConfig,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    pub(super) fn new(router: Router, limits: &LimitsConfig) -> Self {
        let header_timeout = Duration::from_secs(limits.header_timeout_secs);
        let ping = (limits.http2_ping_secs > 0).then(|| Duration::from_secs(limits.http2_ping_secs));
        let header_bytes = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(header_bytes);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_streams)
            .max_header_list_size(limits.max_header_bytes)
            .keep_alive_interval(ping)
            .keep_alive_timeout(ping.unwrap_or(header_timeout));
        Self {
            builder,
            router,
            limits: limits.clone(),
            header_timeout,
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
        }
    }
}

/// Serves `stream` until it closes, the watchdog closes it, or `shutdown` has it finish its
/// requests in flight.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: CancellationToken,
    held: HeldConnection,
) {
    let activity = Arc::new(Activity::new());
    let service = ConnectionService {
        router: TowerToHyperService::new(shared.router.clone()),
        peer,
        budget: ConnectionBudget::new(&shared.limits),
        activity: activity.clone(),
        held,
    };
    // With upgrades: live delivery's websockets (`crate::live`) start as an HTTP/1 upgrade.
    // The upgraded socket leaves this function (the connection future ends once hyper hands it
    // over) but keeps the connection's places (`HeldConnection`).
    let connection = shared.builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    // Once it was asked to close for being idle: when it is dropped if it has not closed.
    let mut drop_at: Option<Instant> = None;
    loop {
        let idle_limit = match activity.served() {
            true => shared.idle_timeout,
            false => shared.idle_timeout.min(shared.header_timeout),
        };
        let wake = drop_at.unwrap_or_else(|| activity.idle_since().unwrap_or_else(Instant::now) + idle_limit);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = tokio::time::sleep_until(wake) => {
                if drop_at.is_some() {
                    tracing::debug!(%peer, "idle connection did not close; dropping it");
                    return;
                }
                if activity.idle_since().is_some_and(|since| since + idle_limit <= Instant::now()) {
                    metrics::counter!(HTTP_LIMITED, "limit" => "idle").increment(1);
                    if !draining {
                        connection.as_mut().graceful_shutdown();
                        draining = true;
                    }
                    drop_at = Some(Instant::now() + shared.header_timeout);
                }
            }
        }
    }
}

/// The requests in flight on one connection, and when the last one ended.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request.
    last_done_ms: AtomicU64,
    served: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            served: AtomicBool::new(false),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Whether a request has started on this connection.
    fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    /// Since when nothing is in flight; `None` while something is.
    fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::SeqCst) == 0)
            .then(|| self.opened + Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst)))
    }
}

/// One request in flight; its drop is the request's end.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Before the count drops, so that a watchdog that sees none in flight sees this end.
        self.0.last_done_ms.fetch_max(elapsed, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The router, as hyper calls it on this connection.
#[derive(Clone)]
struct ConnectionService {
    router: TowerToHyperService<Router>,
    peer: SocketAddr,
    budget: ConnectionBudget,
    activity: Arc<Activity>,
    held: HeldConnection,
}

impl Service<Request<Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        extensions.insert(self.budget.clone());
        extensions.insert(self.held.clone());
        let in_flight = self.activity.begin();
        let answer = self.router.call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(in_flight);
            response
        })
    }
}
