//! Bounded HTTP fetches of things names point at: profile links (`https://…?dm3Hash=…`,
//! docs/protocol.md §4.3), CCIP-read gateways (EIP-3668, §12) and the chain's JSON-RPC node.
//!
//! Every URL here but the JSON-RPC one comes from whoever owns a name, i.e. from anyone, so
//! one [`HttpFetcher`] applies every bound in one place:
//! - `http`/`https` only;
//! - no loopback, private, link-local or unique-local address unless the operator allows it
//!   ([`super::address_guard`] does the checking, also across redirects);
//! - one deadline from connecting to the last byte of the body;
//! - a body size cap, enforced while streaming, so a huge or endless body is cut off at the
//!   cap instead of being buffered.
//!
//! The system proxy settings are ignored (`no_proxy`): a proxy would connect on our behalf to
//! addresses the guard never sees.

use std::time::Duration;

use dm3_bridge_connector::BoxFuture;
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, RequestBuilder, Response, Url};
use serde_json::Value;

use super::address_guard::{self, AddressRefused, GuardedResolver};
use super::directory::LinkFetcher;

use super::ResolveError;

/// Redirects followed before giving up; browsers allow 20, nothing we fetch needs more than a few.
const MAX_REDIRECTS: usize = 5;

/// The bounds of every fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// From connecting to the last byte of the body.
    pub timeout: Duration,
    /// The largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Allow internal addresses (tests; a JSON-RPC node on the same host).
    pub allow_private_addresses: bool,
}

/// Why a fetch failed, without the URL (which may carry an API key, for a JSON-RPC node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    #[error("not an absolute http(s) URL")]
    BadUrl,
    #[error(transparent)]
    Refused(AddressRefused),
    #[error("no complete answer within {ms} ms")]
    Timeout { ms: u128 },
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the answer is not JSON")]
    NotJson,
    #[error("unreachable: {0}")]
    Transport(String),
}

impl FetchFailure {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport(_) => true,
            Self::Status(status) => *status == 429 || *status >= 500,
            Self::BadUrl | Self::Refused(_) | Self::TooLarge { .. } | Self::NotJson => false,
        }
    }
}

/// A failed fetch of `url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetching {url}: {failure}")]
pub struct FetchError {
    pub url: String,
    pub failure: FetchFailure,
}

impl From<FetchError> for ResolveError {
    fn from(e: FetchError) -> Self {
        if e.failure.is_transient() {
            ResolveError::Unavailable(e.to_string())
        } else {
            ResolveError::Invalid { name: e.url, reason: e.failure.to_string() }
        }
    }
}

/// The HTTP client could not be set up (no usable TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// A response that arrived within the bounds; any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An HTTP client that applies [`FetchLimits`] to every request.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: Client,
    limits: FetchLimits,
}

impl HttpFetcher {
    pub fn new(limits: FetchLimits) -> Result<Self, ClientBuildError> {
        let allow_private = limits.allow_private_addresses;
        let client = Client::builder()
            .user_agent(concat!("dm3-bridge/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(GuardedResolver { allow_private }))
            .redirect(Policy::custom(move |attempt| follow_redirect(attempt, allow_private)))
            // The whole exchange is bounded in `send`; this only stops a hung connect early.
            .connect_timeout(limits.timeout)
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(Self { client, limits })
    }

    pub fn limits(&self) -> &FetchLimits {
        &self.limits
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<HttpResponse, FetchError> {
        self.send(url, |client, url| client.get(url)).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(&self, url: &str, body: String) -> Result<HttpResponse, FetchError> {
        self.send(url, |client, url| {
            client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body)
        })
        .await
    }

    /// `GET url`, which must answer 2xx with a JSON body.
    pub async fn get_json(&self, url: &str) -> Result<Value, FetchError> {
        let response = self.get(url).await?;
        let fail = |failure| FetchError { url: url.to_owned(), failure };
        if !response.is_success() {
            return Err(fail(FetchFailure::Status(response.status)));
        }
        serde_json::from_slice(&response.body).map_err(|_| fail(FetchFailure::NotJson))
    }

    async fn send(
        &self,
        url: &str,
        request: impl FnOnce(&Client, Url) -> RequestBuilder,
    ) -> Result<HttpResponse, FetchError> {
        let fail = |failure| FetchError { url: url.to_owned(), failure };
        let parsed = check_url(url, self.limits.allow_private_addresses).map_err(fail)?;
        let builder = request(&self.client, parsed).header(reqwest::header::ACCEPT, "application/json");
        let timeout = FetchFailure::Timeout { ms: self.limits.timeout.as_millis() };
        let exchange = async {
            let response = builder.send().await.map_err(|e| transport_failure(e, &timeout))?;
            let status = response.status().as_u16();
            let body = read_capped(response, self.limits.max_bytes, &timeout).await?;
            Ok(HttpResponse { status, body })
        };
        // One deadline from connecting to the last byte of the body.
        match tokio::time::timeout(self.limits.timeout, exchange).await {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(fail(timeout.clone())),
        }
    }
}

impl LinkFetcher for HttpFetcher {
    fn fetch_json<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Value, ResolveError>> {
        Box::pin(async move { Ok(self.get_json(url).await?) })
    }
}

/// The scheme, and the address when the host is an IP literal (names go through the resolver).
fn check_url(url: &str, allow_private: bool) -> Result<Url, FetchFailure> {
    let parsed = Url::parse(url).map_err(|_| FetchFailure::BadUrl)?;
    check_target(&parsed, allow_private)?;
    Ok(parsed)
}

fn check_target(url: &Url, allow_private: bool) -> Result<(), FetchFailure> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchFailure::BadUrl);
    }
    let ip = match url.host() {
        None => return Err(FetchFailure::BadUrl),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => v4.into(),
        Some(url::Host::Ipv6(v6)) => v6.into(),
    };
    let host = url.host_str().unwrap_or_default();
    address_guard::check(host, ip, allow_private).map_err(FetchFailure::Refused)
}

