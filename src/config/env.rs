//! Environment overrides: `DM3_BRIDGE_<SECTION>__<KEY>=value` sets `[section] key = value`.
//!
//! Why it works this way:
//! - `__` separates the levels because keys themselves contain `_` (`public_url`).
//! - Variable names are case-insensitive on our side (`DM3_BRIDGE_NODE__PUBLIC_URL` and
//!   `dm3_bridge_node__public_url` mean the same key), since keys are all lowercase.
//! - An environment value is text, but the key may be a number. The type is taken from the
//!   schema (a fully populated default [`Config`] serialized to TOML), not guessed from the
//!   text: a node name `"1234"` stays a string, `size_limit=abc` is an error that names the
//!   variable.
//! - A variable with our prefix that names no key is an error, not silently ignored: a typo in
//!   a deployment manifest should stop the node, not run it with a default. The error names the
//!   variable that was probably meant ([`super::suggest`]).
//! - Only two levels: a key inside a sub-table (`[telegram.webhook] secret`) is set by giving
//!   the whole sub-table as a TOML inline value,
//!   `DM3_BRIDGE_TELEGRAM__WEBHOOK='{ public_base_url = "https://…", secret = "…" }'`.
//! - Two variables are not config keys and are skipped here: [`MASTER_KEY_VAR`] (a secret,
//!   read only by the vault) and [`CONFIG_VAR`] (the path of the file itself).
//! - This module only reads the variables into typed values ([`Override`]); putting them into
//!   the file's tree, before anything is deserialized, is `config/merge.rs`'s.
//! - A message never quotes the value of a variable that may hold a secret: a string key takes
//!   any text, so only numbers, booleans and inline TOML values can be refused, and a refused
//!   inline value is described by the parser's message alone, without the text around it.

use std::path::PathBuf;

use dm3_bridge_matrix::{MatrixConfig, MatrixToken};

use super::suggest::closest;
use super::{AdminToken, Config, ConfigError, DatabaseUrl, ENV_PREFIX};

/// The master key, base64 of 32 bytes, when it is not in a file.
pub const MASTER_KEY_VAR: &str = "DM3_BRIDGE_MASTER_KEY";
/// The config file path, as an alternative to `--config`.
pub const CONFIG_VAR: &str = "DM3_BRIDGE_CONFIG";

/// The process environment as UTF-8 pairs. Variables whose name is not UTF-8 cannot be ours
/// and are dropped; a non-UTF-8 value of ours is kept lossily and then fails to parse.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

/// One config key the environment can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The section, e.g. `telegram`.
    pub section: String,
    /// The key in it, e.g. `token`.
    pub key: String,
    /// The variable, e.g. `DM3_BRIDGE_TELEGRAM__TOKEN`.
    pub name: String,
}

/// Every key the environment can set, by section and key: all the keys of [`Config`].
pub fn variables() -> Result<Vec<Variable>, ConfigError> {
    let schema = schema()?;
    let mut out = Vec::new();
    for (section, keys) in &schema {
        for key in keys.as_table().into_iter().flat_map(|t| t.keys()) {
            out.push(Variable { section: section.clone(), key: key.clone(), name: variable(section, key) });
        }
    }
    Ok(out)
}

/// The variable that sets `section.key`: `DM3_BRIDGE_<SECTION>__<KEY>`.
pub fn variable(section: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase())
}

/// One variable read: the key it sets and its value, typed by the schema.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// The variable as the environment spelt it.
    pub(super) var: String,
    pub(super) section: String,
    pub(super) key: String,
    pub(super) value: toml::Value,
}

/// Every `DM3_BRIDGE_*` variable of `env`, checked against `schema` and typed by it, in a
/// deterministic order (so the same environment always gives the same error first).
pub(super) fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
    schema: &toml::Table,
) -> Result<Vec<Override>, ConfigError> {
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| is_override(k)).collect();
    vars.sort();
    let mut out = Vec::with_capacity(vars.len());
    for (var, text) in vars {
        let (section, key) = key_path(&var)?;
        let Some(expected) = schema.get(&section).and_then(|s| s.as_table()).and_then(|s| s.get(&key)) else {
            let message =
                format!("there is no config key `{section}.{key}`{}", meant(schema, &section, &key));
            return Err(ConfigError::Env { var, message });
        };
        let value = parse_as(expected, &text).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message: format!("`{section}.{key}`: {message}"),
        })?;
        out.push(Override { var, section, key, value });
    }
    Ok(out)
}

/// The variable probably meant by one naming no key: the nearest key of its section; the
/// section that has this key; or, for an unknown section, the nearest section.
fn meant(schema: &toml::Table, section: &str, key: &str) -> String {
    let guess = match schema.get(section) {
        Some(_) => closest(key, keys_of(schema, section)).map(|k| (section, k)).or_else(|| {
            schema
                .iter()
                .find(|(_, keys)| keys.as_table().is_some_and(|t| t.contains_key(key)))
                .map(|(other, _)| (other.as_str(), key))
        }),
        None => closest(section, schema.keys().map(String::as_str)).and_then(|near| {
            let keys = keys_of(schema, near);
            let same = keys.iter().copied().find(|k| *k == key);
            same.or_else(|| closest(key, keys.iter().copied())).map(|k| (near, k))
        }),
    };
    match guess {
        Some((section, key)) => format!("; did you mean {}?", variable(section, key)),
        None => String::new(),
    }
}

fn keys_of<'s>(schema: &'s toml::Table, section: &str) -> Vec<&'s str> {
    schema
        .get(section)
        .and_then(|s| s.as_table())
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn is_override(var: &str) -> bool {
    let upper = var.to_ascii_uppercase();
    upper.starts_with(ENV_PREFIX) && upper != MASTER_KEY_VAR && upper != CONFIG_VAR
}

