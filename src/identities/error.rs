//! What an identity operation can fail with, in the operator's terms.
//!
//! The admin API and the CLI show these messages as they are, so each says what was wrong and,
//! where there is one, what to do. None of them carries key material: the sealing errors name
//! the identity and the key version, never bytes.

use super::keys::OpenKeysError;
use super::network::UserIdError;
use super::scheme::SchemeError;
use crate::store::StoreError;
use crate::vault::SealError;

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("virtual identities are disabled on this node: set identities.parent (e.g. bridge.example.eth)")]
    NoParent,
    #[error(transparent)]
    UserId(#[from] UserIdError),
    #[error("{0:?} is neither an identity name nor network:userId (e.g. telegram:12345)")]
    BadReference(String),
    #[error("page {page} of {per_page} per page is not a page: pages start at 1, and 1 to 1000 per page")]
    InvalidPage { page: u32, per_page: u32 },
    #[error("no identity {0}")]
    NotFound(String),
    #[error("{user} already has the identity {name}")]
    Exists { user: String, name: String },
    #[error("the identity {0} was changed by another request at the same time; try again")]
    Conflict(String),
    #[error("{0} holds its own keys (self-custody): this node has none of them")]
    SelfCustody(String),
    #[error("{0} is custodial already: the node holds its keys")]
    Custodial(String),
    #[error("the signed profile is not accepted: {0}")]
    Profile(String),
    #[error("the claim is refused: {0}")]
    Claim(String),
    #[error(
        "{jobs} message(s) to {name} wait in the bridge's inbox, accepted for its custodial keys; \
         switch once they are delivered"
    )]
    Pending { name: String, jobs: u64 },
    #[error(transparent)]
    Scheme(#[from] SchemeError),
    #[error(transparent)]
    Keys(#[from] OpenKeysError),
    #[error("sealing the new keys failed: {0}")]
    Seal(#[from] SealError),
    #[error("the stored identity {name} is invalid: {reason}")]
    Corrupt { name: String, reason: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for IdentityError {
    /// A row the store could not read as an identity is this module's `Corrupt`, named alike
    /// whichever side found it.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::CorruptIdentity { name, reason } => Self::Corrupt { name, reason },
            other => Self::Store(other),
        }
    }
}
