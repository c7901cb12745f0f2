//! Test-only helpers shared by the integration tests (`mod support;`).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod cli;
pub mod oracle;
