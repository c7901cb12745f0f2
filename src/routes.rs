//! The HTTP handlers, one file per group of routes.
//!
//! Paths, status codes and body shapes follow the reference delivery service (docs/protocol.md §9)
//! so that stock DM3 clients work unchanged; where we add something (JSON-RPC error objects,
//! `/health`, `/ready`, Prometheus `/metrics`) it keeps the status semantics clients rely on:
//! 2xx success, 4xx the client's fault.
//!
//! - [`probes`]: `GET /hello`, `/health`, `/ready`;
//! - [`metrics`]: `GET /metrics`;
//! - [`rpc`]: `POST /rpc`, the JSON-RPC dispatch;
//! - [`profile`], [`auth`]: the account and login routes, delegated to the protocol;
//! - [`delivery`]: fetching and acknowledging stored envelopes; [`acknowledgements`]: the
//!   acknowledgement list, parsed borrowed and bounded;
//! - their shared pieces (error answers, bounded bodies and JSON values) are in [`crate::http`],
//!   below the admin API and the gateway too;
//! - [`name_lookup`]: `GET /names/lookup`, the name this node gives a Matrix or Telegram user
//!   (over the identities, not [`state::AppState`]: the name service mounts it beside `/ccip`);
//! - [`observe`]: the middleware that counts and times every request;
//! - [`state`]: what every handler can reach, [`state::AppState`].

pub mod acknowledgements;
pub mod auth;
pub mod delivery;
pub mod metrics;
pub mod name_lookup;
pub mod observe;
pub mod probes;
pub mod profile;
pub mod rpc;
pub mod state;
