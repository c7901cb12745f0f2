//! The bridge engine: durable queues between the relay (DM3) and the connectors (networks).
//!
//! Everything that crosses the bridge is first a row in `bridge_jobs` (the store's
//! [`jobs`](crate::store::jobs)): the relay queues DM3 messages for virtual identities in the
//! inbox, connectors hand what they received to the outbox through [`InboundQueue`] (their
//! [`InboundSink`](dm3_bridge_connector::InboundSink)). Producers acknowledge upstream only
//! after that commit, so a crash loses nothing; idempotency keys make a replay harmless.
//!
//! [`worker::run`] then works a queue: heads of different conversations in parallel, each
//! conversation in order, with backoff, leases and the message TTL. What a job *does* is a
//! [`JobHandler`]; the inbox and outbox handlers (open, verify, convert, send, map) plug in
//! there. The design, tables and flows are in `docs/engine.md`.
//!
//! [`dm3`] is the DM3 half as pure steps: opening and verifying inbound envelopes, converting
//! between DM3 messages and the neutral model, and delivering to the recipient's delivery
//! services.
//!
//! Files: [`queue`] (the producers' handle: enqueue and wake the worker), [`worker`] (the
//! loop), [`backoff`] (retry delays), [`sink`] (the connectors' entry), [`job`] (what a job
//! carries, tagged with its kind), [`depth`] (the queue-depth gauges), [`backlog`] (the inbox's
//! bound per conversation and the warning to a sender who fills it), [`blocks`] and
//! [`inbox_limits`] (who may reach a bridged user: blocks, suspended portals, rate limits),
//! [`commands`] (a network user's `block`, `unblock` and `help` in a portal), [`encrypted`] (a
//! network user's end-to-end encrypted message, opened in its job, a late key waited for).

pub mod aliases;
pub mod assemble;
pub mod backlog;
pub mod backoff;
pub mod blocks;
pub mod claims;
pub mod commands;
pub mod connectors;
pub mod depth;
pub mod dm3;
pub mod encrypted;
pub mod first_contact;
pub mod gateway;
pub mod inbox;
pub mod inbox_limits;
pub mod job;
pub mod outbox;
pub mod parts;
pub mod portals;
pub mod queue;
pub mod references;
pub mod runtime;
pub mod sink;
pub mod worker;

pub use backoff::Backoff;
pub use job::JobPayload;
pub use queue::Queue;
pub use sink::InboundQueue;
pub use worker::{FailureCause, JobHandler, Outcome, WorkerOptions};
