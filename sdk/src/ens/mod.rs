//! ENS names: normalization, `namehash`, and the DNS wire encoding.
//!
//! Identity in DM3 is an ENS name (docs/protocol.md P15), and the offchain resolver
//! keys every record by `namehash(name)` (§12.3). The three pieces live apart:
//! - [`EnsName`] (`name.rs`): the one place a string becomes a name, with the
//!   normalization subset we can vouch for;
//! - [`namehash`], [`labelhash`], [`EnsNode`] (`namehash.rs`): pure hashing;
//! - [`dns_encode`], [`dns_decode`] (`dns.rs`): the ENSIP-10 wire form in `resolve`
//!   calldata.

mod dns;
mod name;
mod namehash;

pub use dns::{DnsError, dns_decode, dns_encode};
pub use name::{EnsName, EnsNameError, MAX_DNS_ENCODED_LEN, MAX_INPUT_LEN, MAX_LABEL_LEN};
pub use namehash::{EnsNode, labelhash, namehash};
