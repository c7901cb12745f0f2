//! Configuration: the file, the `DM3_BRIDGE_*` overrides (every key, required ones too, from the
//! environment alone), validation, old files and misspelt keys, and `dm3-bridge check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dm3_bridge::config::env::{Variable, variables};
use dm3_bridge::config::{
    Backend, Config, ConfigError, LimitsConfig, LogFormat, MAINNET_ENS_REGISTRY, StaticNameConfig,
    UnresolvedSenderPolicy,
};
use dm3_bridge::matrix::generate::{GenerateOptions, generate_registration};
use support::node::init_data_dir;

const MINIMAL: &str = r#"
[node]
name = "relay.example.eth"
public_url = "https://relay.example.org"
"#;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/dm3/config.toml"), env(vars))
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.node.listen, "127.0.0.1:8080");
    assert_eq!(config.relay.size_limit, 100_000);
    assert_eq!(config.relay.message_ttl_secs, 0);
    assert_eq!(config.relay.unresolved_sender, UnresolvedSenderPolicy::Reject);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.engine.concurrency, 64);
    assert_eq!(config.data_dir(), Path::new("/etc/dm3"));
    assert_eq!(config.database_url().expose(), "sqlite:///etc/dm3/dm3-bridge.sqlite");
}

#[test]
fn environment_overrides_keys_of_every_section() {
    let config = load(
        MINIMAL,
        &[
            ("DM3_BRIDGE_NODE__NAME", "other.example.eth"),
            ("DM3_BRIDGE_NODE__LISTEN", "0.0.0.0:9000"),
            ("DM3_BRIDGE_DATABASE__URL", "postgres://relay:pw@db/relay"),
            ("DM3_BRIDGE_DATABASE__MAX_CONNECTIONS", "20"),
            ("DM3_BRIDGE_RELAY__SIZE_LIMIT", "5000"),
            ("DM3_BRIDGE_RELAY__MESSAGE_TTL_SECS", "86400"),
            ("DM3_BRIDGE_RELAY__UNRESOLVED_SENDER", "accept"),
            ("DM3_BRIDGE_ENGINE__CONCURRENCY", "8"),
            ("DM3_BRIDGE_LOG__FORMAT", "json"),
            // Lower case works too: the keys are lower case anyway.
            ("dm3_bridge_log__level", "debug"),
            ("DM3_BRIDGE_KEYS__MASTER_KEY_FILE", "/run/secrets/master.key"),
            ("UNRELATED", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(config.node.name, "other.example.eth");
    assert_eq!(config.node.listen, "0.0.0.0:9000");
    assert_eq!(config.database_url().backend(), Some(Backend::Postgres));
    assert_eq!(config.database.max_connections, 20);
    assert_eq!(config.relay.size_limit, 5000);
    assert_eq!(config.relay.message_ttl_ms(), 86_400_000);
    assert_eq!(config.relay.unresolved_sender, UnresolvedSenderPolicy::Accept);
    assert_eq!(config.engine.concurrency, 8);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.keys.master_key_file, PathBuf::from("/run/secrets/master.key"));
    // The password of the database URL never shows.
    assert!(!format!("{config:?}").contains(":pw@"));
}

#[test]
fn environment_values_are_typed_by_the_schema_not_guessed() {
    // A numeric-looking name stays a string.
    let config = load(MINIMAL, &[("DM3_BRIDGE_NODE__NAME", "1234")]).unwrap();
    assert_eq!(config.node.name, "1234");
    // A non-number for a number is an error that names the variable.
    let err = load(MINIMAL, &[("DM3_BRIDGE_RELAY__SIZE_LIMIT", "lots")]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("DM3_BRIDGE_RELAY__SIZE_LIMIT"), "{message}");
    assert!(message.contains("whole number"), "{message}");
}

#[test]
fn unknown_environment_keys_are_errors_not_ignored() {
    let err = load(MINIMAL, &[("DM3_BRIDGE_NODE__NMAE", "x.eth")]).unwrap_err();
    assert!(
        err.to_string().contains("DM3_BRIDGE_NODE__NMAE") && err.to_string().contains("node.nmae"),
        "{err}"
    );
    let err = load(MINIMAL, &[("DM3_BRIDGE_NODE", "x")]).unwrap_err();
    assert!(err.to_string().contains("DM3_BRIDGE_<SECTION>__<KEY>"), "{err}");
    let err = load(MINIMAL, &[("DM3_BRIDGE_LOG__FORMAT", "xml")]).unwrap_err();
    assert!(err.to_string().contains("xml"), "{err}");
}

#[test]
fn master_key_and_config_path_variables_are_not_config_keys() {
    let config = load(
        MINIMAL,
        &[("DM3_BRIDGE_MASTER_KEY", "c2VjcmV0"), ("DM3_BRIDGE_CONFIG", "/etc/dm3/config.toml")],
    )
    .unwrap();
    assert_eq!(config.node.name, "relay.example.eth");
}

#[test]
fn unknown_keys_in_the_file_are_errors_with_a_position() {
    let err = load("[node]\nname = \"a.eth\"\nnmae = \"b\"\n", &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("nmae"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn relative_data_dir_is_relative_to_the_config_file() {
    let config = load(&format!("{MINIMAL}data_dir = \"data\"\n"), &[]).unwrap();
    assert_eq!(config.data_dir(), Path::new("/etc/dm3/data"));
    assert_eq!(config.key_path(&config.keys.node_keys_file), Path::new("/etc/dm3/data/node-keys.sealed"));
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
[node]
name = ""
public_url = "ftp://example.org"
listen = "localhost"
data_dir = "/nonexistent/dm3"
[database]
url = "mysql://db/x"
[relay]
size_limit = 0
[engine]
concurrency = 0
[[names.static]]
name = "alice.eth"
address = "0x12"
[log]
level = "dm3=[bad"
"#;
    let problems = load(text, &[]).unwrap().problems();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "node.name",
            "node.public_url",
            "node.listen",
            "node.data_dir",
            "database.url",
            "relay.size_limit",
            "engine.concurrency",
            "log.level",
            "names.static[0].address",
        ]
    );
    assert!(problems.iter().all(|p| !p.message.is_empty()));
}

#[test]
fn names_section_reads_from_the_file_and_the_environment() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.names.ens_rpc_url, None);
    assert_eq!(config.names.ens_registry, MAINNET_ENS_REGISTRY);
    assert!(!config.names.allow_private_addresses);
    assert!(config.problems().iter().all(|p| !p.key.starts_with("names")));

    let text = format!(
        r#"{MINIMAL}
[names]
ens_rpc_url = "http://127.0.0.1:8545"
cache_ttl_secs = 60

[[names.static]]
name = "alice.example.eth"
address = "0x1111111111111111111111111111111111111111"
profile = 'data:application/json,{{"profile":{{}},"signature":"0x"}}'

[[names.static]]
name = "ds.example.eth"
delivery_service = "https://ds.example.org/profile.json?dm3Hash=0x{hash}"
"#,
        hash = "ab".repeat(32)
    );
    let config = load(&text, &[]).unwrap();
    assert_eq!(config.names.ens_rpc_url.as_deref(), Some("http://127.0.0.1:8545"));
    assert_eq!(config.names.cache_ttl_secs, 60);
    assert_eq!(config.names.static_names.len(), 2);
    assert!(config.names.static_names[1].delivery_service.as_deref().unwrap().starts_with("https://ds."));

    let config = load(
        &text,
        &[
            ("DM3_BRIDGE_NAMES__ENS_RPC_URL", "https://eth.example.org/v3/key"),
            ("DM3_BRIDGE_NAMES__ENS_REGISTRY", "0x2222222222222222222222222222222222222222"),
            ("DM3_BRIDGE_NAMES__CACHE_MAX_ENTRIES", "50"),
            ("DM3_BRIDGE_NAMES__REQUEST_TIMEOUT_MS", "1500"),
            ("DM3_BRIDGE_NAMES__MAX_RESPONSE_BYTES", "4096"),
            ("DM3_BRIDGE_NAMES__ALLOW_PRIVATE_ADDRESSES", "true"),
            (
                "DM3_BRIDGE_NAMES__STATIC",
                r#"[{name = "bob.example.eth", address = "0x3333333333333333333333333333333333333333"}]"#,
            ),
        ],
    )
    .unwrap();
    assert_eq!(config.names.ens_rpc_url.as_deref(), Some("https://eth.example.org/v3/key"));
    assert_eq!(config.names.ens_registry, "0x2222222222222222222222222222222222222222");
    assert_eq!(config.names.cache_max_entries, 50);
    assert_eq!(config.names.request_timeout_ms, 1500);
    assert_eq!(config.names.max_response_bytes, 4096);
    assert!(config.names.allow_private_addresses);
    assert_eq!(
        config.names.static_names,
        vec![StaticNameConfig {
            name: "bob.example.eth".into(),
            address: Some("0x3333333333333333333333333333333333333333".into()),
            ..StaticNameConfig::default()
        }]
    );
    assert!(config.problems().iter().all(|p| !p.key.starts_with("names")), "{:?}", config.problems());
}

#[test]
fn names_problems_are_reported_with_their_keys() {
    let text = format!(
        r#"{MINIMAL}
[names]
ens_rpc_url = "ws://127.0.0.1:8546"
ens_registry = "0x1234"
cache_ttl_secs = 999999
cache_max_entries = 0
request_timeout_ms = 0
max_response_bytes = 0

[[names.static]]
name = "Alice.eth"
address = "alice"
profile = "hello"

[[names.static]]
name = "bob.eth"

[[names.static]]
name = "bob.eth"
delivery_service = "ftp://x"
"#
    );
    let problems = load(&text, &[]).unwrap().problems();
    let keys: Vec<&str> =
        problems.iter().map(|p| p.key.as_str()).filter(|k| k.starts_with("names")).collect();
    assert_eq!(
        keys,
        vec![
            "names.ens_rpc_url",
            "names.ens_registry",
            "names.cache_ttl_secs",
            "names.cache_max_entries",
            "names.request_timeout_ms",
            "names.max_response_bytes",
            "names.static[0].name",
            "names.static[0].address",
            "names.static[0].profile",
            "names.static[2].name",
            "names.static[2].delivery_service",
        ]
    );
    let not_normalized = problems.iter().find(|p| p.key == "names.static[0].name").unwrap();
    assert!(not_normalized.message.contains("\"alice.eth\""), "{}", not_normalized.message);
}

#[test]
fn limits_have_safe_defaults_and_every_key_reads_from_the_environment() {
    let config = load(MINIMAL, &[]).unwrap();
    let limits = &config.limits;
    assert_eq!((limits.max_connections, limits.max_connections_per_ip), (512, 256));
    assert_eq!(
        (limits.header_timeout_secs, limits.idle_timeout_secs, limits.body_timeout_secs),
        (10, 60, 30)
    );
    assert_eq!(limits.body_min_bytes_per_sec, 64 * 1024);
    assert_eq!((limits.max_header_bytes, limits.http2_max_streams, limits.http2_ping_secs), (65_536, 64, 30));
    assert_eq!((limits.connection_body_bytes, limits.total_body_bytes), (32 << 20, 64 << 20));
    assert_eq!((limits.max_live_sockets, limits.max_live_sockets_per_account), (256, 8));
    assert!(config.problems().iter().all(|p| !p.key.starts_with("limits")), "{:?}", config.problems());

    let config = load(
        MINIMAL,
        &[
            ("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS", "100"),
            ("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS_PER_IP", "0"),
            ("DM3_BRIDGE_LIMITS__HEADER_TIMEOUT_SECS", "2"),
            ("DM3_BRIDGE_LIMITS__IDLE_TIMEOUT_SECS", "3"),
            ("DM3_BRIDGE_LIMITS__BODY_TIMEOUT_SECS", "4"),
            ("DM3_BRIDGE_LIMITS__BODY_MIN_BYTES_PER_SEC", "1000"),
            ("DM3_BRIDGE_LIMITS__MAX_HEADER_BYTES", "16384"),
            ("DM3_BRIDGE_LIMITS__HTTP2_MAX_STREAMS", "8"),
            ("DM3_BRIDGE_LIMITS__HTTP2_PING_SECS", "0"),
            ("DM3_BRIDGE_LIMITS__CONNECTION_BODY_BYTES", "20000000"),
            ("DM3_BRIDGE_LIMITS__TOTAL_BODY_BYTES", "40000000"),
            ("DM3_BRIDGE_LIMITS__MAX_LIVE_SOCKETS", "50"),
            ("DM3_BRIDGE_LIMITS__MAX_LIVE_SOCKETS_PER_ACCOUNT", "2"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.limits,
        LimitsConfig {
            max_connections: 100,
            max_connections_per_ip: 0,
            header_timeout_secs: 2,
            idle_timeout_secs: 3,
            body_timeout_secs: 4,
            body_min_bytes_per_sec: 1000,
            max_header_bytes: 16_384,
            http2_max_streams: 8,
            http2_ping_secs: 0,
            connection_body_bytes: 20_000_000,
            total_body_bytes: 40_000_000,
            max_live_sockets: 50,
            max_live_sockets_per_account: 2,
        }
    );
    assert!(config.problems().iter().all(|p| !p.key.starts_with("limits")), "{:?}", config.problems());
}

#[test]
fn limits_problems_are_reported_with_their_keys() {
    let text = format!(
        r#"{MINIMAL}
[limits]
max_connections = 0
header_timeout_secs = 0
idle_timeout_secs = 100000
body_timeout_secs = 0
body_min_bytes_per_sec = 0
max_header_bytes = 100
http2_max_streams = 0
"#
    );
    let problems = load(&text, &[]).unwrap().problems();
    let keys: Vec<&str> =
        problems.iter().map(|p| p.key.as_str()).filter(|k| k.starts_with("limits")).collect();
    assert_eq!(
        keys,
        vec![
            "limits.max_connections",
            "limits.header_timeout_secs",
            "limits.idle_timeout_secs",
            "limits.body_timeout_secs",
            "limits.body_min_bytes_per_sec",
            "limits.max_header_bytes",
            "limits.http2_max_streams",
        ]
    );
    let header = problems.iter().find(|p| p.key == "limits.max_header_bytes").unwrap();
    assert!(header.message.contains("8192"), "{}", header.message);
}

#[test]
fn a_body_budget_that_cannot_hold_the_largest_body_is_a_problem() {
    // The acknowledgement route takes 16 MiB; /rpc twice the envelope limit and 64 KiB.
    let small = load(MINIMAL, &[("DM3_BRIDGE_LIMITS__CONNECTION_BODY_BYTES", "1000000")]).unwrap();
    let problem = small.problems().into_iter().find(|p| p.key == "limits.connection_body_bytes").unwrap();
    assert!(
        problem.message.contains("the largest request body a route accepts (16777216 bytes)"),
        "{problem}"
    );

    let large_envelopes = load(MINIMAL, &[("DM3_BRIDGE_RELAY__SIZE_LIMIT", "40000000")]).unwrap();
    let keys: Vec<String> =
        large_envelopes.problems().into_iter().map(|p| p.key).filter(|k| k.starts_with("limits")).collect();
    assert_eq!(keys, vec!["limits.connection_body_bytes", "limits.total_body_bytes"]);

    let below_connection = load(MINIMAL, &[("DM3_BRIDGE_LIMITS__TOTAL_BODY_BYTES", "20000000")]).unwrap();
    let problem =
        below_connection.problems().into_iter().find(|p| p.key == "limits.total_body_bytes").unwrap();
    assert!(problem.message.contains("limits.connection_body_bytes"), "{problem}");
}

#[test]
fn check_reports_bad_limits_by_key() {
    let (_dir, config) = init_data_dir();
    let output = bin()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS", "0")
        .env("DM3_BRIDGE_LIMITS__TOTAL_BODY_BYTES", "1024")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: limits.max_connections: 0 is out of range"), "{stderr}");
    assert!(stderr.contains("error: limits.total_body_bytes: 1024 bytes is less than"), "{stderr}");
}

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dm3-bridge"));
    command.env_remove("DM3_BRIDGE_MASTER_KEY").env_remove("DM3_BRIDGE_CONFIG");
    command
}

#[test]
fn check_passes_a_fresh_data_directory() {
    let (_dir, config) = init_data_dir();
    let output = bin().arg("--config").arg(&config).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("node keys: open"), "{stdout}");
}

#[test]
fn check_lists_every_problem_and_exits_non_zero() {
    let (_dir, config) = init_data_dir();
    let output = bin()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env("DM3_BRIDGE_NODE__PUBLIC_URL", "not a url")
        .env("DM3_BRIDGE_RELAY__SIZE_LIMIT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: node.public_url:"), "{stderr}");
    assert!(stderr.contains("error: relay.size_limit:"), "{stderr}");
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
}

