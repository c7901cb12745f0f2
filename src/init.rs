//! `dm3-bridge init`: a fresh data directory, and nothing else.
//!
//! It writes exactly three files:
//! - `config.toml`, commented, so the operator learns every knob from the file itself (the
//!   gateway signer is not among the files: the node makes it at its first start);
//! - `master.key` (mode 0600), unless `DM3_BRIDGE_MASTER_KEY` is set, in which case that key
//!   is used and no key file is written;
//! - `node-keys.sealed` (mode 0600): the node's fresh X25519 and Ed25519 keys sealed under
//!   the master key.
//!
//! It refuses to run if any of them exists: overwriting a master key or the node keys would
//! make existing data unreadable, or change the node's identity under its clients. All checks
//! happen before the first write; if a write still fails, the files written so far are removed,
//! so a failed `init` can simply be run again.

use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::validate::{check_name, check_public_url};
use crate::config::{KeysConfig, Problem};
use crate::node_keys::{NodeKeys, NodeKeysError};
use crate::vault::master_key::env_value;
use crate::vault::{MasterKey, MasterKeyError};

/// The file name of the config inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// What `init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    /// The node's ENS name.
    pub name: String,
    /// The URL clients reach the node at.
    pub public_url: String,
    /// The listen address; default `127.0.0.1:8080`.
    pub listen: Option<String>,
}

/// What `init` wrote, and the public keys to publish in the delivery-service profile.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub config_file: PathBuf,
    /// `None` when the master key came from the environment.
    pub master_key_file: Option<PathBuf>,
    pub node_keys_file: PathBuf,
    /// Base64 X25519 public key (`publicEncryptionKey`).
    pub encryption_public_key: String,
    /// Base64 Ed25519 public key (`publicSigningKey`).
    pub signing_public_key: String,
}

/// Why `init` did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid arguments:\n{}", list(.0))]
    Invalid(Vec<Problem>),
    #[error("{} already exists; init never overwrites (move it away to start over)", .0.display())]
    Exists(PathBuf),
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    NodeKeys(#[from] NodeKeysError),
    #[error("cannot write {}: {source}", path.display())]
    WriteConfig { path: PathBuf, source: std::io::Error },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// Creates the data directory's files; `env` is searched for `DM3_BRIDGE_MASTER_KEY`.
pub fn init(options: &InitOptions, env: &[(String, String)]) -> Result<InitReport, InitError> {
    let listen = options.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let mut problems = Vec::new();
    if let Err(message) = check_name(&options.name) {
        problems.push(Problem { key: "--name".to_owned(), message });
    }
    if let Err(message) = check_public_url(&options.public_url) {
        problems.push(Problem { key: "--public-url".to_owned(), message });
    }
    if listen.parse::<std::net::SocketAddr>().is_err() {
        problems
            .push(Problem { key: "--listen".to_owned(), message: format!("{listen:?} is not host:port") });
    }
    // A malformed environment key is an error here too, before anything is written.
    let env_key = env_value(env)
        .map(|value| MasterKey::from_base64(value, "environment variable DM3_BRIDGE_MASTER_KEY"))
        .transpose()?;
    if !problems.is_empty() {
        return Err(InitError::Invalid(problems));
    }

    create_data_dir(&options.data_dir)?;
    let data_dir = options
        .data_dir
        .canonicalize()
        .map_err(|source| InitError::DataDir { path: options.data_dir.clone(), source })?;
    let keys = KeysConfig::default();
    let config_file = data_dir.join(CONFIG_FILE);
    let master_key_file = env_key.is_none().then(|| data_dir.join(&keys.master_key_file));
    let node_keys_file = data_dir.join(&keys.node_keys_file);
    for path in [Some(&config_file), master_key_file.as_ref(), Some(&node_keys_file)].into_iter().flatten() {
        if path.exists() {
            return Err(InitError::Exists(path.clone()));
        }
    }

    let master = match env_key {
        Some(key) => key,
        None => MasterKey::generate()?,
    };
    let node_keys = NodeKeys::generate()?;
    let text = config_text(options, &listen, &data_dir, master_key_file.is_none());

    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| {
        if let Some(path) = &master_key_file {
            master.write_new_file(path)?;
            written.push(path.clone());
        }
        node_keys.write_new_file(&master, &node_keys_file)?;
        written.push(node_keys_file.clone());
        crate::new_file::write_new_file(&config_file, text.as_bytes(), 0o644)
            .map_err(|source| InitError::WriteConfig { path: config_file.clone(), source })?;
        Ok::<(), InitError>(())
    })();
    if let Err(e) = result {
        for path in written {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }

    Ok(InitReport {
        config_file,
        master_key_file,
        node_keys_file,
        encryption_public_key: STANDARD.encode(node_keys.encryption_public_key().as_bytes()),
        signing_public_key: STANDARD.encode(node_keys.signing_public_key().as_bytes()),
    })
}

/// Creates the directory (0700: it holds the database and key files) if it does not exist.
fn create_data_dir(path: &Path) -> Result<(), InitError> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| InitError::DataDir { path: path.to_owned(), source })
}

