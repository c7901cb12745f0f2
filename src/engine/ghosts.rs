//! Which DM3 users get a ghost on Matrix: those whose name resolves to a verified DM3 profile.
//!
//! The homeserver asks when a Matrix user invites an unknown `@_dm3_…` user. Answering yes
//! for any name would let anyone fill the homeserver with junk users, so the engine's
//! directory must verify a profile first. A name source that is down is an error, not a "no"
//! (the homeserver would remember the "no").

use dm3_bridge_connector::{BoxFuture, RemoteIdentity};
use dm3_bridge_matrix::{DirectoryError, GhostDirectory, GhostProfile};

use crate::names::directory::Directory;

/// [`GhostDirectory`] over the engine's [`Directory`].
pub struct EngineGhosts {
    directory: Directory,
}

impl EngineGhosts {
    pub fn new(directory: Directory) -> Self {
        Self { directory }
    }
}

impl GhostDirectory for EngineGhosts {
    fn lookup<'a>(
        &'a self,
        identity: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>> {
        Box::pin(async move {
            let Ok(name) = dm3::ens::EnsName::parse(identity.as_str()) else { return Ok(None) };
            match self.directory.user_profile(&name).await {
                Ok(Some(_)) => Ok(Some(GhostProfile { display_name: name.to_string() })),
                Ok(None) => Ok(None),
                Err(crate::names::directory::DirectoryError::Resolve(
                    crate::names::ResolveError::Unavailable(detail),
                )) => Err(DirectoryError(detail)),
                Err(_) => Ok(None),
            }
        })
    }
}
