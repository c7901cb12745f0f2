//! A Matrix client with its own end-to-end encryption, for two users of the project:
//!
//! - **gateway users** (docs/gateway.md), who hold their DM3 keys themselves: [`GatewayUser`]
//!   claims their name from the bridge's bot, seals DM3 envelopes and sends them as
//!   `network.dm3.envelope` events, and opens the envelopes the node carries to them;
//! - **the tests**, which need a Matrix user that is not the bridge's code path: [`MatrixUser`]
//!   logs in, syncs, opens encrypted rooms and reports what its client really saw, decrypted
//!   or not (issue 17: "bob with his own crypto").
//!
//! It is built on matrix-sdk, whose crypto (matrix-sdk-crypto, vodozemac) is a second,
//! independent implementation of Olm and Megolm beside the bridge's own. That is why this is a
//! crate of its own: matrix-sdk 0.18 brings ruma 0.16 and its own HTTP stack, and the service
//! must not link them (ARCHITECTURE.md, "Deliberate departures"). Nothing of matrix-sdk's ruma
//! leaks into the service: ids cross the seam as the types re-exported in [`ids`].
//!
//! State lives in memory (matrix-sdk's memory stores; no SQLite here): a [`MatrixUser`]'s Olm
//! account and room keys last as long as the value. The `dm3-matrix` binary ([`cli`]) keeps
//! its session (token, device id) and the device's crypto state ([`crypto_snapshot`]) between
//! runs in its session file ([`session`]).

// matrix-sdk's sync future is deep enough to overflow the default limit when spawned.
#![recursion_limit = "256"]

pub mod cli;
pub mod cross_signing;
pub mod crypto_snapshot;
pub mod error;
pub mod files;
pub mod gateway;
pub mod ids;
pub mod login;
mod private_file;
pub mod rooms;
pub mod session;
pub mod timeline;
pub mod user;
pub mod wait;
pub mod watch;

pub use error::ClientError;
pub use gateway::GatewayUser;
pub use login::{Credentials, CrossSigning};
pub use rooms::{RoomEncryption, RoomSummary};
pub use timeline::{Decryption, SeenEvent};
pub use user::MatrixUser;
pub use watch::Arrived;
