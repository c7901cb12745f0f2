//! Administration of virtual identities: an HTTP API under `/admin`, and the same operations
//! as `dm3-bridge identity …` subcommands ([`crate::admin_cli`]).
//!
//! Both faces call the same [`IdentityVault`] operations and show the same JSON
//! ([`views`]), so a script can switch between them. The API is for running nodes (and the
//! bridge's own tooling); the CLI works on the database directly and needs no running node.
//!
//! | method and path | operation |
//! | --- | --- |
//! | `GET /admin/gateway` | signer address and URL template to register on chain |
//! | `GET /admin/identities?page=&perPage=` | list, paged, in name order |
//! | `POST /admin/identities` `{network, userId}` | create (with `address`, `signedProfile`: self-custody, [`custody`]) |
//! | `GET /admin/identities/{id}` | show |
//! | `DELETE /admin/identities/{id}` | delete (with every key version) |
//! | `POST /admin/identities/{id}/disable`, `/enable` | stop or resume publishing |
//! | `POST /admin/identities/{id}/rotate` | new wallet, keys and profile |
//! | `POST /admin/identities/{id}/self-custody` `{address, signedProfile}` | to the user's wallet; the node's keys destroyed |
//! | `POST /admin/identities/{id}/custodial` | back to a new wallet the node holds |
//! | `GET /admin/identities/{id}/profile` | the published signed profile and record |
//! | `GET /admin/identities/{id}/conversations` | its portals (with their last message) and who it has envelopes from |
//! | `GET /admin/portals?network=&after=&limit=` | portals, in id order, with their state |
//! | `GET /admin/portals/{portalId}` | one portal |
//! | `DELETE /admin/portals/{portalId}` | unlink: forget it; the stand-in says so and leaves |
//! | `GET /admin/jobs?queue=&state=&after=&limit=` | jobs, in id order ([`jobs`]) |
//! | `GET /admin/jobs/{jobId}` | one job |
//! | `POST /admin/jobs/{jobId}/retry` | a failed job back to its queue |
//! | `DELETE /admin/jobs/{jobId}` | drop a failed or waiting job |
//! | `DELETE /admin/matrix/cross-signing/{userId}` | accept a Matrix user's new cross-signing identity: drop its pin ([`cross_signing`]) |
//!
//! The same operations, and the node's health, are a web page under `/admin/ui` ([`console`]),
//! behind the same token through a login form.
//!
//! `{id}` is the identity's ENS name or `network:userId` (`telegram:12345`,
//! `matrix:@bob:example.org`). Every route needs the bearer token
//! ([`admin_token`](crate::http::admin_token)); errors are JSON
//! ([`admin_error`](crate::http::admin_error)). `docs/admin-api.yaml` is the OpenAPI description.

pub mod console;
pub mod cross_signing;
pub mod custody;
pub mod input;
pub mod jobs;
pub mod routes;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use dm3_bridge_connector::Connector;

use crate::config::AdminToken;
use crate::http::admin_token::{self, TokenCheck};
use crate::identities::IdentityVault;
use crate::store::Store;
use views::GatewayView;

/// What the admin handlers reach.
#[derive(Clone)]
pub struct AdminState {
    pub vault: IdentityVault,
    pub gateway: GatewayView,
    /// Portals and jobs are the engine's rows, read and changed here directly.
    pub store: Store,
    /// The running networks' connectors, whose health the console shows as `/ready` does.
    pub connectors: Arc<[Arc<dyn Connector>]>,
    /// Whether the node is reached over HTTPS: the console's cookie is then `Secure`.
    pub https: bool,
}

/// The `/admin` routes, token check included, with their state applied.
pub fn router(state: AdminState, token: Option<&AdminToken>) -> Router {
    let check = TokenCheck::new(token);
    if !check.is_enabled() {
        tracing::info!("admin API disabled (no admin.token configured)");
    }
    // Like the API, the console exists only with a token; it is merged below the API's nest,
    // whose 403 answers `/admin/ui` when there is none.
    let console = token.map(|token| console::router(state.clone(), token, state.https));
    let routes = Router::new()
        .route("/gateway", get(routes::gateway))
        .route("/identities", get(routes::list).post(routes::create))
        .route("/identities/{id}", get(routes::show).delete(routes::delete))
        .route("/identities/{id}/disable", post(routes::disable))
        .route("/identities/{id}/enable", post(routes::enable))
        .route("/identities/{id}/rotate", post(routes::rotate))
        .route("/identities/{id}/self-custody", post(custody::to_self_custody))
        .route("/identities/{id}/custodial", post(custody::to_custodial))
        .route("/identities/{id}/profile", get(routes::profile))
        .route("/identities/{id}/conversations", get(routes::conversations))
        .route("/portals", get(routes::portals))
        .route("/portals/{portal}", get(routes::portal).delete(routes::unlink_portal))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{job}", get(jobs::show).delete(jobs::drop))
        .route("/jobs/{job}/retry", post(jobs::retry))
        .route("/matrix/cross-signing/{user}", delete(cross_signing::accept_identity))
        .fallback(routes::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(check, admin_token::require_token));
    let api = Router::new().nest("/admin", routes);
    match console {
        Some(console) => api.merge(console),
        None => api,
    }
}
