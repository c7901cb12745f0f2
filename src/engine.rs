//! The bridge engine: DM3 on one side, the connectors on the other (`docs/engine.md`).
//!
//! - [`dm3`]: the DM3 half as pure steps: opening and verifying inbound envelopes,
//!   converting between DM3 messages and the neutral model, and delivering to the recipient's
//!   delivery services.

pub mod dm3;
