//! The guard on every request body: it must arrive in time, and while it is read its bytes
//! come out of two budgets, the connection's and the node's.
//!
//! Each route bounds its own body (`http::body`), but that bounds one request. Twenty
//! connections each holding 15 MB of an unfinished acknowledgement, or one HTTP/2 connection
//! with two hundred unfinished submits, stay within every route's bound and still take
//! hundreds of megabytes before any of them is authenticated or parsed. So every body is
//! wrapped, whatever route reads it (the Matrix and Telegram routes read theirs with their
//! crates' code):
//! - **budgets**: each data frame takes its size from the connection's budget
//!   (`limits.connection_body_bytes`, which only HTTP/2 can reach) and the node's
//!   (`limits.total_body_bytes`), and the bytes stay taken until the request is answered,
//!   since the handler holds them until then. A frame that does not fit ends the body:
//!   waiting for room could wait for ever on the very clients that hold it, so the request is
//!   answered `503` with `Retry-After` instead.
//! - **time**: from the handler's first read, the body must be complete within
//!   `limits.body_timeout_secs` plus one second per `limits.body_min_bytes_per_sec` bytes of
//!   its declared length (or of what arrived, for a chunked body). Else it ends and the
//!   request is answered `408`.
//!
//! The handler sees such a body fail as unreadable; the middleware [`guard`] then replaces
//! whatever the handler answered with the `503` or `408`, on HTTP/1 with `Connection: close`
//! (the rest of the body is never read). A request without a body is not wrapped at all.
//!
//! Any other answer given before its body was read to the end (a `413` for a form too large, a
//! `401` before the body mattered) also says `Connection: close` on HTTP/1: the server drops
//! the connection rather than read the rest, and a client told so does not send its next
//! request on a connection that is closing (it would see it fail with no answer).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::LimitsConfig;
use crate::http::error::{ApiError, INVALID_REQUEST, UNAVAILABLE};
use crate::telemetry::metrics::HTTP_LIMITED;

/// The node-wide half of the guard: the total budget and the timing rule.
#[derive(Clone)]
pub struct BodyGuard {
    total: Arc<Semaphore>,
    timeout: Duration,
    min_bytes_per_sec: u64,
}

impl BodyGuard {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            total: Arc::new(Semaphore::new(permits(limits.total_body_bytes))),
            timeout: Duration::from_secs(limits.body_timeout_secs),
            min_bytes_per_sec: limits.body_min_bytes_per_sec.max(1),
        }
    }
}

/// The body budget of one connection; the connection puts it into each request's extensions.
#[derive(Clone)]
pub struct ConnectionBudget(Arc<Semaphore>);

impl ConnectionBudget {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self(Arc::new(Semaphore::new(permits(limits.connection_body_bytes))))
    }
}

/// A semaphore holds at most `Semaphore::MAX_PERMITS`; validation keeps budgets far below.
fn permits(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
}

/// Why a guarded body ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefused {
    #[error("the node holds as many request bodies as it may; retry shortly")]
    Budget,
    #[error("the request body did not arrive in time")]
    TimedOut,
}

impl BodyRefused {
    fn code(self) -> u8 {
        match self {
            Self::Budget => 1,
            Self::TimedOut => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Budget),
            2 => Some(Self::TimedOut),
            _ => None,
        }
    }
}

/// What one request's body took, shared by the body (which takes) and the middleware (which
/// answers, and releases the bytes when the request is answered).
struct Charge {
    total: Arc<Semaphore>,
    connection: Option<Arc<Semaphore>>,
    held: Mutex<Held>,
    refused: AtomicU8,
    /// Whether the handler read the body to its end.
    read_whole: AtomicBool,
}

/// One permit per budget, grown frame by frame.
#[derive(Default)]
struct Held {
    total: Option<OwnedSemaphorePermit>,
    connection: Option<OwnedSemaphorePermit>,
}