#[test]
fn check_requires_a_parent_for_matrix_as_for_telegram() {
    let (_dir, config) = init_data_dir();
    let matrix = [
        ("DM3_BRIDGE_MATRIX__HOMESERVER_URL", "http://127.0.0.1:8008"),
        ("DM3_BRIDGE_MATRIX__SERVER_NAME", "example.org"),
        ("DM3_BRIDGE_MATRIX__BRIDGE_URL", "http://127.0.0.1:8080"),
        ("DM3_BRIDGE_MATRIX__AS_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("DM3_BRIDGE_MATRIX__HS_TOKEN", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    ];
    let parent_problems = |vars: &[(&str, &str)]| -> Vec<String> {
        let report = dm3_bridge::check::check(&config, &env(vars));
        report.problems.into_iter().filter(|p| p.starts_with("identities.parent")).collect()
    };
    let without_parent = parent_problems(&matrix);
    assert_eq!(without_parent.len(), 1, "{without_parent:?}");
    assert!(without_parent[0].contains("[matrix] is configured"), "{without_parent:?}");

    let mut with_parent = matrix.to_vec();
    with_parent.push(("DM3_BRIDGE_IDENTITIES__PARENT", "bridge.example.eth"));
    assert_eq!(parent_problems(&with_parent), Vec::<String>::new());
}

#[test]
fn the_loopback_network_is_off_by_default_and_needs_a_parent() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.loopback, None);
    let config = load(&format!("{MINIMAL}[loopback]\necho = true\n"), &[]).unwrap();
    let loopback = config.loopback.clone().unwrap();
    assert_eq!((loopback.users_of.as_str(), loopback.echo), ("telegram", true));
    let parent: Vec<String> =
        config.problems().into_iter().filter(|p| p.key == "identities.parent").map(|p| p.message).collect();
    assert!(parent.len() == 1 && parent[0].contains("[loopback]"), "{parent:?}");
    let config = load(MINIMAL, &[("DM3_BRIDGE_LOOPBACK__USERS_OF", "matrix")]).unwrap();
    assert_eq!(config.loopback.unwrap().users_of.as_str(), "matrix", "the environment creates the section");
}

