//! `POST <url>/rpc` `dm3_submitMessage` to another node, bounded and classified.
//!
//! The request is the messenger's (docs/protocol.md §9.1, `createJsonRpcCallSubmitMessage`):
//! `{"jsonrpc":"2.0","method":"dm3_submitMessage","params":[JSON.stringify(envelope)]}`, with
//! no `id`. The URL is the service profile's `url` (which names anyone may publish) plus
//! `/rpc`, so the request is bounded like every fetch a name can trigger (`names::http_fetch`):
//! http(s) only, no internal addresses unless the operator allows them (checked on the
//! resolved address, [`GuardedResolver`]), no proxy, no redirects (a submit is a POST; a
//! service that moved publishes a new profile), one deadline for the whole exchange, and at
//! most [`HttpTargetOptions::max_response_bytes`] of the answer read.
//!
//! The answer is classified by status first, as clients do (P10): 2xx accepted (unless the
//! body is a JSON-RPC error object), 429 rate-limited, 408 and 5xx unavailable, other 4xx and
//! 3xx refused. A JSON-RPC error body (`{"error":{"code","message"}}`, this node's shape) or the
//! reference's `{error}`, `{message}` or text bodies give the message; code -32005 ("limit
//! exceeded", EIP-1474) counts as a rate limit, -32002 (DM3 "resource unavailable") and -32603
//! (internal) as unavailable. `Retry-After` (seconds or an HTTP date) is honoured, capped at
//! [`MAX_RETRY_AFTER`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::dm3::envelope::Envelope;
use dm3_bridge_connector::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, Url};
use serde_json::{Value, json};

use super::target::{DeliveryTarget, ServiceEndpoint, SubmitError};
use crate::names::address_guard::{self, AddressRefused, GuardedResolver};

/// The longest pause a `Retry-After` can impose; longer answers are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Longest error message kept from an answer, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

const RATE_LIMITED_CODE: i64 = -32005;
const UNAVAILABLE_CODES: [i64; 2] = [-32002, -32603];

/// Bounds of every submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTargetOptions {
    /// From connecting to the last byte read.
    pub timeout: Duration,
    /// The most bytes of an answer read (an answer is `OK` or a short error).
    pub max_response_bytes: usize,
    /// Allow internal addresses (tests; a private deployment).
    pub allow_private_addresses: bool,
}

impl Default for HttpTargetOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            max_response_bytes: 16 * 1024,
            allow_private_addresses: false,
        }
    }
}

/// The HTTP client could not be built (no usable TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the delivery HTTP client: {0}")]
pub struct HttpTargetError(String);

/// Posts envelopes to delivery services over HTTP.
#[derive(Debug, Clone)]
pub struct HttpDeliveryTarget {
    client: Client,
    options: HttpTargetOptions,
}

impl HttpDeliveryTarget {
    pub fn new(options: HttpTargetOptions) -> Result<Self, HttpTargetError> {
        let client = Client::builder()
            .user_agent(concat!("dm3-bridge/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private: options.allow_private_addresses }))
            .redirect(Policy::none())
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| HttpTargetError(e.to_string()))?;
        Ok(Self { client, options })
    }

    async fn post(&self, url: Url, body: String) -> Result<(), SubmitError> {
        let unavailable = |reason: String| SubmitError::Unavailable { retry_after: None, reason };
        let exchange = async {
            let request = self.client.post(url).header(CONTENT_TYPE, "application/json").body(body);
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers(), SystemTime::now());
            let body =
                read_capped(response, self.options.max_response_bytes).await.map_err(transport_error)?;
            classify(status, retry_after, &body)
        };
        match tokio::time::timeout(self.options.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!("no answer within {} s", self.options.timeout.as_secs()))),
        }
    }
}

impl DeliveryTarget for HttpDeliveryTarget {
    fn submit<'a>(
        &'a self,
        service: &'a ServiceEndpoint,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), SubmitError>> {
        Box::pin(async move {
            let url = rpc_url(service.profile.url(), self.options.allow_private_addresses)?;
            self.post(url, submit_body(envelope)).await
        })
    }
}

/// The JSON-RPC body of `dm3_submitMessage` for `envelope`.
pub fn submit_body(envelope: &Envelope) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "dm3_submitMessage",
        "params": [envelope.to_value().to_string()],
    })
    .to_string()
}