/// A TOML string literal (quoted and escaped).
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The commented config file.
fn config_text(options: &InitOptions, listen: &str, data_dir: &Path, master_key_from_env: bool) -> String {
    let mut s = String::new();
    let data_dir = data_dir.to_string_lossy();
    let sqlite = format!("sqlite://{data_dir}/dm3-bridge.sqlite");
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        r#"# dm3-bridge configuration, written by `dm3-bridge init`.
#
# Every key can be overridden by an environment variable DM3_BRIDGE_<SECTION>__<KEY>
# (double underscore between section and key), e.g. DM3_BRIDGE_DATABASE__URL or
# DM3_BRIDGE_LOG__FORMAT. The environment wins over this file.
# Validate with: dm3-bridge --config <this file> check

[node]
# The ENS name of this delivery service. Its network.dm3.deliveryService record must
# publish this node's public keys (printed by init, and by `check`) and public_url.
name = {name}
# The base URL DM3 clients reach this node at.
public_url = {public_url}
# The address the HTTP server binds. For public use, put a TLS-terminating proxy in front.
listen = {listen}
# The database, the sealed node keys and the master key file live here.
data_dir = {data_dir_q}

[database]
# Default: a SQLite file in data_dir (WAL mode; every acknowledged write is fsynced).
# PostgreSQL instead: url = "postgres://USER@HOST/DBNAME" (pass a password through
# DM3_BRIDGE_DATABASE__URL rather than this file).
# url = {sqlite}
max_connections = 8
# SQLite: how long a statement waits for a lock, in milliseconds.
busy_timeout_ms = 5000

[relay]
# The largest envelope accepted, in bytes of its JSON (the reference default is 100000).
size_limit = 100000
# How long stored envelopes are kept, in SECONDS; 0 keeps them until the receiver
# acknowledges them. Clients see this as messageTTL in milliseconds.
message_ttl_secs = 0
# A sender whose DM3 profile does not resolve cannot be authenticated:
# "reject" refuses the envelope, "accept" stores it anyway.
unresolved_sender = "reject"

[engine]
# Conversations each bridge queue (inbox, outbox) runs at once; each conversation still
# runs one message at a time, in order.
concurrency = 64

[limits]
# What one client, or all together, can hold of the node (docs/relay.md, "Limits").
# Connections served at once; beyond, new ones wait in the kernel's listen queue.
max_connections = 512
# Connections at once from one IP address; more are closed at once. 0 = no cap (behind a
# reverse proxy every client has the proxy's address: set 0 or max_connections).
max_connections_per_ip = 256
# Seconds for a request head to arrive (on HTTP/1 also the wait for the next request on a
# kept-alive connection), and before a connection with no request in flight is closed.
header_timeout_secs = 10
idle_timeout_secs = 60
# A request body must arrive within body_timeout_secs plus one second per
# body_min_bytes_per_sec bytes of its length; else 408.
body_timeout_secs = 30
body_min_bytes_per_sec = 65536
# The largest request head, in bytes.
max_header_bytes = 65536
# HTTP/2: requests at once on one connection; seconds between pings (0 = none).
http2_max_streams = 64
http2_ping_secs = 30
# Request body bytes held in memory at once by one connection and by the whole node; a
# request beyond is answered 503 with Retry-After. Both must hold the largest body a route
# accepts (16 MiB: a full acknowledgement list).
connection_body_bytes = 33554432
total_body_bytes = 67108864
# Live delivery (/socket.io/): logged-in sockets at once, in all and per account; each
# also holds a connection. 0 sockets = no live delivery.
max_live_sockets = 256
max_live_sockets_per_account = 8

# Names this node resolves from this file instead of ENS (air-gapped setups). Repeat the
# block per name; `profile` is the network.dm3.profile record as it would be published.
# [[names.static]]
# name = "alice.eth"
# address = "0x..."
# profile = 'data:application/json,{{"profile":{{...}},"signature":"0x..."}}'

[log]
# "text" for people, "json" for log shippers.
format = "text"
# A tracing filter: info, debug, or per module, e.g. "dm3_bridge=debug,sqlx=warn".
level = "info"

[keys]
"#,
        name = quoted(&options.name),
        public_url = quoted(&options.public_url),
        listen = quoted(listen),
        data_dir_q = quoted(&data_dir),
        sqlite = quoted(&sqlite),
    );
    if master_key_from_env {
        s.push_str(
            "# The master key was taken from DM3_BRIDGE_MASTER_KEY at init: set the same value\n\
             # when running the node. (The file below is only read when that variable is unset.)\n",
        );
    } else {
        s.push_str(
            "# The master key that seals the node keys: base64 of 32 bytes, mode 0600. Back it up\n\
             # apart from the data: without it the sealed keys cannot be opened.\n\
             # DM3_BRIDGE_MASTER_KEY (base64), when set, is used instead of this file.\n",
        );
    }
    s.push_str(
        "master_key_file = \"master.key\"\n\
         # The node's X25519 and Ed25519 keys, sealed under the master key.\n\
         node_keys_file = \"node-keys.sealed\"\n",
    );
    s.push_str(NAMES_SECTION);
    s.push_str(IDENTITIES_SECTIONS);
    s.push_str(RATE_LIMITS_SECTION);
    s.push_str(TELEGRAM_SECTION);
    s
}

