//! Per-client rate limits on the routes that make the node write, fetch or read before anyone
//! is authenticated: `/auth` (and the live-delivery handshake, `/socket.io/`), `POST /profile`,
//! `/rpc`, `/ccip`, `/names/lookup` (docs/security.md).
//!
//! Why here, as one layer over the whole router, and not in each handler: the classes are a
//! property of the public surface (which paths an outsider can make expensive), so they are
//! read in one table ([`RouteClass::of`]), and a refused call costs nothing but this check.
//!
//! - The algorithm is GCRA from `governor` (a token bucket without a timer task): `burst`
//!   calls at once, then one per `60 / per_minute` seconds, per client and per class.
//! - A client is its IP address; an IPv6 client is its /64, because one host commonly holds a
//!   whole /64 and could otherwise take a fresh budget per call. Behind a reverse proxy every
//!   caller is the proxy, unless `rate_limits.trust_forwarded_for` says to read the last
//!   `X-Forwarded-For` entry (which only a proxy that sets it makes trustworthy).
//! - Memory is bounded: the keyed state holds one small entry per client seen recently, and
//!   every [`SWEEP_EVERY`] checks [`ClientRateLimits::forget_idle`] drops the entries whose
//!   budget is full again, so a sweep of many addresses leaves at most that many behind.
//! - A refusal is `429 Too Many Requests` with `Retry-After` (seconds, rounded up) and the
//!   node's JSON-RPC error body, so DM3 clients, which look at the status (docs/protocol.md
//!   §9.1), see a 4xx that a retry later may clear.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{Rate, RateLimitsConfig};
use crate::http::error::{ApiError, UNAVAILABLE};
use crate::telemetry::metrics::RATE_LIMITED;

/// The routes with a budget of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Auth,
    Profile,
    Rpc,
    Ccip,
    NamesLookup,
}

impl RouteClass {
    /// The class of a request, or `None` for routes without a per-client budget (probes,
    /// authenticated routes, reads of stored data).
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        // A live-delivery handshake checks a session token, like the login it follows, and
        // holds a connection: it spends the login's budget (a messenger's login spends three).
        if path.starts_with("/auth/") || path.starts_with("/socket.io/") {
            Some(Self::Auth)
        } else if path.starts_with("/profile/") && method == Method::POST {
            Some(Self::Profile)
        } else if path == "/rpc" {
            Some(Self::Rpc)
        } else if path == "/ccip" || path.starts_with("/ccip/") {
            Some(Self::Ccip)
        } else if path.starts_with("/names/") {
            Some(Self::NamesLookup)
        } else {
            None
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Profile => "profile",
            Self::Rpc => "rpc",
            Self::Ccip => "ccip",
            Self::NamesLookup => "names_lookup",
        }
    }
}

/// How many checks pass between two sweeps of idle clients.
pub const SWEEP_EVERY: u64 = 4_096;

/// The key a client is counted under: an IPv4 address, or an IPv6 /64.
type ClientKey = IpAddr;

/// Who one client is, for every per-client bound of the node (these budgets and the server's
/// per-address connection cap): an IPv4 address (an IPv4-mapped IPv6 one counts as IPv4), or
/// an IPv6 /64, since one host commonly holds a whole /64.
pub(crate) fn client_key(ip: IpAddr) -> ClientKey {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// One limiter per class; `None` where the class is unlimited.
pub struct ClientRateLimits {
    auth: Option<DefaultKeyedRateLimiter<ClientKey>>,
    profile: Option<DefaultKeyedRateLimiter<ClientKey>>,
    rpc: Option<DefaultKeyedRateLimiter<ClientKey>>,
    ccip: Option<DefaultKeyedRateLimiter<ClientKey>>,
    names_lookup: Option<DefaultKeyedRateLimiter<ClientKey>>,
    trust_forwarded_for: bool,
    checks: AtomicU64,
}

fn limiter(rate: Rate) -> Option<DefaultKeyedRateLimiter<ClientKey>> {
    let per_minute = NonZeroU32::new(rate.per_minute)?;
    // Validation refuses a zero burst beside a rate; if one slips through, allow one call.
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)))
}