/// `<url>/rpc`, if `url` is an absolute http(s) URL of an allowed host.
fn rpc_url(url: &str, allow_private: bool) -> Result<Url, SubmitError> {
    let bad = |why: &str| SubmitError::BadProfile(format!("url `{url}` {why}"));
    let parsed =
        Url::parse(&format!("{}/rpc", url.trim_end_matches('/'))).map_err(|_| bad("is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("is not http(s)"));
    }
    let ip = match parsed.host() {
        None => return Err(bad("has no host")),
        Some(url::Host::Domain(_)) => return Ok(parsed),
        Some(url::Host::Ipv4(v4)) => v4.into(),
        Some(url::Host::Ipv6(v6)) => v6.into(),
    };
    address_guard::check(parsed.host_str().unwrap_or_default(), ip, allow_private)
        .map_err(|refused| SubmitError::BadProfile(refused.to_string()))?;
    Ok(parsed)
}

/// The answer as a result (see the module documentation).
fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Result<(), SubmitError> {
    let answer = ErrorBody::read(body);
    let code = answer.code;
    let message = answer.message;
    let refused = |message: String| SubmitError::Refused { status: Some(status), code, message };
    let rate_limited = |message: String| SubmitError::RateLimited { retry_after, message };
    let unavailable = |reason: String| SubmitError::Unavailable { retry_after, reason };
    match status {
        // A success status with a JSON-RPC error object: the error counts.
        200..=299 if answer.is_error => match code {
            Some(RATE_LIMITED_CODE) => Err(rate_limited(message)),
            Some(code) if UNAVAILABLE_CODES.contains(&code) => Err(unavailable(message)),
            _ => Err(refused(message)),
        },
        200..=299 => Ok(()),
        429 => Err(rate_limited(message)),
        408 | 500..=599 => Err(unavailable(format!("HTTP {status}: {message}"))),
        300..=399 => Err(refused(format!("redirects are not followed: {message}"))),
        400..=499 if code == Some(RATE_LIMITED_CODE) => Err(rate_limited(message)),
        400..=499 => Err(refused(message)),
        _ => Err(unavailable(format!("HTTP {status}: {message}"))),
    }
}

/// What an answer body says about an error.
struct ErrorBody {
    /// The body holds an `error` member (a JSON-RPC error object, or the reference's `{error}`).
    is_error: bool,
    /// Its JSON-RPC code, when it has one.
    code: Option<i64>,
    /// The words to show, at most [`MAX_MESSAGE_CHARS`].
    message: String,
}

impl ErrorBody {
    fn read(body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|value| value.get("error")).filter(|e| !e.is_null());
        let (is_error, code, message) = match error {
            Some(Value::Object(error)) => (
                true,
                error.get("code").and_then(Value::as_i64),
                error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
            ),
            Some(Value::String(message)) => (true, None, message.clone()),
            Some(other) => (true, None, other.to_string()),
            None => {
                let message = parsed.as_ref().and_then(|v| v.get("message")).and_then(Value::as_str);
                let text = || String::from_utf8_lossy(body).trim().to_owned();
                (false, None, message.map(str::to_owned).unwrap_or_else(text))
            }
        };
        Self { is_error, code, message: message.chars().take(MAX_MESSAGE_CHARS).collect() }
    }
}

/// `Retry-After` as a pause from `now`: delta-seconds or an HTTP date, capped.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let pause = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or_default(),
    };
    Some(pause.min(MAX_RETRY_AFTER))
}

/// Reads at most `max` bytes of the body; the rest is not read (the connection is dropped).
async fn read_capped(mut response: Response, max: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= max {
            break;
        }
    }
    Ok(body)
}

