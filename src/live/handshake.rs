//! The live-delivery handshake: who connects, with which session (docs/protocol.md P19, §9.3).
//!
//! The messenger sends `auth = {account: {ensName}, token}` in its Socket.IO CONNECT packet,
//! the token being the session token of its login. The reference checks that token as on its
//! HTTP routes and otherwise fails the connection, which the client sees as `connect_error`;
//! this node does the same with its own session check
//! ([`DeliveryProtocol::live_session`]: the name normalized, the token's SHA-256 looked up, so
//! no secret is compared as text, and the session unexpired and issued for that name). Then
//! the socket takes a seat ([`Seats`]), or is refused when its account or the node has none
//! left.
//!
//! A refusal says why in the client's terms and never more: an internal failure is logged and
//! answered generically, as the HTTP routes do.

use std::sync::Arc;

use serde::Deserialize;

use super::seats::{Full, Seat, Seats};
use crate::protocol::{DeliveryError, DeliveryProtocol};

/// The CONNECT packet's `auth`, as the messenger sends it. Other fields are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct Handshake {
    account: Account,
    token: String,
}

#[derive(Debug, Deserialize)]
struct Account {
    #[serde(rename = "ensName")]
    ens_name: String,
}

/// Why a socket was refused; the text is the `connect_error` message the client gets.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("unauthorized: auth must be {{account: {{ensName}}, token}} with the session token of a login")]
    Malformed,
    #[error("unauthorized: {0}")]
    Session(String),
    #[error("the node is temporarily unavailable; retry later")]
    Unavailable,
    #[error(transparent)]
    Full(#[from] Full),
}

impl Refusal {
    /// A bounded label for the metrics.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Session(_) => "unauthorized",
            Self::Unavailable => "unavailable",
            Self::Full(full) => full.label(),
        }
    }
}

impl From<DeliveryError> for Refusal {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Unauthorized(why) | DeliveryError::InvalidRequest(why) => Self::Session(why),
            DeliveryError::Unavailable => Self::Unavailable,
            other => {
                tracing::warn!(error = %other, "a live-delivery handshake failed");
                Self::Unavailable
            }
        }
    }
}

/// Checks `auth` (`None`: absent or not of the handshake's shape) and takes a seat for it.
pub(super) async fn admit(
    protocol: &dyn DeliveryProtocol,
    seats: &Arc<Seats>,
    auth: Option<Handshake>,
) -> Result<Seat, Refusal> {
    let Handshake { account, token } = auth.ok_or(Refusal::Malformed)?;
    let session = protocol.live_session(&account.ens_name, &token).await?;
    Ok(seats.take(&session.name, session.expires_at_ms)?)
}