#[test]
fn check_without_a_config_says_how_to_give_one() {
    let output = bin().arg("check").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--config"), "{stderr}");
}

#[test]
fn check_reports_an_unparsable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[node\nname = 1").unwrap();
    let output = bin().arg("--config").arg(&path).arg("check").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not valid"), "{stderr}");
}

#[test]
fn static_names_are_read_from_the_file() {
    let text = r#"
[node]
name = "relay.example.eth"
public_url = "https://relay.example.org"
[[names.static]]
name = "Alice.eth"
address = "0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13"
profile = '{"profile":{},"signature":"0x"}'
[[names.static]]
name = "ds.example.eth"
delivery_service = 'data:application/json,{"url":"https://ds.example.org"}'
"#;
    let config = load(text, &[]).unwrap();
    assert_eq!(config.names.static_names.len(), 2);
    let resolver = dm3_bridge::names::chain::static_resolver(&config.names).unwrap();
    let alice = "alice.eth".parse().unwrap();
    let ds = "ds.example.eth".parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        use dm3_bridge::names::NameResolver as _;
        assert!(resolver.address(&alice).await.unwrap().is_some(), "the name is normalized");
        assert!(resolver.text(&alice, "network.dm3.profile").await.unwrap().is_some());
        assert!(resolver.text(&ds, "network.dm3.deliveryService").await.unwrap().is_some());
    });
}

