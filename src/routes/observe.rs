//! The middleware that counts and times every request, and logs it at debug level.
//!
//! Labels are bounded: the route *template* (`/profile/{name}`, never the name itself), the
//! method (standard ones, else `other`) and the outcome class. A client cannot create new time
//! series by inventing paths, and no user name reaches the metrics or the log line.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::telemetry::metrics::{HTTP_DURATION, HTTP_REQUESTS, outcome};

pub async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "outcome" => outcome(status)
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method)
        .record(elapsed.as_secs_f64());
    tracing::debug!(
        %route,
        method,
        status,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
