//! Semantic validation: every problem of a configuration, each tied to its key.
//!
//! Collected rather than returned on the first failure so that `dm3-bridge check` shows the
//! operator the whole list in one go. The messages say what is expected, with an example,
//! because the reader is someone editing a file, not a developer reading a backtrace.

use std::collections::HashSet;
use std::fmt;

use dm3::crypto::eth::parse_address;
use dm3::ens::EnsName;
use dm3::text_record::ProfileRecord;
use dm3_bridge_connector::ConfigProblem;

use super::{Backend, Config, MAX_ENGINE_CONCURRENCY, NamesConfig};

/// Most the reference DS ever accepts in one request (`express.json({limit:'50mb'})`,
/// docs/protocol.md §9); a larger envelope limit could never be reached.
const MAX_SIZE_LIMIT: u64 = 50 * 1024 * 1024;
/// 100 years: long enough for "practically forever", short enough to stay far from overflow
/// when converted to milliseconds.
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;
/// A day: a name answer older than that is stale by any measure, and the bound keeps
/// `Instant + ttl` far from overflow.
const MAX_NAME_CACHE_TTL_SECS: u64 = 24 * 3600;
/// Entries are a few hundred bytes; a million is a few hundred MB, already too much for a cache.
const MAX_NAME_CACHE_ENTRIES: usize = 1_000_000;
/// A minute per request: beyond that a lookup is better reported as failed.
const MAX_NAME_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// A failure is remembered to stop repeated work, not to hide a name that recovered.
const MAX_NAME_FAILURE_CACHE_SECS: u64 = 3_600;
/// A whole lookup is a few requests; past two minutes a caller has long given up.
const MAX_NAME_LOOKUP_TIMEOUT_MS: u64 = 120_000;
const MAX_CONCURRENT_LOOKUPS: usize = 4_096;
/// 16 MiB: a profile is under 1 KiB and a gateway answer a few KiB.
const MAX_NAME_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `node.public_url`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |key: &str, message: String| out.push(Problem { key: key.to_owned(), message });

    if let Err(message) = check_name(&config.node.name) {
        problem("node.name", message);
    }
    if let Err(message) = check_public_url(&config.node.public_url) {
        problem("node.public_url", message);
    }
    if config.node.listen.parse::<std::net::SocketAddr>().is_err() {
        problem(
            "node.listen",
            format!(
                "{:?} is not a socket address; expected host:port, e.g. 127.0.0.1:8080 or [::]:8080",
                config.node.listen
            ),
        );
    }
    let data_dir = config.data_dir();
    if !data_dir.is_dir() {
        problem(
            "node.data_dir",
            format!(
                "{} is not a directory (create it with `dm3-bridge init --data-dir {}`)",
                data_dir.display(),
                data_dir.display()
            ),
        );
    }

    if let Some(url) = &config.database.url {
        match url.backend() {
            None => problem(
                "database.url",
                format!("{url} is not supported; expected sqlite://PATH or postgres://USER@HOST/DB"),
            ),
            Some(Backend::Postgres) => {
                if url::Url::parse(url.expose()).map_or(true, |u| u.host().is_none()) {
                    problem(
                        "database.url",
                        format!("{url} is not a valid PostgreSQL URL (postgres://USER@HOST/DB)"),
                    );
                }
            }
            Some(Backend::Sqlite) => {}
        }
    }
    if !(1..=1_000).contains(&config.database.max_connections) {
        problem(
            "database.max_connections",
            format!("{} is out of range; expected 1 to 1000", config.database.max_connections),
        );
    }
    if config.database.busy_timeout_ms > 600_000 {
        problem(
            "database.busy_timeout_ms",
            "more than 10 minutes of lock waiting is surely a mistake".to_owned(),
        );
    }

    if !(1..=MAX_SIZE_LIMIT).contains(&config.relay.size_limit) {
        problem(
            "relay.size_limit",
            format!(
                "{} bytes is out of range; expected 1 to {MAX_SIZE_LIMIT} (the reference default is 100000)",
                config.relay.size_limit
            ),
        );
    }
    if config.relay.message_ttl_secs > MAX_TTL_SECS {
        problem(
            "relay.message_ttl_secs",
            format!(
                "{} seconds is more than 100 years; use 0 to keep envelopes until acknowledged",
                config.relay.message_ttl_secs
            ),
        );
    }

    for (class, rate) in config.rate_limits.classes() {
        if rate.per_minute > 0 && rate.burst == 0 {
            problem(
                &format!("rate_limits.{class}_burst"),
                format!(
                    "0 lets no call through while rate_limits.{class}_per_minute is set; use at least 1 (or {class}_per_minute = 0 for no limit)"
                ),
            );
        }
    }
    if !(1..=MAX_ENGINE_CONCURRENCY).contains(&config.engine.concurrency) {
        problem(
            "engine.concurrency",
            format!("{} is out of range; expected 1 to {MAX_ENGINE_CONCURRENCY}", config.engine.concurrency),
        );
    }
    if !(1..=crate::config::MAX_HELD_UNTIL_CONSENT).contains(&config.engine.max_held_until_consent) {
        problem(
            "engine.max_held_until_consent",
            format!(
                "{} is out of range: 1 to {} messages may wait for someone who has not accepted yet",
                config.engine.max_held_until_consent,
                crate::config::MAX_HELD_UNTIL_CONSENT
            ),
        );
    }
    if config.engine.max_pending_per_conversation == 0 {
        problem(
            "engine.max_pending_per_conversation",
            "0 would refuse every DM3 message to a bridged user; use at least 1".to_owned(),
        );
    }

    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        problem(
            "log.level",
            format!(
                "{:?} is not a log filter ({e}); expected e.g. info, debug or dm3_bridge=debug,sqlx=warn",
                config.log.level
            ),
        );
    }

    if config.keys.master_key_file.as_os_str().is_empty() {
        problem("keys.master_key_file", "must not be empty".to_owned());
    }
    if config.keys.node_keys_file.as_os_str().is_empty() {
        problem("keys.node_keys_file", "must not be empty".to_owned());
    }
    names_problems(&config.names, &mut problem);
    out.extend(super::limits::problems(&config.limits, super::body_limits::largest_body_limit(config)));
    out.extend(super::identities::problems(&config.identities, &config.admin));
    if let Some(matrix) = &config.matrix {
        out.extend(network_problems(
            "matrix",
            matrix.problems(),
            &config.identities.parent,
            "must be set when [matrix] is configured: every Matrix user who writes to DM3 gets a DM3 \
             name under it (e.g. bridge.example.eth)",
        ));
    }
    if let Some(telegram) = &config.telegram {
        out.extend(network_problems(
            "telegram",
            telegram.problems(),
            &config.identities.parent,
            "must be set when [telegram] is: every Telegram user gets a DM3 name under it \
             (e.g. bridge.example.eth)",
        ));
    }
    if let Some(loopback) = &config.loopback {
        out.extend(network_problems(
            "loopback",
            loopback.problems(),
            &config.identities.parent,
            "must be set when [loopback] is: its users get DM3 names under it (e.g. bridge.example.eth)",
        ));
    }
    out
}