#[test]
fn profile_prints_the_delivery_service_record_to_publish() {
    let (_dir, config) = init_data_dir();
    let output = bin().arg("--config").arg(&config).arg("profile").arg("--json").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["name"], "relay.example.eth");
    assert_eq!(printed["textRecordKey"], "network.dm3.deliveryService");
    let profile = &printed["profile"];
    assert_eq!(profile["url"], "http://127.0.0.1:1");
    assert_eq!(profile.as_object().unwrap().len(), 3, "{profile}");
    // The record is the data: form of the canonical profile (docs/protocol.md §4.4).
    let record = printed["textRecord"].as_str().unwrap();
    let json = record.strip_prefix("data:application/json,").unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(json).unwrap(), *profile);

    // The keys are the node's: `check` prints the same ones.
    let check = bin().arg("--config").arg(&config).arg("check").output().unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(check.contains(profile["publicEncryptionKey"].as_str().unwrap()), "{check}");
    assert!(check.contains(profile["publicSigningKey"].as_str().unwrap()), "{check}");

    let human = bin().arg("--config").arg(&config).arg("profile").output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains(record));
}

// Every key from the environment alone, whatever the file holds; old files and misspelt keys.

/// A configuration with every section that has keys it cannot do without, each key in the file.
/// A new required key makes this fixture incomplete, and
/// `every_required_key_can_come_from_the_environment_alone` says so; once it is added here,
/// that test covers it from the environment too.
const COMPLETE: &str = r#"
[node]
name = "relay.example.eth"
public_url = "https://relay.example.org"

