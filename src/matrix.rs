//! `dm3-bridge generate-registration`: the homeserver's registration file and the matching
//! `[matrix]` tokens ([`generate`]).
//!
//! A command of its own, run before the node starts; the Matrix network in the running node is
//! [`crate::bridges::matrix`].

pub mod generate;