impl Charge {
    fn take(&self, bytes: usize) -> Result<(), BodyRefused> {
        let acquire = |semaphore: &Arc<Semaphore>| {
            u32::try_from(bytes).ok().and_then(|bytes| semaphore.clone().try_acquire_many_owned(bytes).ok())
        };
        let Some(total) = acquire(&self.total) else {
            return Err(self.refuse(BodyRefused::Budget));
        };
        let connection = match &self.connection {
            Some(semaphore) => match acquire(semaphore) {
                Some(permit) => Some(permit),
                None => return Err(self.refuse(BodyRefused::Budget)),
            },
            None => None,
        };
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        grow(&mut held.total, total);
        if let Some(permit) = connection {
            grow(&mut held.connection, permit);
        }
        Ok(())
    }

    fn refuse(&self, why: BodyRefused) -> BodyRefused {
        // The first refusal is the one answered.
        let _ = self.refused.compare_exchange(0, why.code(), Ordering::AcqRel, Ordering::Acquire);
        why
    }

    fn refused(&self) -> Option<BodyRefused> {
        BodyRefused::from_code(self.refused.load(Ordering::Acquire))
    }
}

fn grow(slot: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match slot {
        Some(held) => held.merge(permit),
        None => *slot = Some(permit),
    }
}

/// The middleware: wraps the body, then answers for it if it was refused.
pub async fn guard(State(guard): State<BodyGuard>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let http1 = request.version() <= Version::HTTP_11;
    let (mut parts, body) = request.into_parts();
    let charge = Arc::new(Charge {
        total: guard.total.clone(),
        connection: parts.extensions.remove::<ConnectionBudget>().map(|budget| budget.0),
        held: Mutex::new(Held::default()),
        refused: AtomicU8::new(0),
        read_whole: AtomicBool::new(false),
    });
    let declared = body.size_hint().exact();
    let body = GuardedBody {
        inner: body,
        charge: charge.clone(),
        timeout: guard.timeout,
        min_bytes_per_sec: guard.min_bytes_per_sec,
        declared: declared.unwrap_or(0),
        received: 0,
        started: None,
        timer: None,
    };
    let mut response = next.run(Request::from_parts(parts, Body::new(body))).await;
    match charge.refused() {
        None => {
            if http1 && !charge.read_whole.load(Ordering::Acquire) {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
        Some(why) => refusal(why, http1),
    }
}

/// The answer to a refused body.
fn refusal(why: BodyRefused, http1: bool) -> Response {
    let (status, code, limit) = match why {
        BodyRefused::Budget => (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "body_budget"),
        BodyRefused::TimedOut => (StatusCode::REQUEST_TIMEOUT, INVALID_REQUEST, "body_timeout"),
    };
    metrics::counter!(HTTP_LIMITED, "limit" => limit).increment(1);
    let mut response = ApiError::new(status, code, why.to_string()).into_response();
    let headers = response.headers_mut();
    if why == BodyRefused::Budget {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    // HTTP/2 ends the stream instead, and forbids the header.
    if http1 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that takes from the budgets and keeps time.
struct GuardedBody {
    inner: Body,
    charge: Arc<Charge>,
    timeout: Duration,
    min_bytes_per_sec: u64,
    /// `Content-Length`, when declared.
    declared: u64,
    received: u64,
    /// The handler's first read.
    started: Option<Instant>,
    /// Set at the first read that has to wait: most bodies arrive whole with their head.
    timer: Option<Pin<Box<Sleep>>>,
}

impl GuardedBody {
    fn deadline(&self, started: Instant) -> Instant {
        let expected = self.declared.max(self.received);
        started + self.timeout + Duration::from_secs(expected / self.min_bytes_per_sec)
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(why) = this.charge.refused() {
            return Poll::Ready(Some(Err(why.into())));
        }
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    if let Err(why) = this.charge.take(data.len()) {
                        return Poll::Ready(Some(Err(why.into())));
                    }
                }
                if this.inner.is_end_stream() {
                    this.charge.read_whole.store(true, Ordering::Release);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.charge.read_whole.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline(started);
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(this.charge.refuse(BodyRefused::TimedOut).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
