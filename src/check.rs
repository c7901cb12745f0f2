//! `dm3-bridge check`: everything wrong with a configuration, in one list.
//!
//! It checks what can be checked without side effects: the file parses, every key is valid
//! ([`Config::problems`]), the master key is found and opens the sealed node keys and the gateway
//! signer (noting its address, which the parent name's resolver must trust), and what each
//! configured network can check on its own (the Matrix registration file agrees with
//! `[matrix]`). It does not
//! connect to the database (a database that is down is an outage, not a config error; `GET
//! /ready` reports it) and writes nothing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::crypto::eth::checksum;

use crate::config::Config;
use crate::gateway::{GatewaySigner, GatewaySignerError};
use crate::node_keys::NodeKeys;
use crate::vault::MasterKey;

/// The outcome of a check: problems (empty means valid) and informational notes.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the config file at `path` with the environment `env`.
pub fn check(path: &Path, env: &[(String, String)]) -> CheckReport {
    let mut report = CheckReport::default();
    let config = match Config::load(path, env.iter().cloned()) {
        Ok(config) => config,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    report.problems.extend(config.problems().iter().map(ToString::to_string));
    for network in crate::bridges::registry().iter().filter(|network| network.configured(&config)) {
        for finding in network.check(&config) {
            match finding {
                Ok(note) => report.notes.push(note),
                Err(problem) => report.problems.push(problem),
            }
        }
    }
    let url = config.database_url();
    report.notes.push(format!(
        "database: {url} ({})",
        url.backend().map_or("unsupported".to_owned(), |b| b.to_string())
    ));
    if !config.data_dir().is_dir() {
        // Already reported; the key files live there, so there is nothing more to check.
        return report;
    }
    match MasterKey::resolve(&config, env) {
        Err(e) => report.problems.push(format!("keys: {e}")),
        Ok((master, source)) => {
            report.notes.push(format!("master key: {source}"));
            let path = config.key_path(&config.keys.node_keys_file);
            match NodeKeys::read_file(&master, &path) {
                Err(e) => report.problems.push(format!("keys: {e}")),
                Ok(keys) => report.notes.push(format!(
                    "node keys: open; publicEncryptionKey {} publicSigningKey {}",
                    STANDARD.encode(keys.encryption_public_key().as_bytes()),
                    STANDARD.encode(keys.signing_public_key().as_bytes()),
                )),
            }
            let path = config.key_path(&config.identities.gateway_signer_file);
            match GatewaySigner::read_file(&master, &path) {
                Ok(signer) => report.notes.push(format!(
                    "gateway signer: open; register {} on the parent name's OffchainResolver",
                    checksum(&signer.address())
                )),
                Err(GatewaySignerError::Missing { .. }) => {
                    report.notes.push("gateway signer: not made yet (the first start makes it)".to_owned())
                }
                Err(e) => report.problems.push(format!("keys: {e}")),
            }
        }
    }
    report
}
