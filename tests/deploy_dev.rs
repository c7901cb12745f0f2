//! `deploy/dev/run.sh --check` works: the dev setup the README walks through starts a real
//! Synapse and the bridge, and one message goes each way (Matrix → DM3 → Matrix) through the
//! reference DM3 client. Run here so that the script cannot rot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
fn the_dev_setup_does_a_round_trip() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dev_dir = tempfile::Builder::new().prefix("dm3-deploy-dev-").tempdir().unwrap();
    let started = Instant::now();
    let mut command = Command::new("bash");
    command
        .arg(format!("{root}/deploy/dev/run.sh"))
        .arg("--check")
        .env("DEV_BRIDGE_BIN", env!("CARGO_BIN_EXE_dm3-bridge"))
        .env("DEV_DIR", dev_dir.path())
        .stdin(Stdio::null());
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = |name: &str| std::fs::read_to_string(dev_dir.path().join(name)).unwrap_or_default();
    assert!(
        output.status.success(),
        "deploy/dev/run.sh --check failed ({}):\n{stdout}\n{stderr}\n--- bridge.log:\n{}\n--- homeserver.log (tail):\n{}",
        output.status,
        log("bridge.log"),
        log("synapse/homeserver.log").lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    assert!(stdout.contains("dev check: OK"), "{stdout}\n{stderr}");
    assert!(stderr.contains("Matrix → DM3") && stderr.contains("DM3 → Matrix"), "{stderr}");
    // Ctrl-C or the end of the check stops both: nothing of the setup keeps running.
    assert!(stderr.contains("dev: stopped"), "{stderr}");
    eprintln!("deploy/dev/run.sh --check took {:.1} s", started.elapsed().as_secs_f64());
}
