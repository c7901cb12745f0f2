//! The gateway side's errors: which step failed, and about what.

use crate::error::ClientError;

/// What went wrong on the gateway side.
#[derive(Debug, thiserror::Error)]
pub enum GatewayClientError {
    #[error(transparent)]
    Matrix(#[from] ClientError),
    #[error("the key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("sealing the message: {0}")]
    Seal(#[from] dm3::envelope::SealError),
    #[error("the gateway document: {0}")]
    Codec(#[from] dm3::gateway_envelope::GatewayError),
    #[error("the profile of {name}: {reason}")]
    Profile { name: String, reason: String },
    #[error("the node at {url}: {reason}")]
    Node { url: String, reason: String },
    #[error("the claim: {0}")]
    Claim(String),
}
