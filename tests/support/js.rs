//! A Node.js helper process from `interop/` speaking the oracle's NDJSON protocol: one
//! `{"id","op","args"}` line in, one `{"id","ok","result"|"error"}` line out, in order
//! (`interop/README.md`). Used for `interop/ds-client.js`, the reference libraries acting as
//! a DM3 client over HTTP.
//!
//! Async (tokio's process and pipes), so that a test can call the client while the node it
//! talks to runs on the same runtime. A missing `node` or `interop/node_modules` fails the
//! test with the command that fixes it; the interop tests never skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// One request may take this long (cold node, shared CI machine).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub struct JsProcess {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    script: String,
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

impl JsProcess {
    /// Starts `node interop/<script>` and checks that it answers `ping`.
    pub async fn spawn(script: &str) -> Self {
        let dir = interop_dir();
        let marker = dir.join("node_modules/@dm3-org/dm3-lib-crypto/package.json");
        assert!(
            marker.exists(),
            "the reference DM3 libraries are not installed ({} is missing): run scripts/install-node-deps.sh",
            marker.display()
        );
        let node = std::env::var("DM3_NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(dir.join(script))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {node} {script}: {e}; is Node.js >= 18 installed?"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut process = Self { _child: child, stdin, lines, next_id: 1, script: script.to_owned() };
        assert_eq!(process.call("ping", json!({})).await, json!("pong"));
        process
    }

    /// Calls `op`; an `ok:false` answer (a library exception) fails the test with its text.
    pub async fn call(&mut self, op: &str, args: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({"id": id, "op": op, "args": args}).to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{} did not answer {op} within {CALL_TIMEOUT:?}", self.script))
            .unwrap()
            .unwrap_or_else(|| panic!("{} exited while answering {op}", self.script));
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["id"], id, "answers come in order");
        if answer["ok"] != true {
            panic!("{} {op} failed: {}", self.script, answer["error"].as_str().unwrap_or("?"));
        }
        answer["result"].clone()
    }
}

/// The fields of a user that `ds-client.js` made (`new_user`), typed.
pub mod user {
    use alloy_primitives::Address;
    use dm3::ens::EnsName;
    use dm3::profile::SignedUserProfile;
    use serde_json::Value;

    pub fn ens(user: &Value) -> EnsName {
        user["ensName"].as_str().unwrap().parse().unwrap()
    }

    pub fn name(user: &Value) -> &str {
        user["ensName"].as_str().unwrap()
    }

    pub fn address(user: &Value) -> Address {
        user["address"].as_str().unwrap().parse().unwrap()
    }

    pub fn profile(user: &Value) -> SignedUserProfile {
        SignedUserProfile::from_value(user["signedUserProfile"].clone()).unwrap()
    }
}
