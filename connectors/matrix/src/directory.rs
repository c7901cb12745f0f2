//! The ghost directory: which ghosts should exist, and what they are called.
//!
//! When a Matrix user invites `@_dm3_alice.eth:server` and no such user exists, the homeserver
//! asks the bridge (`GET /_matrix/app/v1/users/{userId}`). The bridge must not create ghosts for
//! names that resolve to nobody (or anyone could fill the homeserver with junk users), so the
//! route asks a [`GhostDirectory`], implemented by the service over its name resolver, before
//! registering the ghost.
//!
//! The trait answers a [`BoxFuture`] (like the core traits) so the service can hand it over as
//! `Arc<dyn GhostDirectory>`.

use dm3_bridge_connector::{BoxFuture, RemoteIdentity};

/// How a ghost presents itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhostProfile {
    /// The display name (for DM3, the name itself).
    pub display_name: String,
}

/// The directory could not answer (resolver down); the route answers 500 so the homeserver
/// does not cache a "no".
#[derive(Debug, thiserror::Error)]
#[error("the ghost directory could not answer: {0}")]
pub struct DirectoryError(pub String);

/// Which remote identities have ghosts: implemented by the service.
pub trait GhostDirectory: Send + Sync + 'static {
    /// `Some(profile)` if `identity` exists and may have a ghost, `None` if not.
    fn lookup<'a>(
        &'a self,
        identity: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>>;
}
