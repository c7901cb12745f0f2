//! The node's configuration: one TOML file, every key overridable from the environment.
//!
//! Why this shape:
//! - The file is the operator's documentation of the deployment (`dm3-bridge init` writes a
//!   commented one), so the structs mirror its sections one to one: `[node]`, `[database]`,
//!   `[relay]`, `[engine]`, `[limits]` ([`mod@limits`]), `[log]`, `[keys]`, `[names]` ([`mod@names`]),
//!   `[identities]`/`[admin]` (`config/identities.rs`), `[rate_limits]` (`config/rate_limits.rs`),
//!   and one optional section per network: `[matrix]`, `[telegram]` and `[loopback]` (a test
//!   network), whose presence turns the network on and whose type and checks its connector crate
//!   owns (`connectors/*/src/config.rs`).
//! - Containers and systemd units configure through the environment. Every key can be set with
//!   `DM3_BRIDGE_<SECTION>__<KEY>` (double underscore between section and key, e.g.
//!   `DM3_BRIDGE_DATABASE__URL`); see [`mod@env`]. The environment wins over the file, and is
//!   put into the file's tree before anything is deserialized (`config/merge.rs`), so a
//!   required key (a token) may be in the environment alone whatever the file holds.
//! - Loading only fails on things that make the configuration unreadable (syntax, unknown keys,
//!   wrong types, a required key in neither place), with the line of the file or the variable
//!   at fault, and the key probably meant for an unknown one (`config/suggest.rs`). Semantic
//!   problems (a missing name, a bad URL) are collected by [`Config::problems`] so that
//!   `dm3-bridge check` can list all of them at once instead of one per run.
//! - Every struct has defaults, so a minimal file only needs `[node] name` and `public_url`.
//! - Units are in the key names (`size_limit` is bytes, `message_ttl_secs` seconds) because the
//!   reference delivery service reads one number in three different units (docs/protocol.md P12).
//! - The routes' body limits follow from `[relay]` and the network sections, and `[limits]` is
//!   checked against the largest; both read them from [`mod@body_limits`].
//! - `[names]` says where names are looked up: names fixed in the file (`[[names.static]]`),
//!   for air-gapped deployments and tests, then ENS through a JSON-RPC node.
//!
//! Nothing secret lives in the config: the master key is a separate file or the
//! `DM3_BRIDGE_MASTER_KEY` variable, and a password inside `database.url` is hidden by
//! [`DatabaseUrl`]'s `Debug`/`Display`.

pub mod body_limits;
mod database_url;
pub mod env;
mod identities;
pub mod limits;
mod merge;
pub mod names;
pub mod rate_limits;
mod suggest;
pub(crate) mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use database_url::{Backend, DatabaseUrl};
pub use identities::{AdminConfig, AdminToken, IdentitiesConfig, MIN_ADMIN_TOKEN_LEN};
pub use limits::LimitsConfig;
pub use names::{MAINNET_ENS_REGISTRY, NamesConfig, StaticNameConfig};
pub use rate_limits::{Rate, RateLimitsConfig};
pub use validate::Problem;

/// The prefix of every environment variable the node reads.
pub const ENV_PREFIX: &str = "DM3_BRIDGE_";

/// The whole configuration, as read from the file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub database: DatabaseConfig,
    pub relay: RelayConfig,
    pub engine: EngineConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub keys: KeysConfig,
    pub names: NamesConfig,
    pub identities: IdentitiesConfig,
    pub admin: AdminConfig,
    pub rate_limits: RateLimitsConfig,
    /// `[matrix]`: the Matrix application service (docs/configuration.md). Absent: no Matrix bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<dm3_bridge_matrix::MatrixConfig>,
    /// `[telegram]`: the Telegram bot (docs/telegram.md). Absent: no Telegram connector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<dm3_bridge_telegram::TelegramConfig>,
    /// `[loopback]`: a network with no servers behind it, for tests and diagnostics
    /// (docs/configuration.md). Absent: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback: Option<dm3_bridge_loopback::LoopbackConfig>,
}

/// `[node]`: who the node is and where it listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The ENS name of this delivery service (its `network.dm3.deliveryService` record).
    pub name: String,
    /// The base URL clients reach the node at; it goes into the delivery-service profile.
    pub public_url: String,
    /// The socket address the HTTP server binds (`host:port`).
    pub listen: String,
    /// Where the database, the sealed keys and (by default) the master key live. When absent,
    /// the directory of the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            public_url: String::new(),
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: None,
        }
    }
}

/// `[database]`: SQLite in the data directory unless a URL says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`. Absent: `sqlite://<data_dir>/dm3-bridge.sqlite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<DatabaseUrl>,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long a SQLite statement waits for a lock before failing, in milliseconds.
    pub busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 8, busy_timeout_ms: 5_000 }
    }
}

/// `[relay]`: the delivery-service behaviour clients can observe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Largest accepted envelope, in bytes of its canonical JSON (docs/protocol.md §7.3, P12).
    pub size_limit: u64,
    /// How long a stored envelope is kept, in seconds; 0 keeps it until acknowledged.
    pub message_ttl_secs: u64,
    /// What to do with a submit whose sender's profile does not resolve.
    pub unresolved_sender: UnresolvedSenderPolicy,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { size_limit: 100_000, message_ttl_secs: 0, unresolved_sender: UnresolvedSenderPolicy::Reject }
    }
}

