//! The bridge as its own OS process: the real `dm3-bridge` binary, for what an in-process node
//! cannot show, a `kill -9`.
//!
//! Use it with `#[path = "support/bridge_process.rs"] mod bridge_process;`. [`BridgeProcess::init`]
//! runs `dm3-bridge init` in a new directory; settings then come from `DM3_BRIDGE_…` variables
//! on top of the file `init` (and `generate-registration`) wrote (docs/configuration.md), so a
//! restart runs exactly the same configuration on the same data directory, database and port.
//! The child sees no `DM3_BRIDGE_…` variable of the test's own environment. Its stderr goes to
//! `bridge.log` in the data directory, appended across restarts and shown in failures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_dm3-bridge");
/// The line `run` logs once the node serves (after the homeserver answered the ping).
const LISTENING: &str = "relay listening";

/// A `dm3-bridge run` child process and the data directory it runs on.
pub struct BridgeProcess {
    dir: tempfile::TempDir,
    config_file: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// How many times the node finished starting (lines [`LISTENING`] in the log).
    starts: usize,
}

impl BridgeProcess {
    /// `dm3-bridge init` in a new directory: a node named `name`, listening on and reached at
    /// `127.0.0.1:port`.
    pub fn init(name: &str, port: u16) -> BridgeProcess {
        Self::init_behind(name, &format!("http://127.0.0.1:{port}"), port)
    }

    /// [`init`](Self::init) for a node reached at `public_url` (a load balancer in front of
    /// it), listening on `127.0.0.1:port`.
    pub fn init_behind(name: &str, public_url: &str, port: u16) -> BridgeProcess {
        let dir = tempfile::Builder::new().prefix("dm3-bridge-proc-").tempdir().unwrap();
        let address = format!("127.0.0.1:{port}");
        let process = BridgeProcess {
            config_file: dir.path().join("config.toml"),
            dir,
            port,
            env: Vec::new(),
            child: None,
            starts: 0,
        };
        let data_dir = process.dir.path().to_str().unwrap().to_owned();
        process.run_command(&[
            "init",
            "--data-dir",
            &data_dir,
            "--name",
            name,
            "--public-url",
            public_url,
            "--listen",
            &address,
        ]);
        process
    }

    /// Another process of the same node, for replicas on one PostgreSQL database: the same
    /// configuration file (so the same data directory and keys; start this one first, so that
    /// the keys made at the first start exist) and environment, listening on `127.0.0.1:port`;
    /// its own log.
    pub fn replica(&self, port: u16) -> BridgeProcess {
        let dir = tempfile::Builder::new().prefix("dm3-bridge-replica-").tempdir().unwrap();
        let mut replica = BridgeProcess {
            dir,
            config_file: self.config_file.clone(),
            port,
            env: self.env.clone(),
            child: None,
            starts: 0,
        };
        replica.set_env("DM3_BRIDGE_NODE__LISTEN", format!("127.0.0.1:{port}"));
        replica
    }

    /// Whether the process runs (it was started and not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the bridge is running").id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Sets a variable of the child's environment (for this and every later start).
    pub fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
    }

    /// `dm3-bridge generate-registration` for a homeserver named `server_name` that reaches
    /// the bridge at [`base`](Self::base); answers the registration YAML. The homeserver's URL
    /// is not known yet: set `DM3_BRIDGE_MATRIX__HOMESERVER_URL` once it runs.
    pub fn generate_registration(&self, server_name: &str) -> String {
        self.generate_registration_reached_at(server_name, &self.base())
    }

    /// [`generate_registration`](Self::generate_registration) for a homeserver that reaches the
    /// bridge at `bridge_url` (a load balancer in front of it).
    pub fn generate_registration_reached_at(&self, server_name: &str, bridge_url: &str) -> String {
        self.run_command(&[
            "generate-registration",
            "--homeserver-url",
            "http://127.0.0.1:1",
            "--server-name",
            server_name,
            "--bridge-url",
            bridge_url,
        ]);
        std::fs::read_to_string(self.dir.path().join("registration.yaml")).unwrap()
    }

    /// Runs one subcommand with the config and environment to the end; panics unless it exits 0.
    pub fn run_command(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        if args.first() != Some(&"init") {
            command.arg("--config").arg(&self.config_file);
        }
        let output = command.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            output.status.success(),
            "dm3-bridge {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn command(&self) -> Command {
        let mut command = Command::new(BINARY);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DM3_BRIDGE_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts `dm3-bridge run` and waits until it serves (it logged that it listens, so the
    /// homeserver answered its ping).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the bridge is already running");
        let log = std::fs::File::options().create(true).append(true).open(self.log_path()).unwrap();
        let child = self
            .command()
            .arg("--config")
            .arg(&self.config_file)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("the bridge exited with {status} while starting:\n{}", self.log_tail(40));
            }
            let starts = self.log().matches(LISTENING).count();
            if starts > self.starts {
                self.starts = starts;
                eprintln!("bridge: serving at {} in {:.1} s", self.base(), started.elapsed().as_secs_f64());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not start within 60 s:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process ends at once, whatever it was doing.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the bridge is running");
        // `Child::kill` sends SIGKILL on Unix.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "the bridge had exited by itself with {status} before the kill");
    }

    /// SIGTERM, waiting up to 30 s for a graceful exit.
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("the bridge is running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the bridge exited with {status}:\n{}", self.log_tail(40));
                return;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("the bridge did not stop within 30 s of SIGTERM:\n{}", self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("bridge.log")
    }

    /// Everything the bridge logged, across its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The sum of the samples of `metric` whose labels include each of `labels`
    /// (`outcome="retry"`), as this process's `/metrics` says now (read with the admin token
    /// `token`).
    pub async fn metric_sum(&self, token: &str, metric: &str, labels: &[&str]) -> f64 {
        let response =
            reqwest::Client::new().get(self.url("/metrics")).bearer_auth(token).send().await.unwrap();
        let text = response.text().await.unwrap();
        let series = format!("{metric}{{");
        text.lines()
            .filter(|line| line.starts_with(&series) && labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        // Best effort: the test is ending, and the data dies with its directory.
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
