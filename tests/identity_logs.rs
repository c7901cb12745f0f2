//! The binary at debug level, as an operator may run it while managing identities: its logs
//! never contain the admin token, the master key, or any key of any identity version.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dm3::encoding::hex_encode;
use dm3::ens::EnsName;
use dm3_bridge::config::Config;
use dm3_bridge::identities::{IdentityVault, NameScheme};
use dm3_bridge::store::{Store, StoreOptions};
use dm3_bridge::vault::MasterKey;
use serde_json::{Value, json};
use support::node::init_data_dir;

const TOKEN: &str = "log-test-admin-token-0123456789";
const PARENT: &str = "bridge.example.eth";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_carry_no_secret() {
    let (dir, config_file) = init_data_dir();
    let envs = [
        ("DM3_BRIDGE_IDENTITIES__PARENT", PARENT),
        ("DM3_BRIDGE_ADMIN__TOKEN", TOKEN),
        ("DM3_BRIDGE_LOG__LEVEL", "debug"),
        ("DM3_BRIDGE_LOG__FORMAT", "json"),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_dm3-bridge"))
        .env_remove("DM3_BRIDGE_MASTER_KEY")
        .envs(envs)
        .arg("--config")
        .arg(&config_file)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).expect("the node did not start");
        seen.push(line.clone());
        if line.contains("relay listening") {
            break serde_json::from_str::<Value>(&line).unwrap()["addr"].as_str().unwrap().to_owned();
        }
    };

    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let create = json!({"network": "matrix", "userId": "@erin:example.org"});
    let created: Value = client
        .post(format!("{base}/admin/identities"))
        .bearer_auth(TOKEN)
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = created["name"].as_str().unwrap().to_owned();
    for path in ["rotate", "disable", "enable"] {
        let response = client
            .post(format!("{base}/admin/identities/{name}/{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
    }
    // A wrong token is refused without being echoed or logged.
    let wrong =
        client.get(format!("{base}/admin/identities")).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(!wrong.text().await.unwrap().contains("not-the-token"));

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    seen.extend(lines.try_iter());
    let log = seen.join("\n");
    assert!(log.contains("identity keys rotated"), "the operations were not logged at all:\n{log}");

    // Every secret that existed: the token, the master key, both key versions of the identity.
    let env: Vec<(String, String)> = envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let config = Config::load(&config_file, env.clone()).unwrap();
    let (master, _) = MasterKey::resolve(&config, &env).unwrap();
    let mut secrets = vec![TOKEN.to_owned(), master.to_base64().to_string()];
    let store = Store::open(&config.database_url(), &StoreOptions::default()).await.unwrap();
    let vault = IdentityVault::new(
        store.clone(),
        Arc::new(master),
        Some(NameScheme::new(PARENT, "tg", "mx").unwrap()),
        EnsName::parse(&config.node.name).unwrap(),
    );
    let keys = vault.opening_keys(&EnsName::parse(&name).unwrap()).await.unwrap();
    assert_eq!(keys.len(), 2);
    for version in &keys {
        secrets.push(hex_encode(version.wallet().secret_bytes().as_ref())[2..].to_owned());
        secrets.push(version.profile_keys().encryption.secret_b64().to_string());
        secrets.push(version.profile_keys().signing.secret_b64().to_string());
    }
    store.close().await;
    for secret in secrets {
        assert!(!log.contains(&secret), "a secret is in the log");
    }
    drop(dir);
}
