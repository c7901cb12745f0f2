//! `dm3-bridge init` and the keys it writes: exactly three files, private key files, no
//! overwriting, and a node that refuses a wrong or tampered key at start-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3_bridge::config::Config;
use dm3_bridge::init::{InitError, InitOptions, init};
use dm3_bridge::node::{Node, NodeError};
use dm3_bridge::vault::MasterKey;
use support::node::StubProtocol;

fn options(dir: &Path) -> InitOptions {
    InitOptions {
        data_dir: dir.to_owned(),
        name: "relay.example.eth".to_owned(),
        public_url: "https://relay.example.org".to_owned(),
        listen: Some("127.0.0.1:0".to_owned()),
    }
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn env_key(key: &MasterKey) -> Vec<(String, String)> {
    vec![("DM3_BRIDGE_MASTER_KEY".to_owned(), key.to_base64().as_str().to_owned())]
}

#[test]
fn init_writes_exactly_the_config_the_master_key_and_the_sealed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let report = init(&options(&data), &[]).unwrap();
    assert_eq!(
        files(&data),
        BTreeSet::from(["config.toml".to_owned(), "master.key".to_owned(), "node-keys.sealed".to_owned()])
    );
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("node-keys.sealed")), 0o600);
    assert_eq!(mode(&data), 0o700);
    let text = std::fs::read_to_string(&report.config_file).unwrap();
    assert!(text.contains("# "), "the config is commented");
    let config = Config::load(&report.config_file, []).unwrap();
    assert_eq!(config.node.name, "relay.example.eth");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    // The public keys are reported for the DS profile: 32 bytes each.
    assert_eq!(STANDARD.decode(&report.encryption_public_key).unwrap().len(), 32);
    assert_eq!(STANDARD.decode(&report.signing_public_key).unwrap().len(), 32);
}

#[test]
fn init_refuses_to_overwrite_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    init(&options(dir.path()), &[]).unwrap();
    let before: Vec<Vec<u8>> = ["config.toml", "master.key", "node-keys.sealed"]
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    let err = init(&options(dir.path()), &[]).unwrap_err();
    assert!(matches!(err, InitError::Exists(_)), "{err}");
    assert!(err.to_string().contains("never overwrites"), "{err}");
    let after: Vec<Vec<u8>> = ["config.toml", "master.key", "node-keys.sealed"]
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    assert_eq!(before, after);

    // Any one existing file is enough to refuse, and nothing else gets written.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("node-keys.sealed"), "keep me").unwrap();
    assert!(matches!(init(&options(other.path()), &[]), Err(InitError::Exists(_))));
    assert_eq!(files(other.path()), BTreeSet::from(["node-keys.sealed".to_owned()]));
}

#[test]
fn init_rejects_bad_arguments_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = options(dir.path());
    bad.name = "Not A Name".to_owned();
    bad.public_url = "relay.example.org".to_owned();
    let err = init(&bad, &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("--name") && message.contains("--public-url"), "{message}");
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn master_key_from_the_environment_writes_no_key_file_and_opens_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let report = init(&options(dir.path()), &env_key(&key)).unwrap();
    assert_eq!(report.master_key_file, None);
    assert!(!dir.path().join("master.key").exists());

    let config = Config::load(&report.config_file, []).unwrap();
    let node =
        Node::start(&config, &env_key(&key), StubProtocol::factory(std::time::Duration::ZERO)).await.unwrap();
    node.shutdown().await.unwrap();

    // Without the variable there is no key at all, and the error says where it looked.
    let err =
        Node::start(&config, &[], StubProtocol::factory(std::time::Duration::ZERO)).await.err().unwrap();
    assert!(err.to_string().starts_with("no master key"), "{err}");
}

#[tokio::test]
async fn wrong_master_key_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let report = init(&options(dir.path()), &[]).unwrap();
    let config = Config::load(&report.config_file, []).unwrap();

    // Another key in the environment takes precedence over the right key file.
    let other = MasterKey::generate().unwrap();
    let err = Node::start(&config, &env_key(&other), StubProtocol::factory(std::time::Duration::ZERO))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, NodeError::NodeKeys(_)));
    assert!(
        err.to_string().starts_with("master key does not open the sealed node keys: wrong key file?"),
        "{err}"
    );

    // A key that is not 32 bytes of base64 is refused, not used.
    let bad = vec![("DM3_BRIDGE_MASTER_KEY".to_owned(), "c2hvcnQ=".to_owned())];
    let err =
        Node::start(&config, &bad, StubProtocol::factory(std::time::Duration::ZERO)).await.err().unwrap();
    assert!(err.to_string().contains("not base64 of exactly 32 bytes"), "{err}");
}

#[tokio::test]
async fn tampered_sealed_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let report = init(&options(dir.path()), &[]).unwrap();
    let mut sealed =
        STANDARD.decode(std::fs::read_to_string(&report.node_keys_file).unwrap().trim()).unwrap();
    let last = sealed.len() - 20;
    sealed[last] ^= 0x40;
    std::fs::write(&report.node_keys_file, STANDARD.encode(&sealed)).unwrap();

    let config = Config::load(&report.config_file, []).unwrap();
    let err =
        Node::start(&config, &[], StubProtocol::factory(std::time::Duration::ZERO)).await.err().unwrap();
    assert!(err.to_string().starts_with("master key does not open the sealed node keys"), "{err}");
}

#[test]
fn the_binary_runs_init_and_refuses_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_dm3-bridge"))
            .env_remove("DM3_BRIDGE_MASTER_KEY")
            .args(["init", "--name", "relay.example.eth"])
            .args(["--public-url", "https://relay.example.org"])
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("publicEncryptionKey"), "{stdout}");
    assert!(stdout.contains("publicSigningKey"), "{stdout}");
    // Nothing secret is printed.
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert!(!stdout.contains(key.trim()));

    let second = run();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}
