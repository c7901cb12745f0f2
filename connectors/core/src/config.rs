//! What a connector says about its own config section.
//!
//! Each connector crate owns its section of the service's file (`[matrix]`, `[telegram]`, …):
//! its type, its defaults and its checks. Loading only fails on syntax and types; the semantic
//! problems are listed, each tied to its key, so that `dm3-bridge check` shows the operator all
//! of them at once. The key is relative to the section (`webhook.secret`); the service puts the
//! section's name in front when it lists them with its own.

use std::fmt;

/// One thing wrong with a connector's section, tied to its key (relative to the section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key under the section, e.g. `webhook.secret`.
    pub key: String,
    /// What is wrong and what is expected, for a person editing the file.
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}
