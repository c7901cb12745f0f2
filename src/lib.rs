//! `dm3-bridge` as a library: everything the binary (`src/main.rs`) wires together.
//!
//! The binary is a thin edge (argument parsing, `anyhow`, exit codes); the pieces live here so
//! that integration tests in `tests/` drive exactly the code the binary runs.
//!
//! Comments cite the DM3 protocol reference in the repository, `docs/protocol.md`, by section
//! and pitfall (`docs/protocol.md §8 step 2`, `P14`; a bare `§8` or `P14` means that file too),
//! and the design as `docs/design.md`.
//!
//! Map of the house, top to bottom:
//! - [`clock`]: milliseconds since the epoch, the protocol's time unit;
//! - [`config`]: the typed configuration (TOML file + `DM3_BRIDGE_*` environment overrides)
//!   and its validation;
//! - [`vault`]: the operator's master key and sealing of secrets at rest;
//! - [`node_keys`]: the node's own X25519/Ed25519 keys, sealed under the master key;
//! - [`init`]: `dm3-bridge init`, which writes a fresh data directory; [`check`]: what
//!   `dm3-bridge check` reports;
//! - [`network_user`]: who on which network (Telegram and Matrix user ids, validated once, the
//!   SDK's types);
//! - [`store`]: the one repository layer over SQLite and PostgreSQL, with the group-commit
//!   envelope writer;
//! - [`names`]: name resolution behind one trait, and verified profiles on top of it;
//! - [`protocol`]: the seam where the DM3 protocol code plugs into the HTTP API, and the typed
//!   in-process seams between the relay and the engine;
//! - [`delivery`]: the DM3 delivery service that plugs in there (submit, accounts, login);
//! - [`ds_profile`]: the node's own `network.dm3.deliveryService` record;
//! - [`http`]: what every HTTP face shares (error answers, bounded bodies and JSON, the bearer
//!   token reader);
//! - [`routes`] and [`server`]: the axum HTTP API; [`rate_limit`]: per-client budgets of the
//!   unauthenticated routes that write or fetch; [`live`]: Socket.IO live delivery of stored
//!   envelopes to logged-in clients;
//! - [`telemetry`]: logs and Prometheus metrics;
//! - [`expiry`]: the TTL cleanup worker; [`lease`]: work one of several node processes on a
//!   database does at a time (docs/scaling.md);
//! - [`engine`]: the bridge's durable queues and their workers (docs/engine.md);
//! - [`identities`]: the custodial virtual identities (name scheme, sealed keys, vault);
//! - [`gateway`]: the CCIP-read gateway that publishes them; [`admin`]: their HTTP API;
//!   [`name_service`]: the three assembled at start-up;
//! - [`engine`]: the bridge between DM3 and the connectors: durable queues, portals, the
//!   message map, and the DM3 half of every bridged message;
//! - [`bridges`]: each network in the node (Matrix, Telegram, the loopback test network)
//!   through one trait, and the registry that lists them; [`matrix`]: `dm3-bridge
//!   generate-registration`;
//! - [`node`]: start-up and graceful shutdown of the whole node; [`admin_cli`]: `dm3-bridge
//!   identity …`, which opens the node's data the same way.

pub mod admin;
pub mod admin_cli;
pub mod bridges;
pub mod check;
pub mod clock;
pub mod config;
pub mod database_clock;
pub mod delivery;
pub mod ds_profile;
pub mod engine;
pub mod expiry;
pub mod gateway;
pub mod housekeeping;
pub mod http;
pub mod identities;
pub mod init;
pub mod lease;
pub mod live;
pub mod matrix;
pub mod name_service;
pub mod names;
pub mod network_user;
pub mod new_file;
pub mod node;
pub mod node_keys;
pub mod protocol;
pub mod rate_limit;
mod recent_reads;
pub mod routes;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod vault;
