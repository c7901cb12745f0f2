//! The admin console: web pages under `/admin/ui` for what the admin API does (identities,
//! their portals and conversations, the job queues, the node's health).
//!
//! Every Matrix bridge of note ships a container and a service unit; none ships a console, so
//! an operator reads logs and types `curl` to learn why a message failed (issue #20). The pages
//! are rendered on the server ([`pages`], maud, escaping by construction) and post plain forms:
//! no JavaScript and no build chain, so the console is part of the binary and its tests.
//!
//! The console is behind the same admin token as the API, and like the API it exists only when
//! a token is configured (without one nothing is mounted under `/admin/ui` and the API's 403
//! answers). A browser cannot send the bearer header, so a login form takes the token and sets
//! a session cookie ([`session`]: HMAC-signed, expiring, `HttpOnly`, `SameSite=Strict`); every
//! form carries that session's CSRF token; every input is bounded ([`handlers`]).
//!
//! | method and path | page or action |
//! | --- | --- |
//! | `GET /admin/ui/login`, `POST /admin/ui/login` | the login form; the token, checked |
//! | `POST /admin/ui/logout` | end the session |
//! | `GET /admin/ui/identities?q=&page=` | identities, or those whose name or network id contains `q` |
//! | `POST /admin/ui/identities` | create |
//! | `GET /admin/ui/identities/{id}` | one identity, its portals and conversations |
//! | `POST /admin/ui/identities/{id}/{rotate,disable,enable,delete}` | act on it |
//! | `GET /admin/ui/jobs?queue=&state=&after=` | the job queues |
//! | `POST /admin/ui/jobs/{id}/{retry,drop}` | retry a failed job, drop a job |
//! | `GET /admin/ui/health` | what `/ready` reports, and the queue depths |

pub mod handlers;
pub mod pages;
pub mod session;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_FRAME_OPTIONS};
use axum::response::Response;
use axum::routing::{get, post};

use super::AdminState;
use crate::config::AdminToken;
use crate::http::admin_token::TokenCheck;
use session::SessionKeys;

/// What the console's handlers reach.
#[derive(Clone)]
pub struct ConsoleState {
    pub admin: AdminState,
    pub check: TokenCheck,
    pub keys: SessionKeys,
    /// Whether the cookie is marked `Secure` (the node is reached over HTTPS).
    pub secure_cookie: bool,
}

/// The `/admin/ui` routes. Only called with a token: without one the console is not mounted.
pub fn router(admin: AdminState, token: &AdminToken, secure_cookie: bool) -> Router {
    let state = ConsoleState {
        admin,
        check: TokenCheck::new(Some(token)),
        keys: SessionKeys::new(token),
        secure_cookie,
    };
    let pages = Router::new()
        .route("/", get(handlers::home))
        .route("/logout", post(handlers::logout))
        .route("/identities", get(handlers::identities).post(handlers::create))
        .route("/identities/{id}", get(handlers::identity))
        .route("/identities/{id}/{action}", post(handlers::identity_action))
        .route("/jobs", get(handlers::jobs))
        .route("/jobs/{id}/{action}", post(handlers::job_action))
        .route("/health", get(handlers::health))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), handlers::require_session));
    let open = Router::new().route("/login", get(handlers::login_page).post(handlers::login));
    Router::new()
        .nest("/admin/ui", open.merge(pages).with_state(state))
        .layer(axum::middleware::map_response(harden))
}

/// Headers on every console answer: no scripts, no framing, no caching of admin data, no
/// referrer carrying an identity's name elsewhere.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