/// The `[names]` part of the commented config: ENS off until the operator names a chain node.
const NAMES_SECTION: &str = r#"
[names]
# JSON-RPC URL of an Ethereum node; without it, only the [[names.static]] entries resolve.
# ens_rpc_url = "https://ethereum-rpc.example.org"
ens_registry = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
# Answers (also "no such record") are reused for this many seconds; 0 disables the cache.
cache_ttl_secs = 300
cache_max_entries = 10000
# A failed lookup is answered from the cache this long, so callers cannot make the node
# repeat failing work; 0 asks again every time.
failure_cache_secs = 30
# Each request to the chain node, a CCIP-read gateway or a profile link: time and size bounds.
request_timeout_ms = 5000
max_response_bytes = 262144
# One whole lookup (several requests), and how many lookups may be out at once.
lookup_timeout_ms = 10000
max_concurrent_lookups = 32
# Gateways and profile links come from whoever owns a name: refuse internal addresses.
allow_private_addresses = false

# Names answered from this file instead of ENS (air-gapped setups, tests):
# [[names.static]]
# name = "alice.example.eth"
# address = "0x..."
# profile = "data:application/json,{...}"
# delivery_service = "data:application/json,{...}"
"#;

/// `[rate_limits]`: per-client budgets of the unauthenticated routes (docs/security.md), and the
/// budgets of DM3 senders and bridged users (docs/relay.md).
const RATE_LIMITS_SECTION: &str = r#"
[rate_limits]
# Per client (IP address, IPv6 /64): a burst, then per_minute sustained. 0 = no limit.
auth_per_minute = 120
auth_burst = 20
profile_per_minute = 30
profile_burst = 10
rpc_per_minute = 30000
rpc_burst = 1000
ccip_per_minute = 6000
ccip_burst = 200
names_lookup_per_minute = 300
names_lookup_burst = 30
# Per DM3 sender, envelopes to the bridged Matrix and Telegram users together; and per bridged
# user, from all DM3 senders together (docs/relay.md, "Block and rate limits"). 0 = no limit.
dm3_sender_per_minute = 60
dm3_sender_burst = 20
bridged_user_per_minute = 120
bridged_user_burst = 30
# Behind a reverse proxy that sets X-Forwarded-For, count clients by its last entry.
trust_forwarded_for = false
"#;

