//! [`BoxFuture`]: the one boxed future of the workspace.
//!
//! Every dyn-compatible async trait in the bridge returns it: the connector traits here, and in
//! the service the name resolvers, the delivery protocol, the engine's seams and the store's
//! write closures. This crate is the lowest one that needs it (the `dm3` SDK has no async), so
//! it is defined once here and imported from here everywhere, rather than one alias per trait.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what the dyn-compatible traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
