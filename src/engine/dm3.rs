//! The DM3 half of the engine, as steps the job handlers call in order (`docs/engine.md`).
//!
//! Each step is a plain function over its inputs (an envelope, keys, a [`Directory`], a
//! [`MessageReferences`]) with a `thiserror` error that says whether trying again can help
//! ([`FailureKind`]). Nothing here touches the queues or the database: the handlers own the
//! job, the portal and the message map, and call these steps in order.
//!
//! Inbox (DM3 → network):
//! 1. [`open::open_inbound`]: the stored envelope, opened with the receiver's keys, the
//!    message signature checked against the *sender's* verified profile, and `from`/`to`
//!    checked against the delivery information;
//! 2. [`convert::to_network`]: the opened message as neutral events for the connector, with
//!    references resolved through the message map.
//!
//! For a self-custody identity (gateway mode) nothing is opened: [`sealed::sealed_event`] is
//! the whole step, the envelope as it was sealed inside the network's gateway event.
//!
//! Outbox (network → DM3):
//! 1. [`convert::to_dm3`]: the network event as a DM3 message signed by the sender's
//!    virtual identity;
//! 2. [`deliver::deliver`]: one envelope per delivery service of the recipient, each posted
//!    (`dm3_submitMessage`) through a [`deliver::DeliveryTarget`].
//!
//! Files: [`failure`] (retry or give up), [`open`], [`references`] (the message map as the
//! converters see it), [`markdown`] (stock-client text to safe HTML), [`attachments`] (`data:`
//! URIs ↔ neutral attachments), [`bridge_payload`] (the hook for SDK-aware clients),
//! [`convert`], [`deliver`].
//!
//! [`Directory`]: crate::names::directory::Directory
//! [`MessageReferences`]: references::MessageReferences

pub mod attachments;
pub mod bridge_payload;
pub mod convert;
pub mod deliver;
pub mod failure;
pub mod markdown;
pub mod open;
pub mod references;
pub mod sealed;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use failure::FailureKind;