/// `[identities]` and `[admin]`, with their defaults (docs/names.md explains the setup).
const IDENTITIES_SECTIONS: &str = r#"
[identities]
# The ENS name the bridge's virtual identities live under, e.g. "bridge.example.eth";
# empty disables them. Its resolver on chain must be an OffchainResolver that points at
# <public_url>/ccip/{sender}/{data}.json and trusts the gateway signer (see docs/names.md;
# `dm3-bridge identity gateway` prints both).
parent = ""
# Sub-names per network: tg-12345.tg.<parent>, <escaped Matrix id>.mx.<parent>.
telegram_label = "tg"
matrix_label = "mx"
# The key that signs gateway answers, sealed under the master key; made at the first start.
gateway_signer_file = "gateway-signer.sealed"
# How long a signed gateway answer stays valid, in seconds.
answer_ttl_secs = 600

[admin]
# The bearer token of the admin API under /admin (at least 16 characters). Without one the
# admin API is disabled. Prefer DM3_BRIDGE_ADMIN__TOKEN to writing it here.
# token = "..."
# GET /metrics needs the admin token too (Prometheus: authorization credentials), unless this
# is true.
public_metrics = false
# A second listener serving only /metrics, without the token (keep it private):
# metrics_listen = "127.0.0.1:9102"
"#;

/// `[telegram]`, commented out: a fresh node runs without Telegram (docs/telegram.md).
const TELEGRAM_SECTION: &str = r#"
# The Telegram bot (docs/telegram.md). Uncomment to run it; it needs identities.parent, since
# every Telegram user who starts the bot gets a DM3 name tg-<id>.<telegram_label>.<parent>.
# [telegram]
# The token from @BotFather. Prefer DM3_BRIDGE_TELEGRAM__TOKEN to writing it here.
# (With the variable set, leave this key commented out.)
# token = "123456789:AAE..."
# "polling" needs no public URL; "webhook" needs [telegram.webhook] below.
# mode = "polling"
# poll_timeout_secs = 25
# request_timeout_secs = 120
# How a relayed message names its DM3 sender.
# sender_format = "{sender}: {body}"
# Who may use the bridge: everyone, or { allow = "users", users = [12345, 67890] }.
# link_policy = { allow = "everyone" }
#
# [telegram.webhook]
# public_base_url = "https://bridge.example.org"
# 16 to 256 of A-Z a-z 0-9 _ -, e.g. `openssl rand -hex 32`.
# secret = "..."
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::{Config, RelayConfig};

    #[test]
    fn written_config_reads_back_with_the_given_values_and_defaults() {
        let options = InitOptions {
            data_dir: PathBuf::from("/srv/dm3 \"x\""),
            name: "relay.example.eth".to_owned(),
            public_url: "https://relay.example.org".to_owned(),
            listen: None,
        };
        let text = config_text(&options, "127.0.0.1:8080", &options.data_dir, false);
        let config = Config::from_toml(&text, Path::new("/x/config.toml"), []).unwrap();
        assert_eq!(config.node.name, "relay.example.eth");
        assert_eq!(config.node.public_url, "https://relay.example.org");
        assert_eq!(config.data_dir(), Path::new("/srv/dm3 \"x\""));
        assert_eq!(config.relay, RelayConfig::default());
        assert_eq!(config.limits, crate::config::LimitsConfig::default());
        assert_eq!(config.database.url, None);
        assert_eq!(config.identities, crate::config::IdentitiesConfig::default());
        assert_eq!(config.admin.token, None);
        assert_eq!(config.telegram, None);
        assert!(text.contains("# [telegram]"));
    }
}