[identities]
parent = "bridge.example.eth"

[matrix]
homeserver_url = "http://127.0.0.1:8008"
server_name = "example.org"
bridge_url = "http://127.0.0.1:8080"
as_token = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
hs_token = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

[telegram]
token = "123456789:AAEexampleexampleexampleexample"
mode = "webhook"

[telegram.webhook]
public_base_url = "https://bridge.example.org/"
secret = "0123456789abcdef0123"

[loopback]
"#;

const TOKEN: &str = "123456789:AAEexampleexampleexampleexample";

/// `table` as a file in `dir`, with `vars` as the environment.
fn load_table(dir: &Path, table: &toml::Table, vars: &[(String, String)]) -> Result<Config, ConfigError> {
    Config::from_toml(&toml::to_string(table).unwrap(), &dir.join("config.toml"), vars.to_vec())
}

fn value_at<'a>(table: &'a toml::Table, key: &Variable) -> Option<&'a toml::Value> {
    table.get(&key.section)?.as_table()?.get(&key.key)
}

fn without(table: &toml::Table, key: &Variable) -> toml::Table {
    let mut table = table.clone();
    if let Some(section) = table.get_mut(&key.section).and_then(toml::Value::as_table_mut) {
        section.remove(&key.key);
    }
    table
}

fn with(table: &toml::Table, key: &Variable, value: toml::Value) -> toml::Table {
    let mut table = table.clone();
    let section = table.entry(key.section.clone()).or_insert_with(|| toml::Table::new().into());
    section.as_table_mut().unwrap().insert(key.key.clone(), value);
    table
}

