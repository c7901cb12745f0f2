//! `dm3-bridge generate-registration`: the file it writes is a registration ruma and Synapse
//! accept, its tokens are the ones in the config (the homeserver pings the bridge with them),
//! it asks for the encryption extensions unless `[matrix] encryption = "off"`, the operator's
//! config keeps its comments, and a second run needs `--force`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/synapse.rs"]
mod synapse;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dm3_bridge::bridges::matrix::MatrixBridge;
use dm3_bridge::check::check;
use dm3_bridge::config::Config;
use dm3_bridge::init::{InitOptions, init};
use dm3_bridge::matrix::generate::{GenerateError, GenerateOptions, generate_registration};
use dm3_bridge_connector::{Accepted, BoxFuture, InboundBatch, InboundSink, RemoteIdentity, SinkError};
use dm3_bridge_matrix::{DirectoryError, GhostDirectory, GhostProfile, Registration};
use synapse::Synapse;

/// A data directory made by `init`, with a note of the operator's in the config file.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let report = init(
        &InitOptions {
            data_dir: dir.path().to_owned(),
            name: "relay.example.eth".to_owned(),
            public_url: "http://127.0.0.1:1".to_owned(),
            listen: Some("127.0.0.1:0".to_owned()),
        },
        &[],
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&report.config_file).unwrap();
    // Matrix users get virtual identities: `[matrix]` needs a parent name (`dm3-bridge check`).
    text = text.replace("parent = \"\"", "parent = \"bridge.example.eth\"");
    text.push_str("\n# operator's note: keep this line\n");
    std::fs::write(&report.config_file, text).unwrap();
    (dir, report.config_file)
}

