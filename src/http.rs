//! The HTTP pieces every family of routes shares: the DM3 API's error answers, bounded body
//! reading, bounded JSON values, and the `Authorization: Bearer` reader.
//!
//! They sit below every module that serves HTTP (the delivery-service [`crate::routes`], the
//! admin API, the CCIP-read gateway, the rate limits, the server's body guard), so that none of
//! those reaches sideways into another for them: a module that serves routes uses this one,
//! and this one uses no route.
//!
//! - [`error`]: the one mapping of errors to HTTP statuses and JSON-RPC error bodies;
//! - [`body`]: bounded body reading, before any parsing; [`json`]: JSON values bounded in
//!   number before they are built;
//! - [`bearer`]: the one reader of `Authorization: Bearer`.

pub mod bearer;
pub mod body;
pub mod error;
pub mod json;
