//! Client for the reference oracle (`interop/oracle.js`).
//!
//! The oracle is a node process that answers newline-delimited JSON requests
//! with the published `@dm3-org/dm3-lib-*` 1.7.1 libraries. Tests use it to
//! compare the crate with the reference implementation live, in both
//! directions. The op list and argument shapes are documented in
//! `interop/oracle.js`.
//!
//! Tests never skip when the oracle is unavailable: a missing node or
//! `interop/node_modules` is a panic that says how to fix it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// How long one request may take before the oracle is declared hung.
/// Generous: the slowest ops (random_user) take milliseconds, but CI
/// machines are shared and node may be cold.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A running oracle process. Requests are answered strictly in order.
pub struct Oracle {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    next_id: u64,
}

/// The repository root: the parent of the `sdk` crate directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

impl Oracle {
    /// Starts `node <repo>/interop/oracle.js`, panicking with instructions
    /// if the node side is not installed. Use [`Oracle::try_spawn`] to get
    /// the error instead.
    #[allow(clippy::panic)]
    pub fn spawn() -> Self {
        match Self::try_spawn() {
            Ok(oracle) => oracle,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Starts the oracle and checks that it answers.
    pub fn try_spawn() -> anyhow::Result<Self> {
        let root = repo_root();
        let interop = root.join("interop");
        let script = interop.join("oracle.js");
        let marker = interop.join("node_modules/@dm3-org/dm3-lib-crypto/package.json");
        if !marker.exists() {
            bail!(
                "the reference DM3 libraries are not installed ({} is missing): \
                 run scripts/install-node-deps.sh",
                marker.display()
            );
        }
        let node = node_binary();
        let mut child = Command::new(&node)
            .arg(&script)
            .current_dir(&interop)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {:?} {}: is Node.js >= 18 installed? \
                     then run scripts/install-node-deps.sh",
                    node,
                    script.display()
                )
            })?;
        let stdin = child.stdin.take().context("oracle stdin not captured")?;
        let stdout = child.stdout.take().context("oracle stdout not captured")?;
        // A reader thread turns the blocking pipe into a channel, so a hung
        // oracle shows up as a timeout instead of a test that never ends.
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("dm3-oracle-reader".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let stop = line.is_err();
                    if tx.send(line).is_err() || stop {
                        break;
                    }
                }
            })
            .context("cannot start the oracle reader thread")?;
        let mut oracle = Oracle { child, stdin: Some(stdin), lines, next_id: 1 };
        let pong = oracle.call("ping", json!({})).context(
            "the oracle did not answer ping: run scripts/install-node-deps.sh and \
             `node interop/oracle.selftest.js`",
        )?;
        if pong != json!("pong") {
            bail!("unexpected ping answer from the oracle: {pong}");
        }
        Ok(oracle)
    }

    /// Sends one request and returns its `result`. An `ok:false` answer
    /// (a rejected argument, a library exception such as a failed
    /// decryption) is an `Err` carrying the oracle's error text.
    pub fn call(&mut self, op: &str, args: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "op": op, "args": args });
        let mut line = serde_json::to_string(&request)?;
        line.push('\n');
        let stdin = self.stdin.as_mut().context("oracle stdin already closed")?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("oracle died? writing request {op}"))?;

        let answer = match self.lines.recv_timeout(CALL_TIMEOUT) {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(anyhow!(e).context("reading from the oracle")),
            Err(RecvTimeoutError::Timeout) => {
                bail!("oracle gave no answer to {op} within {CALL_TIMEOUT:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                bail!("oracle exited while answering {op} (status {status:?}); see its stderr above")
            }
        };
        let response: Value = serde_json::from_str(&answer)
            .with_context(|| format!("oracle wrote a non-JSON line: {answer}"))?;
        if response.get("id") != Some(&json!(id)) {
            bail!("oracle answered out of order: expected id {id}, got {answer}");
        }
        match response.get("ok") {
            Some(Value::Bool(true)) => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
            Some(Value::Bool(false)) => {
                let error = response.get("error").and_then(Value::as_str).unwrap_or("(no error text)");
                Err(anyhow!("oracle {op}: {error}"))
            }
            _ => bail!("malformed oracle answer: {answer}"),
        }
    }

    /// Like [`Oracle::call`], but panics on error; for test bodies.
    #[allow(clippy::panic)]
    #[track_caller]
    pub fn must(&mut self, op: &str, args: Value) -> Value {
        match self.call(op, args) {
            Ok(v) => v,
            Err(e) => panic!("{e:#}"),
        }
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Closing stdin makes the oracle finish and exit on its own.
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node binary: `$DM3_NODE` or `node` from `PATH`.
pub fn node_binary() -> std::ffi::OsString {
    std::env::var_os("DM3_NODE").unwrap_or_else(|| "node".into())
}

/// One document of the random canonical-JSON corpus: the raw JSON text and
/// what dm3-lib-shared's `stringify(JSON.parse(text))` prints for it.
#[derive(Debug, Clone)]
pub struct CorpusEntry {
    pub text: String,
    pub canonical: String,
}

/// Generates `count` documents with `interop/random-json.js` (deterministic
/// for a given `seed`; see that file for what the documents contain).
pub fn random_json_corpus(count: usize, seed: u64) -> anyhow::Result<Vec<CorpusEntry>> {
    let interop = repo_root().join("interop");
    let output = Command::new(node_binary())
        .arg(interop.join("random-json.js"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .current_dir(&interop)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run node interop/random-json.js: run scripts/install-node-deps.sh")?;
    if !output.status.success() {
        bail!("interop/random-json.js failed: {}", output.status);
    }
    let stdout = String::from_utf8(output.stdout).context("random-json.js wrote non-UTF-8")?;
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).with_context(|| format!("bad corpus line: {line}"))?;
            match (v.get("text").and_then(Value::as_str), v.get("canonical").and_then(Value::as_str)) {
                (Some(text), Some(canonical)) => {
                    Ok(CorpusEntry { text: text.to_owned(), canonical: canonical.to_owned() })
                }
                _ => bail!("corpus line without text/canonical: {line}"),
            }
        })
        .collect()
}

/// Runs `f` with one oracle shared by all tests of this test binary (they run
/// on several threads; the lock serialises them). The process is started on
/// first use and exits when the test binary ends (its stdin closes).
pub fn with_oracle<R>(f: impl FnOnce(&mut Oracle) -> R) -> R {
    static SHARED: OnceLock<Mutex<Oracle>> = OnceLock::new();
    let mutex = SHARED.get_or_init(|| Mutex::new(Oracle::spawn()));
    // A panicking test poisons the lock, but the oracle itself is fine.
    let mut guard = mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut guard)
}
