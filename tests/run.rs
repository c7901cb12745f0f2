//! `dm3-bridge run` as an operator starts it: logs in the configured format, serves, stops
//! cleanly on SIGTERM, and never logs the master key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::node::init_data_dir;

/// Starts the binary and returns it with a channel of its stderr lines.
fn spawn_run(config: &Path, envs: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dm3-bridge"));
    command
        .env_remove("DM3_BRIDGE_MASTER_KEY")
        .env_remove("DM3_BRIDGE_CONFIG")
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Collects lines until one contains `needle`; panics after a timeout.
fn wait_for(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no log line with {needle:?}; got:\n{}", seen.join("\n")),
        }
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the node did not exit within 10 s of SIGTERM");
}

#[tokio::test]
async fn json_logs_serve_and_stop_cleanly_on_sigterm() {
    let (dir, config) = init_data_dir();
    let master_key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let (mut child, lines) = spawn_run(&config, &[("DM3_BRIDGE_LOG__FORMAT", "json")]);
    let mut seen = Vec::new();
    let listening = wait_for(&lines, &mut seen, "relay listening");
    let event: serde_json::Value = serde_json::from_str(&listening).unwrap();
    let addr = event["addr"].as_str().unwrap().to_owned();

    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    sigterm(&child);
    wait_for(&lines, &mut seen, "stopped");
    assert!(wait_exit(&mut child).success());
    for line in seen.iter().chain(lines.try_iter().collect::<Vec<_>>().iter()) {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not a JSON log line: {line}");
        assert!(!line.contains(master_key.trim()), "the master key was logged");
    }
}

#[tokio::test]
async fn text_logs_by_default() {
    let (_dir, config) = init_data_dir();
    let (mut child, lines) = spawn_run(&config, &[]);
    let mut seen = Vec::new();
    let listening = wait_for(&lines, &mut seen, "relay listening");
    assert!(serde_json::from_str::<serde_json::Value>(&listening).is_err());
    assert!(listening.contains("INFO"), "{listening}");
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

#[test]
fn a_wrong_master_key_stops_the_binary_with_the_reason() {
    let (_dir, config) = init_data_dir();
    let other = dm3_bridge::vault::MasterKey::generate().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dm3-bridge"))
        .env("DM3_BRIDGE_MASTER_KEY", other.to_base64().as_str())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("master key does not open the sealed node keys: wrong key file?"), "{stderr}");
}