impl RelayConfig {
    /// The TTL in milliseconds, the unit the reference DS uses on the wire
    /// (`messageTTL`, docs/protocol.md P12). Saturates instead of overflowing; validation keeps
    /// the value far below that.
    pub fn message_ttl_ms(&self) -> u64 {
        self.message_ttl_secs.saturating_mul(1_000)
    }
}

/// The policy for a sender whose DM3 profile cannot be resolved, so whose envelope signature
/// cannot be checked.
///
/// The reference DS checks no sender at all (docs/protocol.md P14). We authenticate senders at the
/// boundary (docs/design.md invariants), so `reject` is the default; `accept` stores such envelopes
/// anyway, for interoperability with senders whose names are not (yet) resolvable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnresolvedSenderPolicy {
    Reject,
    Accept,
}

/// `[engine]`: how the bridge engine works its queues (docs/engine.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Conversations each queue (inbox, outbox) runs at once. A conversation runs one message
    /// at a time whatever this is; more slots keep more conversations moving while sends wait
    /// on the network, and let the SQLite writer commit more of them in each group.
    pub concurrency: u32,
    /// Most DM3 messages one sender may have waiting for one virtual identity (an inbox
    /// conversation); a submit beyond is refused, to be retried later (docs/engine.md, "Bounds").
    pub max_pending_per_conversation: u32,
    /// Most messages one DM3 sender may have waiting for a network user who has not accepted
    /// their first contact yet (a Matrix invite not joined; docs/engine.md, "First contact").
    pub max_held_until_consent: u32,
}

/// Messages a DM3 user who writes first may leave for someone who has not accepted yet: enough
/// to introduce oneself, too few to flood a stranger.
pub const DEFAULT_MAX_HELD_UNTIL_CONSENT: u32 = 5;
/// An invite is not a mailbox: past this a first contact is a flood whatever the operator says.
pub const MAX_HELD_UNTIL_CONSENT: u32 = 100;

/// Messages one conversation of the inbox may have waiting unless configured: about 17
/// minutes of Telegram's pace of one message a second per chat.
pub const DEFAULT_MAX_PENDING_PER_CONVERSATION: u32 = 1_000;

/// Conversations a queue runs at once unless configured: enough that sends waiting on the
/// network keep two cores busy and the SQLite writer's groups large (docs/benchmarks.md).
pub const DEFAULT_ENGINE_CONCURRENCY: u32 = 64;
/// Most conversations a queue runs at once: each holds a task and, while it sends, a
/// connection to the network.
pub const MAX_ENGINE_CONCURRENCY: u32 = 1_024;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_ENGINE_CONCURRENCY,
            max_pending_per_conversation: DEFAULT_MAX_PENDING_PER_CONVERSATION,
            max_held_until_consent: DEFAULT_MAX_HELD_UNTIL_CONSENT,
        }
    }
}

/// `[log]`: human-readable by default, JSON for log shippers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `dm3_bridge=debug,sqlx=warn`, …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[keys]`: where the key material lives. Relative paths are inside the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The master key file (base64 of 32 bytes). Ignored when `DM3_BRIDGE_MASTER_KEY` is set.
    pub master_key_file: PathBuf,
    /// The node's X25519 and Ed25519 keys, sealed under the master key.
    pub node_keys_file: PathBuf,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            master_key_file: PathBuf::from("master.key"),
            node_keys_file: PathBuf::from("node-keys.sealed"),
        }
    }
}

/// Why a configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file, at the line and column the message starts with.
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    /// A variable: one naming no key, a value of the wrong type, or a section it created that
    /// lacks a required key.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// Neither: the node's own schema could not be built.
    #[error("config after applying the environment is not valid: {message}")]
    Merged { message: String },
}

impl Config {
    /// Reads `path`, sets the `DM3_BRIDGE_*` overrides found in `env` over it (the environment
    /// wins, and may give keys the file lacks, required ones too), and resolves the data directory (default: the directory of `path`; relative: relative to it).
    ///
    /// `env` is passed in rather than read here so that tests do not have to mutate the
    /// process environment.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path, env)
    }

    /// [`Config::load`] on text already read; `path` names the file in messages and anchors
    /// relative paths.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let schema = env::schema()?;
        let overrides = env::overrides(env, &schema)?;
        let mut config = merge::deserialize(text, path, &overrides, &schema)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        config.node.data_dir = Some(match config.node.data_dir.take() {
            Some(dir) if dir.is_relative() => base.join(dir),
            Some(dir) => dir,
            None => base.to_owned(),
        });
        Ok(config)
    }

    /// Every semantic problem of this configuration; empty means valid.
    pub fn problems(&self) -> Vec<Problem> {
        validate::problems(self)
    }

    /// The data directory ([`Config::load`] always sets it).
    pub fn data_dir(&self) -> &Path {
        self.node.data_dir.as_deref().unwrap_or(Path::new("."))
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> DatabaseUrl {
        match &self.database.url {
            Some(url) => url.clone(),
            None => DatabaseUrl::sqlite_file(&self.data_dir().join("dm3-bridge.sqlite")),
        }
    }

    /// The listen address, once [`Config::problems`] has found it valid.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.node.listen.parse()
    }

    /// A path from `[keys]`, resolved against the data directory.
    pub fn key_path(&self, path: &Path) -> PathBuf {
        self.data_dir().join(path)
    }
}
