//! The HTTP pieces every family of routes shares: the DM3 API's error answers, bounded body
//! reading, bounded JSON values, the `Authorization: Bearer` reader and the admin token check.
//!
//! They sit below every module that serves HTTP (the delivery-service [`crate::routes`], the
//! admin API, the CCIP-read gateway, the rate limits, the server's body guard), so that none of
//! those reaches sideways into another for them: a module that serves routes uses this one,
//! and this one uses no route.
//!
//! - [`error`]: the DM3 API's one mapping of errors to HTTP statuses and JSON-RPC error bodies;
//! - [`body`]: bounded body reading, before any parsing; [`json`]: JSON values bounded in
//!   number before they are built;
//! - [`bearer`]: the one reader of `Authorization: Bearer`;
//! - [`admin_token`]: the admin token check, in front of `/admin` and (unless
//!   `admin.public_metrics`) `/metrics`; [`admin_error`]: the admin API's error answers, which
//!   that check gives too.

pub mod admin_error;
pub mod admin_token;
pub mod bearer;
pub mod body;
pub mod error;
pub mod json;