/// A network's own checks of its section, keyed under `section.`, and the one it cannot make:
/// every user of a network gets a virtual identity, so identities must be enabled.
fn network_problems(
    section: &str,
    problems: Vec<ConfigProblem>,
    parent: &str,
    no_parent: &str,
) -> Vec<Problem> {
    let mut out: Vec<Problem> = problems
        .into_iter()
        .map(|p| Problem { key: format!("{section}.{}", p.key), message: p.message })
        .collect();
    if parent.is_empty() {
        out.push(Problem { key: "identities.parent".to_owned(), message: no_parent.to_owned() });
    }
    out
}

fn names_problems(names: &NamesConfig, problem: &mut impl FnMut(&str, String)) {
    if let Some(url) = &names.ens_rpc_url {
        let example = "expected the http(s) JSON-RPC URL of an Ethereum node, e.g. http://127.0.0.1:8545";
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => problem("names.ens_rpc_url", format!("{url:?} is not usable; {example}")),
        }
    }
    if parse_address(&names.ens_registry).is_err() {
        problem(
            "names.ens_registry",
            format!("{:?} is not an address; expected 0x and 40 hex digits", names.ens_registry),
        );
    }
    if names.cache_ttl_secs > MAX_NAME_CACHE_TTL_SECS {
        problem(
            "names.cache_ttl_secs",
            format!("{} seconds is more than a day; use 0 to disable the cache", names.cache_ttl_secs),
        );
    }
    if !(1..=MAX_NAME_CACHE_ENTRIES).contains(&names.cache_max_entries) {
        problem(
            "names.cache_max_entries",
            format!("{} is out of range; expected 1 to {MAX_NAME_CACHE_ENTRIES}", names.cache_max_entries),
        );
    }
    if !(1..=MAX_NAME_REQUEST_TIMEOUT_MS).contains(&names.request_timeout_ms) {
        problem(
            "names.request_timeout_ms",
            format!(
                "{} ms is out of range; expected 1 to {MAX_NAME_REQUEST_TIMEOUT_MS}",
                names.request_timeout_ms
            ),
        );
    }
    if names.failure_cache_secs > MAX_NAME_FAILURE_CACHE_SECS {
        problem(
            "names.failure_cache_secs",
            format!(
                "{} seconds is more than {MAX_NAME_FAILURE_CACHE_SECS}: a failure should not hide a name for long",
                names.failure_cache_secs
            ),
        );
    }
    if !(1..=MAX_NAME_LOOKUP_TIMEOUT_MS).contains(&names.lookup_timeout_ms) {
        problem(
            "names.lookup_timeout_ms",
            format!(
                "{} ms is out of range; expected 1 to {MAX_NAME_LOOKUP_TIMEOUT_MS}",
                names.lookup_timeout_ms
            ),
        );
    }
    if !(1..=MAX_CONCURRENT_LOOKUPS).contains(&names.max_concurrent_lookups) {
        problem(
            "names.max_concurrent_lookups",
            format!(
                "{} is out of range; expected 1 to {MAX_CONCURRENT_LOOKUPS}",
                names.max_concurrent_lookups
            ),
        );
    }
    if !(1..=MAX_NAME_RESPONSE_BYTES).contains(&names.max_response_bytes) {
        problem(
            "names.max_response_bytes",
            format!(
                "{} bytes is out of range; expected 1 to {MAX_NAME_RESPONSE_BYTES}",
                names.max_response_bytes
            ),
        );
    }
    let mut seen = HashSet::new();
    for (index, entry) in names.static_names.iter().enumerate() {
        let key = |field: &str| format!("names.static[{index}].{field}");
        match EnsName::parse(&entry.name) {
            Ok(name) if name.as_str() != entry.name => problem(
                &key("name"),
                format!("{:?} is not normalized; write it as {:?}", entry.name, name.as_str()),
            ),
            Ok(name) if name.is_root() => problem(&key("name"), "must not be empty".to_owned()),
            Ok(name) => {
                if !seen.insert(name) {
                    problem(&key("name"), format!("{:?} is listed twice", entry.name));
                }
            }
            Err(e) => problem(&key("name"), format!("{:?} is not an ENS name: {e}", entry.name)),
        }
        if let Some(address) = &entry.address
            && parse_address(address).is_err()
        {
            problem(&key("address"), format!("{address:?} is not an address; expected 0x and 40 hex digits"));
        }
        for (field, record) in [("profile", &entry.profile), ("delivery_service", &entry.delivery_service)] {
            if let Some(Err(e)) = record.as_deref().map(ProfileRecord::parse) {
                problem(
                    &key(field),
                    format!(
                        "is not a DM3 record ({e}); expected data:application/json,{{...}} or an https link"
                    ),
                );
            }
        }
    }
}