/// A value as the environment gives it: a string as it is, anything else as a TOML inline value.
fn env_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Another value of the same shape (strings get a `2`: a URL stays a URL, a token a token).
fn other(value: &toml::Value) -> toml::Value {
    match value {
        toml::Value::String(s) => toml::Value::String(format!("{s}2")),
        toml::Value::Integer(i) => toml::Value::Integer(i + 1),
        toml::Value::Boolean(b) => toml::Value::Boolean(!b),
        toml::Value::Table(t) => toml::Value::Table(t.iter().map(|(k, v)| (k.clone(), other(v))).collect()),
        toml::Value::Array(a) => toml::Value::Array(a.iter().map(other).collect()),
        v => v.clone(),
    }
}

/// The keys `complete` cannot do without: each key the environment can set that `complete`
/// has, whose absence makes loading fail or `problems()` find something.
fn required_keys(dir: &Path, complete: &toml::Table) -> Vec<Variable> {
    variables()
        .unwrap()
        .into_iter()
        .filter(|key| value_at(complete, key).is_some())
        .filter(|key| {
            load_table(dir, &without(complete, key), &[]).map_or(true, |c| !c.problems().is_empty())
        })
        .collect()
}

#[test]
fn every_required_key_can_come_from_the_environment_alone() {
    let dir = tempfile::tempdir().unwrap();
    let complete: toml::Table = toml::from_str(COMPLETE).unwrap();
    let expected = load_table(dir.path(), &complete, &[]).unwrap();
    assert_eq!(expected.problems(), [], "COMPLETE lacks a key: a new required one belongs in it");

    // A section COMPLETE leaves out must be complete with none of its keys.
    let sections: BTreeSet<String> = variables().unwrap().into_iter().map(|v| v.section).collect();
    for section in sections.iter().filter(|s| !complete.contains_key(*s)) {
        let alone = load(&format!("{MINIMAL}[{section}]\n"), &[]).map(|c| c.problems());
        assert!(
            alone.as_ref().is_ok_and(|p| p.iter().all(|p| p.key == "node.data_dir")),
            "[{section}] has keys it cannot do without ({alone:?}): add the section to COMPLETE"
        );
    }

    let required = required_keys(dir.path(), &complete);
    let names: Vec<&str> = required.iter().map(|v| v.name.as_str()).collect();
    for known in [
        "DM3_BRIDGE_NODE__NAME",
        "DM3_BRIDGE_NODE__PUBLIC_URL",
        "DM3_BRIDGE_IDENTITIES__PARENT",
        "DM3_BRIDGE_MATRIX__HOMESERVER_URL",
        "DM3_BRIDGE_MATRIX__SERVER_NAME",
        "DM3_BRIDGE_MATRIX__BRIDGE_URL",
        "DM3_BRIDGE_MATRIX__AS_TOKEN",
        "DM3_BRIDGE_MATRIX__HS_TOKEN",
        "DM3_BRIDGE_TELEGRAM__TOKEN",
        "DM3_BRIDGE_TELEGRAM__WEBHOOK",
    ] {
        assert!(names.contains(&known), "{known} is not found required: {names:?}");
    }

    for key in &required {
        let name = &key.name;
        let value = value_at(&complete, key).unwrap();
        // Not in the file, only in the environment.
        let config = load_table(dir.path(), &without(&complete, key), &[(name.clone(), env_text(value))])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config, expected, "{name}");
        assert_eq!(config.problems(), [], "{name}");

        // In both: the environment wins.
        let changed = other(value);
        let from_env = load_table(dir.path(), &complete, &[(name.clone(), env_text(&changed))]).unwrap();
        let from_file = load_table(dir.path(), &with(&complete, key, changed), &[]).unwrap();
        assert_eq!(from_env, from_file, "{name}");
        assert_ne!(from_env, expected, "{name}");

        // A value of the wrong type is refused naming the variable (any text is a string).
        if !value.is_str() {
            let err = load_table(dir.path(), &without(&complete, key), &[(name.clone(), "[nope".to_owned())])
                .unwrap_err();
            assert!(matches!(&err, ConfigError::Env { var, .. } if var == name), "{name}: {err}");
        }
    }
}