fn follow_redirect(attempt: Attempt<'_>, allow_private: bool) -> reqwest::redirect::Action {
    if attempt.previous().len() >= MAX_REDIRECTS {
        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
    }
    match check_target(attempt.url(), allow_private) {
        Ok(()) => attempt.follow(),
        Err(FetchFailure::Refused(refused)) => attempt.error(refused),
        Err(other) => attempt.error(format!("redirect to an unusable URL: {other}")),
    }
}

/// Reads the body, stopping as soon as it exceeds `max` bytes.
async fn read_capped(
    mut response: Response,
    max: usize,
    timeout: &FetchFailure,
) -> Result<Vec<u8>, FetchFailure> {
    let too_large = FetchFailure::TooLarge { limit: max };
    if response.content_length().is_some_and(|len| len > max as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_failure(e, timeout))? {
        if body.len() + chunk.len() > max {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error as a failure: the guard's refusal or a timeout if that is what it was, else
/// its causes (without the URL, which the caller adds or withholds).
fn transport_failure(error: reqwest::Error, timeout: &FetchFailure) -> FetchFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return FetchFailure::Refused(refused.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return timeout.clone();
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        reason.push_str(": ");
        reason.push_str(&e.to_string());
        source = e.source();
    }
    FetchFailure::Transport(reason)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn fetcher(allow_private: bool) -> HttpFetcher {
        HttpFetcher::new(FetchLimits {
            timeout: Duration::from_millis(500),
            max_bytes: 1_000,
            allow_private_addresses: allow_private,
        })
        .unwrap()
    }

    /// A loopback axum server with a small, a large and a slow route.
    async fn server() -> SocketAddr {
        let app = Router::new()
            .route("/small", get(|| async { r#"{"ok":true}"# }))
            .route("/large", get(|| async { "x".repeat(5_000) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        addr
    }

    /// A loopback server that answers every connection with a chunked body that never ends:
    /// `chunk` bytes every `pause`. Without a Content-Length, only the streaming cap or the
    /// deadline can stop the client.
    async fn endless_server(chunk: usize, pause: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    // The request itself does not matter; read some of it so the client is not reset.
                    let _ = socket.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let piece = format!("{chunk:x}\r\n{}\r\n", "y".repeat(chunk));
                    while socket.write_all(piece.as_bytes()).await.is_ok() {
                        tokio::time::sleep(pause).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn small_json_bodies_are_fetched() {
        let addr = server().await;
        let value = fetcher(true).get_json(&format!("http://{addr}/small")).await.unwrap();
        assert_eq!(value, serde_json::json!({"ok": true}));
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let addr = server().await;
        let guarded = fetcher(false);
        for url in [
            format!("http://{addr}/small"),
            format!("http://localhost:{}/small", addr.port()),
            format!("http://[::ffff:127.0.0.1]:{}/small", addr.port()),
        ] {
            let error = guarded.get(&url).await.unwrap_err();
            assert!(matches!(error.failure, FetchFailure::Refused(_)), "{url}: {error}");
            assert!(matches!(ResolveError::from(error), ResolveError::Invalid { .. }));
        }
    }

    #[test]
    fn redirect_targets_are_checked_like_the_first_url() {
        let internal = Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(matches!(check_target(&internal, false), Err(FetchFailure::Refused(_))));
        assert!(check_target(&internal, true).is_ok());
        let other_scheme = Url::parse("file:///etc/passwd").unwrap();
        assert_eq!(check_target(&other_scheme, true), Err(FetchFailure::BadUrl));
        // Names are left to the guarded resolver.
        assert!(check_target(&Url::parse("https://localhost/").unwrap(), false).is_ok());
    }

    #[tokio::test]
    async fn only_http_and_https_are_fetched() {
        let guarded = fetcher(true);
        for url in ["ftp://example.org/x", "file:///etc/passwd", "not a url", "data:,{}"] {
            assert_eq!(guarded.get(url).await.unwrap_err().failure, FetchFailure::BadUrl, "{url}");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_cut_off() {
        let addr = server().await;
        let error = fetcher(true).get(&format!("http://{addr}/large")).await.unwrap_err();
        assert_eq!(error.failure, FetchFailure::TooLarge { limit: 1_000 });
        // An endless body is stopped at the cap, long before the deadline.
        let addr = endless_server(100, Duration::from_millis(1)).await;
        let error = fetcher(true).get(&format!("http://{addr}/")).await.unwrap_err();
        assert_eq!(error.failure, FetchFailure::TooLarge { limit: 1_000 });
        assert!(!ResolveError::from(error).to_string().is_empty());
    }

    #[tokio::test]
    async fn slow_answers_and_trickling_bodies_time_out() {
        let slow = server().await;
        let trickle = endless_server(1, Duration::from_millis(50)).await;
        for url in [format!("http://{slow}/slow"), format!("http://{trickle}/")] {
            let started = std::time::Instant::now();
            let error = fetcher(true).get(&url).await.unwrap_err();
            assert!(matches!(error.failure, FetchFailure::Timeout { .. }), "{url}: {error}");
            assert!(started.elapsed() < Duration::from_secs(3));
            assert!(matches!(ResolveError::from(error), ResolveError::Unavailable(_)));
        }
    }
}