/// A plausible normalized ENS name. Full ENSIP-15 normalization belongs to the protocol
/// library; this catches the mistakes an operator makes (empty, spaces, capitals, no dot).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let example = "expected a normalized ENS name such as relay.example.eth";
    if name.is_empty() {
        return Err(format!("must be set; {example}"));
    }
    if name.len() > 255 {
        return Err(format!("is longer than 255 bytes; {example}"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{name:?} contains whitespace; {example}"));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!("{name:?} has capital letters; {example}"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return Err(format!("{name:?} is not a dotted name; {example}"));
    }
    Ok(())
}

/// An absolute http(s) base URL without query or fragment.
pub(crate) fn check_public_url(text: &str) -> Result<(), String> {
    let example = "expected the URL clients reach the node at, e.g. https://relay.example.org";
    if text.is_empty() {
        return Err(format!("must be set; {example}"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e}); {example}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("{text:?} is not http(s); {example}"));
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host; {example}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment; {example}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("relay.example.eth").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Relay.eth").is_err());
        assert!(check_name("relay").is_err());
        assert!(check_name("a..eth").is_err());
        assert!(check_name("a b.eth").is_err());
    }

    #[test]
    fn public_urls() {
        assert!(check_public_url("https://relay.example.org").is_ok());
        assert!(check_public_url("http://127.0.0.1:8080/ds").is_ok());
        assert!(check_public_url("ftp://x.org").is_err());
        assert!(check_public_url("relay.example.org").is_err());
        assert!(check_public_url("https://x.org/?a=b").is_err());
    }
}

#[cfg(test)]
mod matrix_section {
    //! `[matrix]` as the service lists its problems: the connector's checks under `matrix.`.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::{Path, PathBuf};

    use dm3_bridge_matrix::{MatrixConfig, MatrixToken};

    use super::super::{Config, Problem};

    fn problems(matrix: &MatrixConfig) -> Vec<Problem> {
        super::network_problems("matrix", matrix.problems(), "bridge.example.eth", "")
    }

