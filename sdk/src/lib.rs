//! The DM3 protocol, byte-compatible with the reference TypeScript libraries.
//!
//! Everything here follows what `@dm3-org/dm3-lib-*` really does on the wire,
//! not only what the specification says; `PROTOCOL.md` in the shared notes
//! lists the differences (cited below as P-numbers and §-sections). The crate
//! knows nothing about the bridge: no database, no server, no network.
//!
//! Layers, from the bottom:
//! - [`encoding`], [`hash`], [`canonical`]: bytes, hashes and the canonical JSON
//!   that every signature covers;
//! - [`crypto`]: key exchange, AEAD, Ed25519 and secp256k1;
//! - [`keys`]: deriving a user's DM3 keys from a wallet signature.

pub mod canonical;
pub mod ccip;
pub mod crypto;
pub mod encoding;
pub mod ens;
pub mod hash;
pub mod keys;
pub mod message;
pub mod resolver_api;