#[test]
fn a_section_in_the_file_takes_its_token_from_the_environment() {
    // What docs/telegram.md and the `init` template advise: the section in the file, the
    // token in the environment.
    let file =
        format!("{MINIMAL}[identities]\nparent = \"bridge.example.eth\"\n[telegram]\nmode = \"polling\"\n");
    let config = load(&file, &[("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN)]).unwrap();
    assert_eq!(config.telegram.as_ref().unwrap().token.expose(), TOKEN);
    assert!(config.problems().iter().all(|p| p.key == "node.data_dir"), "{:?}", config.problems());

    // In neither place: the error says where the section is and both ways to give the key.
    let err = load(&file, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("line 7"), "{message}");
    assert!(message.contains("`telegram.token` is required"), "{message}");
    assert!(message.contains("DM3_BRIDGE_TELEGRAM__TOKEN"), "{message}");

    // A section made by a variable names that variable.
    let err = load(MINIMAL, &[("DM3_BRIDGE_TELEGRAM__MODE", "polling")]).unwrap_err();
    let ConfigError::Env { var, message } = &err else { panic!("{err}") };
    assert_eq!(var, "DM3_BRIDGE_TELEGRAM__MODE");
    assert!(message.contains("DM3_BRIDGE_TELEGRAM__TOKEN"), "{message}");
}

#[test]
fn errors_name_the_variable_or_the_line_and_never_show_a_secret() {
    let secret = "0123456789abcdefSECRET";
    // A wrong type inside a variable's inline table: the variable, the key, not the secret.
    let webhook = format!("{{ public_base_url = 5, secret = \"{secret}\" }}");
    let err =
        load(MINIMAL, &[("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN), ("DM3_BRIDGE_TELEGRAM__WEBHOOK", &webhook)])
            .unwrap_err();
    let ConfigError::Env { var, message } = &err else { panic!("{err}") };
    assert_eq!(var, "DM3_BRIDGE_TELEGRAM__WEBHOOK");
    assert!(message.contains("public_base_url"), "{message}");
    assert!(!err.to_string().contains("SECRET"), "{err}");

    // An inline value that is no TOML at all.
    let broken = format!("{{ secret = \"{secret}\" ");
    let err = load(MINIMAL, &[("DM3_BRIDGE_TELEGRAM__WEBHOOK", &broken)]).unwrap_err();
    assert!(matches!(&err, ConfigError::Env { var, .. } if var == "DM3_BRIDGE_TELEGRAM__WEBHOOK"), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");

    // A broken line of the file holding a token: its position, not its text.
    let err = load(&format!("{MINIMAL}[telegram]\ntoken = \"123:{secret}\n"), &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 6"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");

    // A wrong type in the file: the line and the key.
    let err = load(&format!("{MINIMAL}[relay]\nsize_limit = \"big\"\n"), &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 6") && message.contains("relay.size_limit"), "{message}");
}

#[test]
fn check_passes_with_each_required_key_only_in_the_environment() {
    let (dir, config_file) = init_data_dir();
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
    let complete: toml::Table = toml::from_str(COMPLETE).unwrap();
    table["identities"]
        .as_table_mut()
        .unwrap()
        .insert("parent".into(), complete["identities"]["parent"].clone());
    // Matrix and Telegram; the loopback network cannot run beside the network it stands in for.
    table.insert("telegram".into(), complete["telegram"].clone());
    let mut matrix = complete["matrix"].as_table().unwrap().clone();
    matrix.remove("as_token");
    matrix.remove("hs_token");
    table.insert("matrix".into(), matrix.into());
    std::fs::write(&config_file, toml::to_string(&table).unwrap()).unwrap();
    // The registration the homeserver loads; its tokens go into the file.
    let options = GenerateOptions { config_file: config_file.clone(), ..GenerateOptions::default() };
    generate_registration(&options, &[]).unwrap();
    let full: toml::Table = toml::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();

    let run_check = |vars: &[(String, String)]| {
        let output =
            bin().arg("--config").arg(&config_file).arg("check").envs(vars.iter().cloned()).output().unwrap();
        let shown =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), shown)
    };
    let (ok, shown) = run_check(&[]);
    assert!(ok, "{shown}");

    let required = required_keys(dir.path(), &full);
    assert!(required.len() >= 9, "{required:?}");
    for key in &required {
        std::fs::write(&config_file, toml::to_string(&without(&full, key)).unwrap()).unwrap();
        let value = env_text(value_at(&full, key).unwrap());
        let (ok, shown) = run_check(&[(key.name.clone(), value.clone())]);
        assert!(ok, "{}: {shown}", key.name);
        if key.key.contains("token") {
            assert!(!shown.contains(&value), "{} printed: {shown}", key.name);
        }
    }
}

#[test]
fn a_config_written_by_the_first_init_still_checks() {
    // `dm3-bridge init` of the first release (4f6fc2a), before [engine], [limits], [names],
    // [identities], [admin] and [rate_limits] existed; then the sections as first documented.
    let (dir, config_file) = init_data_dir();
    let data_dir = toml::Value::String(dir.path().to_string_lossy().into_owned());
    let first = format!(
        r#"# dm3-bridge configuration, written by `dm3-bridge init`.
[node]
name = "relay.example.eth"
public_url = "http://127.0.0.1:1"
listen = "127.0.0.1:0"
data_dir = {data_dir}

[database]
# url = "sqlite://..."
max_connections = 8
busy_timeout_ms = 5000

[relay]
size_limit = 100000
message_ttl_secs = 0
unresolved_sender = "reject"

[log]
format = "text"
level = "info"

[keys]
master_key_file = "master.key"
node_keys_file = "node-keys.sealed"
"#
    );
    std::fs::write(&config_file, &first).unwrap();
    let output = bin().arg("--config").arg(&config_file).arg("check").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let later = format!(
        "{first}\n[engine]\nconcurrency = 16\n\n[identities]\nparent = \"bridge.example.eth\"\n\
         [telegram]\ntoken = \"{TOKEN}\"\nmode = \"polling\"\nlink_policy = {{ allow = \"everyone\" }}\n\
         [telegram.rate_limits]\nper_chat_interval_ms = 1000\nglobal_per_second = 30\nmax_wait_ms = 5000\n"
    );
    let config = Config::from_toml(&later, &config_file, []).unwrap();
    assert_eq!(config.engine.concurrency, 16);
    assert_eq!(config.problems(), []);
}

#[test]
fn an_unknown_key_is_refused_with_the_key_meant() {
    let refused = |text: &str| load(&format!("{MINIMAL}{text}"), &[]).unwrap_err().to_string();
    let message = load("[node]\nnmae = \"relay.example.eth\"\n", &[]).unwrap_err().to_string();
    assert!(message.contains("line 2") && message.contains("did you mean `node.name`?"), "{message}");
    let message = refused("[relay]\nconcurrency = 8\n");
    assert!(message.contains("`concurrency` is a key of [engine]"), "{message}");
    let message = refused("[telegramm]\ntoken = \"1:a\"\n");
    assert!(message.contains("did you mean [telegram]?"), "{message}");
    let message = refused(&format!(
        "[telegram]\ntoken = \"{TOKEN}\"\n[telegram.webhook]\npublic_base_url = \"https://x.org\"\nsecrte = \"s\"\n"
    ));
    assert!(message.contains("did you mean `telegram.webhook.secret`?"), "{message}");

    let env_refused = |var: &str| load(MINIMAL, &[(var, "x")]).unwrap_err().to_string();
    let message = env_refused("DM3_BRIDGE_NODE__NMAE");
    assert!(message.contains("did you mean DM3_BRIDGE_NODE__NAME?"), "{message}");
    let message = env_refused("DM3_BRIDGE_TELEGRM__TOKEN");
    assert!(message.contains("did you mean DM3_BRIDGE_TELEGRAM__TOKEN?"), "{message}");
    let message = env_refused("DM3_BRIDGE_RELAY__CONCURRENCY");
    assert!(message.contains("did you mean DM3_BRIDGE_ENGINE__CONCURRENCY?"), "{message}");

    // And `check` says so.
    let (_dir, config_file) = init_data_dir();
    let text = std::fs::read_to_string(&config_file).unwrap().replace("\nlisten = ", "\nlistn = ");
    std::fs::write(&config_file, text).unwrap();
    let output = bin().arg("--config").arg(&config_file).arg("check").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`node.listn` is not a config key; did you mean `node.listen`?"), "{stderr}");
}

#[test]
fn every_variable_is_listed_in_the_configuration_docs() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md")).unwrap();
    let missing: Vec<String> = variables()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .filter(|name| !docs.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "docs/configuration.md does not list {missing:?}");
}
