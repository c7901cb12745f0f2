//! The Matrix connector of dm3-bridge: an application service on ruma types.
//!
//! The bridge is a Matrix application service: the homeserver pushes room events to it and
//! lets it act as many users ("ghosts", one per DM3 identity) with one token. This crate holds
//! the Matrix side of that and nothing else: no database (the service hands the routes its
//! engine's inbound queue and a [`GhostDirectory`]), no DM3 (a DM3 name is an opaque
//! [`dm3_bridge_connector::RemoteIdentity`] here). It uses ruma's types for every request and
//! event, axum for the routes and reqwest for the client; not matrix-sdk, which is a client SDK
//! with no appservice mode (`matrix-sdk-appservice` is only a reserved name).
//!
//! - [`config`]: the `[matrix]` section of the service's config file, and its checks;
//! - [`registration`]: `registration.yaml` and the scope of transaction ids;
//! - [`secret`]: the as/hs tokens, unloggable;
//! - [`ghost`]: the reversible mapping of identities onto ghost user ids;
//! - [`appservice`]: the routes the homeserver calls, with [`auth`] and [`response`];
//! - [`transaction`], [`directory`]: the traits the service implements for those routes;
//! - [`client`]: the client-server calls the bridge makes as its ghosts;
//! - [`connector`]: the neutral `Connector` traits over the client, with [`portal`] (DM rooms
//!   opened, joined, refused), [`media`] (files both ways), [`native`] (bridge payloads sent as
//!   given) and [`ping`] (the start-up check);
//! - [`inbound`]: Matrix events into neutral inbound events; [`batch`]: a transaction into the
//!   engine's inbound batch, which makes every engine `InboundSink` a [`TransactionSink`];
//! - [`command`]: `!dm3 block`, `unblock` and `help` in a portal room, recognized;
//! - [`policy`]: which Matrix users may use the bridge;
//! - [`crypto`]: ghost devices and their Olm accounts (vodozemac), behind a store trait the
//!   service implements;
//! - [`encrypted_rooms`]: a ghost in an encrypted room gets its device;
//! - [`encrypted_inbound`]: a Matrix user's encrypted event, opened in the engine's job and
//!   checked before it is bridged, with the settings of [`decrypting`]; [`sender_trust`]: which
//!   of its sender's devices it is believed from;
//! - [`encryption`]: encrypted rooms, detected and refused in plain words; [`cleartext`]: the
//!   gate that asks the homeserver before every cleartext send;
//! - [`reach`]: whether the homeserver answers, the connector's health for `/ready`.

pub mod appservice;
pub mod auth;
pub mod batch;
pub mod cleartext;
pub mod client;
pub mod command;
pub mod config;
pub mod connector;
pub mod crypto;
pub mod decrypting;
pub mod directory;
pub mod encrypted_inbound;
pub mod encrypted_rooms;
pub mod encryption;
pub mod ghost;
pub mod inbound;
pub mod media;
pub mod media_cipher;
pub mod native;
pub mod outgoing;
pub mod ping;
pub mod policy;
pub mod portal;
pub mod reach;
pub mod registration;
pub mod response;
pub mod room_state;
pub mod secret;
pub mod sender_trust;
pub mod sending;
pub mod transaction;

pub use appservice::Appservice;
pub use batch::{batch_key, inbound_items};
pub use client::{Client, ClientError, Downloaded, Registered, RetryAfter};
pub use command::{CommandPrefix, CommandPrefixError, DEFAULT_COMMAND_PREFIX};
pub use config::{Encryption, MIN_MATRIX_TOKEN_LEN, MatrixConfig, MatrixToken};
pub use connector::{DEFAULT_MAX_MEDIA_BYTES, MatrixConnector};
pub use decrypting::{DEFAULT_UNDECRYPTABLE_AFTER, Decrypting, SenderTrust};
pub use directory::{DirectoryError, GhostDirectory, GhostProfile};
pub use encryption::RoomEncryption;
pub use ghost::{GhostError, GhostNamespace};
pub use policy::{PolicyEntry, PolicyError, UserPolicy};
pub use registration::{Registration, RegistrationBuilder, RegistrationError, RegistrationScope};
pub use secret::{AsToken, HsToken};
pub use transaction::{Recorded, SinkError, Transaction, TransactionSink};
