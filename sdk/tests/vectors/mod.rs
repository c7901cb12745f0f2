//! The reference vectors (`vectors.json`, made by the npm `@dm3-org` 1.7.1 libraries).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use serde_json::Value;

/// The whole vector file, parsed once.
pub fn all() -> &'static Value {
    static VECTORS: OnceLock<Value> = OnceLock::new();
    VECTORS.get_or_init(|| serde_json::from_str(include_str!("vectors.json")).expect("vectors.json parses"))
}

/// The value at a `/`-separated JSON pointer, e.g. `"users/alice/keys"`.
pub fn at(path: &str) -> &'static Value {
    all().pointer(&format!("/{path}")).unwrap_or_else(|| panic!("no vector at {path}"))
}

/// The string at a path.
pub fn str_at(path: &str) -> &'static str {
    at(path).as_str().unwrap_or_else(|| panic!("vector at {path} is not a string"))
}