/// A transport failure: the address guard's refusal is permanent (the profile points at an
/// internal address), anything else may pass.
fn transport_error(error: reqwest::Error) -> SubmitError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            return SubmitError::BadProfile(refused.to_string());
        }
        source = e.source();
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        reason.push_str(": ");
        reason.push_str(&e.to_string());
        source = e.source();
    }
    SubmitError::Unavailable { retry_after: None, reason }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn success_is_the_status_not_the_body() {
        assert_eq!(classify(200, None, b"OK"), Ok(()));
        assert_eq!(classify(204, None, b""), Ok(()));
        assert_eq!(classify(200, None, br#"{"jsonrpc":"2.0","result":"x"}"#), Ok(()));
        assert_eq!(classify(200, None, br#"{"jsonrpc":"2.0","error":null}"#), Ok(()));
        assert!(matches!(classify(200, None, br#"{"error":"nope"}"#), Err(SubmitError::Refused { .. })));
        assert_eq!(
            classify(200, None, br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"bad"}}"#),
            Err(SubmitError::Refused { status: Some(200), code: Some(-32000), message: "bad".into() })
        );
    }

    #[test]
    fn refusals_are_permanent_with_the_servers_words() {
        let ours = br#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"unknown account"}}"#;
        let refused = classify(400, None, ours).unwrap_err();
        assert_eq!(
            refused,
            SubmitError::Refused { status: Some(400), code: Some(-32001), message: "unknown account".into() }
        );
        assert!(!refused.kind().is_retryable());
        // The reference DS's bodies: `{error}`, `{message}`, text, nothing.
        let message = |body: &[u8]| match classify(400, None, body) {
            Err(SubmitError::Refused { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            classify(400, None, br#"{"error":"invalid schema"}"#),
            Err(SubmitError::Refused { status: Some(400), code: None, message: "invalid schema".into() })
        );
        assert_eq!(message(br#"{"message":"Couldn't store"}"#), "Couldn't store");
        assert_eq!(message(b"Envelop missing\n"), "Envelop missing");
        assert_eq!(message(b""), "");
        assert_eq!(message(&[b'x'; 1000]).len(), MAX_MESSAGE_CHARS);
        assert!(matches!(classify(413, None, b""), Err(SubmitError::Refused { .. })));
        assert!(matches!(classify(302, None, b""), Err(SubmitError::Refused { .. })));
    }

    #[test]
    fn rate_limits_and_server_trouble_are_retried_when_asked() {
        let after = Some(Duration::from_secs(30));
        let limited = classify(429, after, b"slow down").unwrap_err();
        assert_eq!(limited.kind(), crate::engine::dm3::FailureKind::Retryable { after });
        let limit_code = br#"{"jsonrpc":"2.0","error":{"code":-32005,"message":"limit exceeded"}}"#;
        assert!(matches!(classify(400, None, limit_code), Err(SubmitError::RateLimited { .. })));
        for status in [500, 502, 503, 408] {
            let error = classify(status, after, b"").unwrap_err();
            assert_eq!(error.kind(), crate::engine::dm3::FailureKind::Retryable { after }, "{status}");
        }
        let unavailable = br#"{"jsonrpc":"2.0","error":{"code":-32002,"message":"down"}}"#;
        assert!(matches!(classify(200, None, unavailable), Err(SubmitError::Unavailable { .. })));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers("99999999"), now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&later), now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn service_urls_are_checked() {
        assert_eq!(
            rpc_url("https://ds.example.org/ds/", false).unwrap().as_str(),
            "https://ds.example.org/ds/rpc"
        );
        assert_eq!(rpc_url("http://ds.example.org", false).unwrap().as_str(), "http://ds.example.org/rpc");
        for bad in [
            "ftp://ds.example.org",
            "not a url",
            "http://127.0.0.1:8080/ds",
            "http://[::1]/",
            "http://10.0.0.1/",
        ] {
            assert!(matches!(rpc_url(bad, false), Err(SubmitError::BadProfile(_))), "{bad}");
        }
        assert!(rpc_url("http://127.0.0.1:8080/ds", true).is_ok());
    }

    #[test]
    fn the_body_is_the_messengers() {
        let envelope = Envelope::from_value(json!({
            "message": "m",
            "metadata": {"version": "v1", "signature": "s", "deliveryInformation": "d",
                         "messageHash": "0x305bd53275b584c77fa27ac507e6abeee91adedcc8405aca7d9da97616947dd0"},
        }))
        .unwrap();
        let body: Value = serde_json::from_str(&submit_body(&envelope)).unwrap();
        assert_eq!(body["method"], "dm3_submitMessage");
        assert!(body.get("id").is_none());
        let param = body["params"][0].as_str().unwrap();
        assert_eq!(Envelope::parse(param).unwrap(), envelope);
    }
}
