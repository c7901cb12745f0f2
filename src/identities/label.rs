//! Network user ids ↔ ENS labels: reversible, collision-free, ENS-normalized.
//!
//! The escaping is the SDK's ([`dm3::bridge_names::label`]; `docs/names.md` specifies it), one
//! implementation for the node and for the DM3 clients that compute a contact's name
//! (`dm3 name-for`). Re-exported here so the identities read it where they always did.

pub use dm3::bridge_names::label::*;