impl ClientRateLimits {
    pub fn new(config: &RateLimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            auth: limiter(config.auth()),
            profile: limiter(config.profile()),
            rpc: limiter(config.rpc()),
            ccip: limiter(config.ccip()),
            names_lookup: limiter(config.names_lookup()),
            trust_forwarded_for: config.trust_forwarded_for,
            checks: AtomicU64::new(0),
        })
    }

    fn of(&self, class: RouteClass) -> Option<&DefaultKeyedRateLimiter<ClientKey>> {
        match class {
            RouteClass::Auth => self.auth.as_ref(),
            RouteClass::Profile => self.profile.as_ref(),
            RouteClass::Rpc => self.rpc.as_ref(),
            RouteClass::Ccip => self.ccip.as_ref(),
            RouteClass::NamesLookup => self.names_lookup.as_ref(),
        }
    }

    /// `Ok` if `client` may make a call of `class` now, else how long until it may.
    pub fn check(&self, class: RouteClass, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = self.of(class) else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.forget_idle();
        }
        limiter
            .check_key(&client_key(client))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the state of clients whose budget is full again (they are indistinguishable from
    /// clients never seen), so memory follows the clients active now, not all ever seen.
    pub fn forget_idle(&self) {
        for limiter in self.limiters() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Clients with state, over all classes (for tests and the metrics).
    pub fn tracked_clients(&self) -> usize {
        self.limiters().map(|l| l.len()).sum()
    }

    fn limiters(&self) -> impl Iterator<Item = &DefaultKeyedRateLimiter<ClientKey>> {
        [&self.auth, &self.profile, &self.rpc, &self.ccip, &self.names_lookup].into_iter().flatten()
    }

    /// The address a request is counted under.
    fn client_of(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip())
    }
}

/// The middleware in front of the whole router.
pub async fn enforce(State(limits): State<Arc<ClientRateLimits>>, request: Request, next: Next) -> Response {
    let Some(class) = RouteClass::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    // A request without a peer address (an in-process call) has no client to count.
    let Some(client) = limits.client_of(&request) else {
        return next.run(request).await;
    };
    match limits.check(class, client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!(RATE_LIMITED, "route" => class.label()).increment(1);
            too_many_requests(wait)
        }
    }
}

fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        UNAVAILABLE,
        format!("too many requests from this address; retry in {seconds} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_are_classed_by_what_they_cost() {
        let cases = [
            (Method::GET, "/auth/alice.eth", Some(RouteClass::Auth)),
            (Method::POST, "/auth/alice.eth", Some(RouteClass::Auth)),
            (Method::GET, "/socket.io/", Some(RouteClass::Auth)),
            (Method::POST, "/profile/alice.eth", Some(RouteClass::Profile)),
            (Method::GET, "/profile/alice.eth", None),
            (Method::POST, "/rpc", Some(RouteClass::Rpc)),
            (Method::GET, "/ccip/0xab/0xcd.json", Some(RouteClass::Ccip)),
            (Method::POST, "/ccip", Some(RouteClass::Ccip)),
            (Method::GET, "/names/lookup", Some(RouteClass::NamesLookup)),
            (Method::POST, "/names/lookup", Some(RouteClass::NamesLookup)),
            (Method::GET, "/names", None),
            (Method::GET, "/health", None),
            (Method::GET, "/delivery/messages/incoming/alice.eth", None),
            (Method::GET, "/rpcx", None),
        ];
        for (method, path, class) in cases {
            assert_eq!(RouteClass::of(&method, path), class, "{method} {path}");
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_not_affected() {
        let config = RateLimitsConfig { auth_per_minute: 60, auth_burst: 3, ..RateLimitsConfig::default() };
        let limits = ClientRateLimits::new(&config);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limits.check(RouteClass::Auth, a).is_ok());
        }
        let wait = limits.check(RouteClass::Auth, a).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.check(RouteClass::Auth, b).is_ok(), "another client has its own budget");
        assert!(limits.check(RouteClass::Rpc, a).is_ok(), "another class has its own budget");
    }

    #[test]
    fn an_ipv6_host_is_one_client_per_64_and_a_zero_rate_is_unlimited() {
        let config = RateLimitsConfig {
            profile_per_minute: 1,
            profile_burst: 1,
            rpc_per_minute: 0,
            ..RateLimitsConfig::default()
        };
        let limits = ClientRateLimits::new(&config);
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.check(RouteClass::Profile, first).is_ok());
        assert!(limits.check(RouteClass::Profile, same_64).is_err());
        assert!(limits.check(RouteClass::Profile, other_64).is_ok());
        for _ in 0..10_000 {
            assert!(limits.check(RouteClass::Rpc, first).is_ok());
        }
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let config =
            RateLimitsConfig { ccip_per_minute: 60_000, ccip_burst: 1, ..RateLimitsConfig::default() };
        let limits = ClientRateLimits::new(&config);
        for i in 0..1_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limits.check(RouteClass::Ccip, ip).is_ok());
        }
        assert_eq!(limits.tracked_clients(), 1_000);
        // One call a millisecond: after a few, every budget is full again.
        std::thread::sleep(Duration::from_millis(20));
        limits.forget_idle();
        assert_eq!(limits.tracked_clients(), 0);
    }
}