fn options(config_file: &Path, bridge_url: &str) -> GenerateOptions {
    GenerateOptions {
        config_file: config_file.to_owned(),
        homeserver_url: Some("http://127.0.0.1:8008".to_owned()),
        server_name: Some(synapse::SERVER_NAME.to_owned()),
        bridge_url: Some(bridge_url.to_owned()),
        force: false,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

struct NoSink;

impl InboundSink for NoSink {
    fn accept(&self, _: InboundBatch) -> BoxFuture<'_, Result<Accepted, SinkError>> {
        Box::pin(async { Ok(Accepted::New) })
    }
}

struct NoGhosts;

impl GhostDirectory for NoGhosts {
    fn lookup<'a>(
        &'a self,
        _: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<Option<GhostProfile>, DirectoryError>> {
        Box::pin(async { Ok(None) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_is_accepted_by_ruma_and_synapse_with_the_tokens_of_the_config() {
    let (_dir, config_file) = data_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bridge_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let report = generate_registration(&options(&config_file, &bridge_url), &[]).unwrap();
    assert!(!report.replaced);
    assert_eq!(mode(&report.registration_file), 0o600);
    assert_eq!(mode(&config_file), 0o600, "the config holds the tokens now");
    assert!(report.warnings.iter().any(|w| w.contains("narrowed from 644 to 600")), "{:?}", report.warnings);

    // ruma's registration type reads it, with the settings asked for.
    let yaml = std::fs::read_to_string(&report.registration_file).unwrap();
    let parsed = Registration::parse_yaml(&yaml).unwrap();
    assert_eq!(parsed.url.as_deref(), Some(format!("{bridge_url}/").as_str()));
    assert_eq!(parsed.sender_localpart, "dm3bot");
    assert_eq!(parsed.rate_limited, Some(false));
    assert!(parsed.receive_ephemeral);
    let namespaces: Vec<(bool, &str)> =
        parsed.namespaces.users.iter().map(|n| (n.exclusive, n.regex.as_str())).collect();
    assert_eq!(namespaces, [(true, "@_dm3_.*:localhost"), (true, "@dm3bot:localhost")]);

    // The config has the same tokens, and the rest of the file is as the operator left it.
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(text.contains("# operator's note: keep this line"), "{text}");
    assert!(text.contains("name = \"relay.example.eth\""));
    let config = Config::load(&config_file, []).unwrap();
    assert_eq!(config.problems(), []);
    let checked = check(&config_file, &[]);
    assert!(checked.is_ok(), "{:?}", checked.problems);
    assert!(
        checked.notes.iter().any(|n| n.contains("registration.yaml matches [matrix]")),
        "{:?}",
        checked.notes
    );
    // Encryption is on by default: the registration asks for the extensions ghost devices need,
    // check says what that does today, and a setting the file disagrees with is a problem.
    assert!(Registration::yaml_asks_for_encryption(&yaml).unwrap(), "{yaml}");
    let today = checked.notes.iter().find(|n| n.starts_with("matrix.encryption = on")).unwrap();
    assert!(today.contains("encrypted (Megolm)") && today.contains("never in the clear"), "{today}");
    let off = check(&config_file, &[("DM3_BRIDGE_MATRIX__ENCRYPTION".to_owned(), "off".to_owned())]);
    assert!(off.problems.iter().any(|p| p.contains("(matrix.encryption)")), "{:?}", off.problems);
    let require = check(&config_file, &[("DM3_BRIDGE_MATRIX__ENCRYPTION".to_owned(), "require".to_owned())]);
    assert!(require.is_ok(), "require is accepted now that ghosts send Megolm: {:?}", require.problems);
    let required = require.notes.iter().find(|n| n.starts_with("matrix.encryption = require")).unwrap();
    assert!(required.contains("encrypted from their first event"), "{required}");
    // Sender trust is `listed` by default, and check says how to believe only verified devices.
    let trust = checked.notes.iter().find(|n| n.starts_with("matrix.sender_trust = listed")).unwrap();
    assert!(trust.contains("cross-signed"), "{trust}");
    let cross =
        check(&config_file, &[("DM3_BRIDGE_MATRIX__SENDER_TRUST".to_owned(), "cross-signed".to_owned())]);
    assert!(
        cross.notes.iter().any(|n| n.starts_with("matrix.sender_trust = cross-signed")),
        "{:?}",
        cross.notes
    );
    let matrix = config.matrix.clone().unwrap();
    assert_eq!(matrix.as_token.as_ref().unwrap().expose(), parsed.as_token);
    assert_eq!(matrix.hs_token.as_ref().unwrap().expose(), parsed.hs_token);
    assert_eq!((matrix.server_name.as_str(), matrix.bridge_url.as_str()), ("localhost", bridge_url.as_str()));

    // Synapse loads it, and the bridge built from the config passes the homeserver's ping.
    let synapse = Synapse::start(&yaml).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut matrix = matrix;
    matrix.homeserver_url = synapse.url().to_owned();
    let bridge = MatrixBridge::from_config(&matrix).unwrap();
    assert_eq!(bridge.registration().scope(), report.scope);
    let router = bridge.router(Arc::new(NoSink), Arc::new(NoGhosts), None);
    tokio::spawn(async move { axum::serve(listener, router).await });
    bridge.start().await.unwrap_or_else(|e| panic!("{e}\n{}", synapse.log_tail()));
}

#[tokio::test]
async fn a_second_run_needs_force_which_changes_the_tokens_and_the_scope() {
    let (_dir, config_file) = data_dir();
    let first = generate_registration(&options(&config_file, "http://127.0.0.1:9000"), &[]).unwrap();
    let tokens =
        || Config::load(&config_file, []).unwrap().matrix.unwrap().as_token.unwrap().expose().to_owned();
    let first_token = tokens();
    let first_yaml = std::fs::read_to_string(&first.registration_file).unwrap();

    // The operator comments a value; a refused run changes nothing.
    let text = std::fs::read_to_string(&config_file).unwrap();
    let text = text.replace("server_name = \"localhost\"", "server_name = \"localhost\" # our homeserver");
    std::fs::write(&config_file, &text).unwrap();
    let mut again = options(&config_file, "http://127.0.0.1:9000");
    again.server_name = None;
    let error = generate_registration(&again, &[]).unwrap_err();
    assert!(matches!(&error, GenerateError::Exists(path) if *path == first.registration_file));
    let message = error.to_string();
    assert!(message.contains("--force") && message.contains("transaction-id scope"), "{message}");
    assert_eq!(std::fs::read_to_string(&first.registration_file).unwrap(), first_yaml);
    assert_eq!(tokens(), first_token);

    again.force = true;
    let env = [("DM3_BRIDGE_MATRIX__HS_TOKEN".to_owned(), "x".repeat(32))];
    let second = generate_registration(&again, &env).unwrap();
    assert!(second.replaced);
    assert_ne!(second.scope, first.scope);
    assert_ne!(tokens(), first_token);
    assert!(
        second.warnings.iter().any(|w| w.contains("DM3_BRIDGE_MATRIX__HS_TOKEN")),
        "{:?}",
        second.warnings
    );
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert_eq!(text.matches("[matrix]").count(), 1, "{text}");
    assert!(text.contains("server_name = \"localhost\" # our homeserver"), "{text}");
    let parsed =
        Registration::parse_yaml(&std::fs::read_to_string(&second.registration_file).unwrap()).unwrap();
    assert_eq!(parsed.as_token, tokens());
}

#[test]
fn missing_settings_are_listed_and_nothing_is_written() {
    let (dir, config_file) = data_dir();
    let before = std::fs::read_to_string(&config_file).unwrap();
    let options = GenerateOptions { config_file: config_file.clone(), ..GenerateOptions::default() };
    let GenerateError::Invalid(problems) = generate_registration(&options, &[]).unwrap_err() else {
        panic!()
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["matrix.homeserver_url", "matrix.bridge_url", "matrix.server_name"]);
    assert_eq!(std::fs::read_to_string(&config_file).unwrap(), before);
    assert!(!dir.path().join("registration.yaml").exists());
}

#[test]
fn the_command_line_refuses_to_overwrite_and_says_why() {
    let (_dir, config_file) = data_dir();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dm3-bridge"))
            .arg("--config")
            .arg(&config_file)
            .args(["generate-registration", "--homeserver-url", "http://127.0.0.1:8008"])
            .args(["--server-name", "example.org", "--bridge-url", "http://127.0.0.1:9000"])
            .env_remove("DM3_BRIDGE_CONFIG")
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("app_service_config_files"), "{stdout}");
    let token = Config::load(&config_file, []).unwrap().matrix.unwrap().as_token.unwrap();
    assert!(!stdout.contains(token.expose()), "tokens are never printed");

    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");
}