/// `DM3_BRIDGE_NODE__PUBLIC_URL` → (`node`, `public_url`).
fn key_path(var: &str) -> Result<(String, String), ConfigError> {
    let rest = var.get(ENV_PREFIX.len()..).unwrap_or_default();
    let lower = rest.to_ascii_lowercase();
    let mut parts = lower.split("__");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(section), Some(key), None) if !section.is_empty() && !key.is_empty() => {
            Ok((section.to_owned(), key.to_owned()))
        }
        _ => Err(ConfigError::Env {
            var: var.to_owned(),
            message: "expected DM3_BRIDGE_<SECTION>__<KEY>, e.g. DM3_BRIDGE_DATABASE__URL".to_owned(),
        }),
    }
}

/// Every key with a value of its type: the defaults, with optional keys filled in.
pub(super) fn schema() -> Result<toml::Table, ConfigError> {
    let mut full = Config::default();
    full.node.data_dir = Some(PathBuf::from("."));
    full.database.url = Some(DatabaseUrl::new("sqlite://schema"));
    full.names.ens_rpc_url = Some("http://schema".to_owned());
    full.admin.token = Some(AdminToken::new("schema"));
    full.admin.metrics_listen = Some("schema".to_owned());
    full.matrix = Some(MatrixConfig {
        as_token: Some(MatrixToken::new("schema")),
        hs_token: Some(MatrixToken::new("schema")),
        ..MatrixConfig::default()
    });
    full.telegram = Some(telegram_schema()?);
    full.loopback = Some(dm3_bridge_loopback::LoopbackConfig::default());
    let merged = |e: toml::ser::Error| ConfigError::Merged { message: e.to_string() };
    match toml::Value::try_from(&full).map_err(merged)? {
        toml::Value::Table(table) => Ok(table),
        _ => Err(ConfigError::Merged { message: "the config schema is not a table".to_owned() }),
    }
}

/// `[telegram]` with its optional keys set, so that each can be overridden; a variable of the
/// section creates it when the file has none (then the token must come with it, from the
/// environment too).
fn telegram_schema() -> Result<dm3_bridge_telegram::TelegramConfig, ConfigError> {
    use dm3_bridge_telegram::{BotToken, TelegramConfig, WebhookConfig, WebhookSecret};
    let url = |text: &str| {
        url::Url::parse(text).map_err(|e| ConfigError::Merged { message: format!("telegram schema: {e}") })
    };
    let mut telegram = TelegramConfig::new(BotToken::new("schema"));
    telegram.api_url = Some(url("http://schema")?);
    telegram.webhook = Some(WebhookConfig {
        public_base_url: url("https://schema")?,
        secret: WebhookSecret::new("schema"),
        max_update_bytes: 0,
    });
    Ok(telegram)
}

fn parse_as(expected: &toml::Value, text: &str) -> Result<toml::Value, String> {
    let text_trimmed = text.trim();
    match expected {
        toml::Value::String(_) => Ok(toml::Value::String(text.to_owned())),
        toml::Value::Integer(_) => text_trimmed
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected a whole number, got {text:?}")),
        toml::Value::Float(_) => text_trimmed
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got {text:?}")),
        toml::Value::Boolean(_) => match text_trimmed {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {text:?}")),
        },
        // Arrays and tables are written as TOML inline values.
        _ => {
            // The parser's message only: its rendering would quote the text, which may hold a
            // secret (the webhook's).
            let doc: toml::Table = toml::from_str(&format!("v = {text}"))
                .map_err(|e| format!("expected a TOML inline value ({})", e.message().trim()))?;
            doc.get("v").cloned().ok_or_else(|| "expected a TOML value".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_variables_are_not_keys() {
        assert!(!is_override("DM3_BRIDGE_MASTER_KEY"));
        assert!(!is_override("DM3_BRIDGE_CONFIG"));
        assert!(is_override("DM3_BRIDGE_NODE__NAME"));
        assert!(!is_override("HOME"));
    }

    #[test]
    fn a_variable_naming_no_key_is_told_the_one_meant() {
        let schema = schema().ok().unwrap_or_default();
        assert_eq!(meant(&schema, "node", "nmae"), "; did you mean DM3_BRIDGE_NODE__NAME?");
        assert_eq!(meant(&schema, "relay", "concurrency"), "; did you mean DM3_BRIDGE_ENGINE__CONCURRENCY?");
        assert_eq!(meant(&schema, "telegrm", "token"), "; did you mean DM3_BRIDGE_TELEGRAM__TOKEN?");
        assert_eq!(meant(&schema, "node", "colour"), "");
    }

    #[test]
    fn every_variable_names_its_key() {
        let all = variables().ok().unwrap_or_default();
        assert!(all.iter().any(|v| v.name == "DM3_BRIDGE_TELEGRAM__TOKEN" && v.key == "token"));
        assert!(all.iter().all(|v| v.name == variable(&v.section, &v.key)));
    }

    #[test]
    fn key_paths_split_on_double_underscore() {
        let (s, k) = key_path("DM3_BRIDGE_NODE__PUBLIC_URL").ok().unwrap_or_default();
        assert_eq!((s.as_str(), k.as_str()), ("node", "public_url"));
        assert!(key_path("DM3_BRIDGE_NODE").is_err());
        assert!(key_path("DM3_BRIDGE_A__B__C").is_err());
        assert!(key_path("DM3_BRIDGE___X").is_err());
    }
}
