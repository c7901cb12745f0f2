//! The loopback network of dm3-bridge: a connector with no network behind it.
//!
//! It exists to run the whole bridge (the relay, the engine, its queues, portals and message
//! map) without a homeserver or a bot, in tests and when an operator wants to see the engine
//! work: what the engine sends to it is recorded ([`LoopbackConnector::records`]), and what its
//! users write is handed to the engine's inbound sink like any network's
//! ([`LoopbackConnector::write`]). With `echo = true` every message sent to a user comes back as
//! that user's answer, so a DM3 user who writes to a loopback identity hears their own words.
//!
//! It carries the users of one of the networks the node has virtual identities for
//! (`users_of`, Telegram's by default): their ids and their DM3 names are that network's, so no
//! name scheme is needed for it. It knows nothing of DM3 and of the database, like every
//! connector: a DM3 name is an opaque `RemoteIdentity` here.
//!
//! - [`config`]: the `[loopback]` section, off unless present;
//! - [`connector`]: the connector, its capabilities, and the records.

pub mod config;
pub mod connector;

pub use config::LoopbackConfig;
pub use connector::{LoopbackConnector, Record};
