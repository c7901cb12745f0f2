//! Who a virtual identity stands for: a network and that network's user id, validated once.
//!
//! The types are the SDK's ([`dm3::bridge_names::user_id`]): the name scheme that turns a user
//! into a name is pure and DM3 clients compute it too (`dm3 name-for`), so the ids it reads
//! live below both. This module is where the service takes them from, below both the
//! identities (`crate::identities::network` is this module) and the store, whose identity rows
//! hold these ids, so that neither leans on the other.

pub use dm3::bridge_names::user_id::{
    MAX_MATRIX_ID_LEN, MatrixUserId, NetworkUserId, TelegramUserId, UserIdError,
};
/// The network of an identity: the SDK's one list of networks ([`dm3::network`]).
pub use dm3::network::{Network, UnknownNetwork};
