//! Virtual identities: the custodial DM3 identities the bridge holds for people on other
//! networks (docs/design.md, "Names and identities").
//!
//! A Telegram user or a Matrix user gets a DM3 name under the operator's parent name
//! (`tg-12345.tg.bridge.example.eth`), a secp256k1 wallet the node holds for them, the DM3
//! keys derived from it, and a profile naming this node as their delivery service. The node
//! publishes name and profile itself, through its CCIP-read gateway ([`crate::gateway`]).
//!
//! Files, bottom up:
//! - [`network`]: which network and which user an identity stands for (validated ids): the
//!   crate's [`crate::network_user`], which the store's identity rows use too;
//! - [`label`]: user id ↔ ENS label, the reversible escaping (`docs/names.md` specifies it);
//! - [`scheme`]: label ↔ full name under the parent and the per-network sub-names, from
//!   `[identities]`; the label and the scheme are the SDK's ([`dm3::bridge_names`]), which DM3
//!   clients compute the same names with;
//! - [`keys`]: one key version: wallet, derived DM3 keys, signed profile, sealing;
//! - [`vault`]: the operations (create, rotate, disable, enable, delete, list, keys) over the
//!   store's `identities` and `identity_keys` tables ([`crate::store::identities`]), with its
//!   two caches: [`recent`] (rows read in the last second) and [`key_cache`] (opened keys);
//! - [`on_demand`]: identities of users reachable before they used the bridge, derived from
//!   the master key so that a lookup writes nothing, stored at the first message;
//! - [`resolver`]: the node's own names as records, for the gateway and the `Directory`;
//! - [`error`]: what those operations fail with.

pub mod error;
pub mod key_cache;
pub mod keys;
pub mod label;
pub mod on_demand;
pub mod recent;
pub mod resolver;
pub mod scheme;
pub mod vault;

pub use crate::network_user as network;

/// The record the vault hands out is the store's row, typed.
pub use crate::store::IdentityRecord;
pub use error::IdentityError;
pub use keys::IdentityKeys;
pub use network::{MatrixUserId, Network, NetworkUserId, TelegramUserId};
pub use resolver::LocalNames;
pub use scheme::NameScheme;
pub use vault::{IdentityRef, IdentityVault, Page};