    fn valid() -> MatrixConfig {
        MatrixConfig {
            homeserver_url: "http://127.0.0.1:8008".to_owned(),
            server_name: "example.org".to_owned(),
            bridge_url: "http://127.0.0.1:8080".to_owned(),
            as_token: Some(MatrixToken::new("a".repeat(64))),
            hs_token: Some(MatrixToken::new("b".repeat(64))),
            ..MatrixConfig::default()
        }
    }

    #[test]
    fn a_complete_section_is_valid() {
        assert_eq!(problems(&valid()), []);
    }

    #[test]
    fn every_bad_value_is_named_by_its_key() {
        let bad = MatrixConfig {
            homeserver_url: "ftp://x".to_owned(),
            server_name: "not a server".to_owned(),
            bridge_url: String::new(),
            as_token: None,
            hs_token: Some(MatrixToken::new("short")),
            registration_file: PathBuf::new(),
            registration_id: "a b".to_owned(),
            bot_localpart: "_dm3_bot".to_owned(),
            ghost_prefix: "_dm3_".to_owned(),
            allow: vec!["example.org".to_owned(), "@nobody".to_owned()],
            reachable: vec!["*".to_owned(), "not a server".to_owned()],
            max_media_bytes: 0,
            ping_timeout_secs: 100_000,
            encryption: dm3_bridge_matrix::Encryption::Require,
            undecryptable_after_secs: 0,
            sender_trust: dm3_bridge_matrix::SenderTrust::CrossSigned,
            command_prefix: "!d m3".to_owned(),
        };
        let keys: Vec<String> = problems(&bad).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "matrix.homeserver_url",
                "matrix.bridge_url",
                "matrix.server_name",
                "matrix.as_token",
                "matrix.hs_token",
                "matrix.registration_file",
                "matrix.registration_id",
                "matrix.bot_localpart",
                "matrix.allow[1]",
                "matrix.reachable[1]",
                "matrix.max_media_bytes",
                "matrix.command_prefix",
                "matrix.undecryptable_after_secs",
                "matrix.ping_timeout_secs",
            ]
        );
        let same = MatrixConfig { hs_token: valid().as_token, ..valid() };
        assert_eq!(problems(&same)[0].key, "matrix.hs_token");
    }

    #[test]
    fn tokens_never_printed() {
        let config = valid();
        let shown =
            format!("{config:?} {}", config.as_token.as_ref().map(ToString::to_string).unwrap_or_default());
        assert!(!shown.contains("aaaa") && !shown.contains("bbbb"), "{shown}");
    }

    #[test]
    fn tokens_and_the_allow_list_come_from_the_environment_too() {
        let file = "[matrix]\nhomeserver_url = \"http://127.0.0.1:8008\"\nserver_name = \"example.org\"\nbridge_url = \"http://127.0.0.1:8080\"\n";
        let env = [
            ("DM3_BRIDGE_MATRIX__AS_TOKEN".to_owned(), "a".repeat(32)),
            ("DM3_BRIDGE_MATRIX__HS_TOKEN".to_owned(), "b".repeat(32)),
            ("DM3_BRIDGE_MATRIX__ALLOW".to_owned(), r#"["@carol:elsewhere.org", "friends.org"]"#.to_owned()),
        ];
        let config = Config::from_toml(file, Path::new("config.toml"), env).unwrap();
        let matrix = config.matrix.unwrap();
        assert_eq!(matrix.as_token.unwrap().expose(), "a".repeat(32));
        assert_eq!(matrix.allow, ["@carol:elsewhere.org", "friends.org"]);
        assert_eq!(matrix.registration_file, PathBuf::from("registration.yaml"), "defaults fill the rest");

        let without = Config::from_toml("", Path::new("config.toml"), []).unwrap();
        assert_eq!(without.matrix, None, "no section, no bridge");
        let only_env = [("DM3_BRIDGE_MATRIX__SERVER_NAME".to_owned(), "example.org".to_owned())];
        let config = Config::from_toml("", Path::new("config.toml"), only_env).unwrap();
        let keys: Vec<String> = problems(&config.matrix.unwrap()).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["matrix.homeserver_url", "matrix.bridge_url", "matrix.as_token", "matrix.hs_token"]
        );
    }

    #[test]
    fn the_policy_defaults_to_the_own_server() {
        let policy = valid().user_policy().unwrap();
        assert!(policy.allows(&ruma::UserId::parse("@alice:example.org").unwrap()));
        assert!(!policy.allows(&ruma::UserId::parse("@alice:elsewhere.org").unwrap()));
        let listed = MatrixConfig { allow: vec!["@carol:elsewhere.org".to_owned()], ..valid() };
        let policy = listed.user_policy().unwrap();
        assert!(policy.allows(&ruma::UserId::parse("@carol:elsewhere.org").unwrap()));
        assert!(!policy.allows(&ruma::UserId::parse("@alice:example.org").unwrap()));
    }
}
