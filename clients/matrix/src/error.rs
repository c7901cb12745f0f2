//! The library's errors, in the caller's terms: which step failed and what it was about.

use std::time::Duration;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{id:?} is not a Matrix {kind} id")]
    BadId { kind: &'static str, id: String },
    #[error("the homeserver URL {0:?} is not an http(s) URL")]
    BadHomeserver(String),
    // matrix-sdk's errors are large; boxed, every `Result` of the crate stays small.
    #[error("building the Matrix client: {0}")]
    Build(Box<matrix_sdk::ClientBuildError>),
    #[error("Matrix: {0}")]
    Sdk(Box<matrix_sdk::Error>),
    #[error("Matrix: {0}")]
    Http(Box<matrix_sdk::HttpError>),
    #[error("this client knows no room {0} (not joined, or not synced since)")]
    UnknownRoom(String),
    #[error("the room {room} has more than {pages} pages of history")]
    HistoryTooLong { room: String, pages: usize },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { after: Duration, what: String },
    #[error("the session file {path}: {reason}")]
    Session { path: String, reason: String },
    #[error("the client is not logged in")]
    NotLoggedIn,
}

impl From<matrix_sdk::ClientBuildError> for ClientError {
    fn from(error: matrix_sdk::ClientBuildError) -> Self {
        Self::Build(Box::new(error))
    }
}

impl From<matrix_sdk::Error> for ClientError {
    fn from(error: matrix_sdk::Error) -> Self {
        Self::Sdk(Box::new(error))
    }
}

impl From<matrix_sdk::HttpError> for ClientError {
    fn from(error: matrix_sdk::HttpError) -> Self {
        Self::Http(Box::new(error))
    }
}
