//! The service side of each connector: the traits the connector needs, implemented over the
//! store, and its assembly from config.
//!
//! A connector crate knows its network and nothing of the database, the vault or DM3 names
//! (docs/engine.md); what it needs from the service it asks for through traits of its own. The
//! implementations live here, one file per connector, so that the node's start-up
//! ([`crate::node`]) only calls one `build_*` function per configured connector.
//!
//! - [`matrix`]: `[matrix]` into the connector, the appservice routes, the start-up ping, and
//!   the ghost directory over the node's verified names;
//! - [`telegram`]: chat state over the store, virtual identities over the vault, DM3 names over
//!   the directory, and [`telegram::build_telegram`].

pub mod matrix;
pub mod telegram;
