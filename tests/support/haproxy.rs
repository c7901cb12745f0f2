//! HAProxy in front of a node's replicas, with the configuration the repository ships
//! (`deploy/haproxy/haproxy.cfg`, docs/scaling.md), so the test runs what an operator deploys.
//!
//! Use it with `#[path = "support/haproxy.rs"] mod haproxy;`. The binary comes from the Debian
//! package `haproxy`, which `scripts/test.sh` installs when missing; without it the test fails
//! and says so, never skips.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configuration, as deployed.
fn config_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg")
}

/// An `haproxy` process balancing `127.0.0.1:port` over three replicas.
pub struct Haproxy {
    child: Child,
    port: u16,
}

impl Haproxy {
    /// Starts HAProxy on `127.0.0.1:port` in front of the replicas at `127.0.0.1:<replicas[i]>`,
    /// and waits until it accepts connections.
    pub async fn start(port: u16, replicas: [u16; 3]) -> Haproxy {
        let mut command = Command::new("haproxy");
        command
            .arg("-db") // in the foreground, a child of the test
            .arg("-f")
            .arg(config_file())
            .env("DM3_LB_BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (i, replica) in replicas.iter().enumerate() {
            command.env(format!("DM3_REPLICA_{}", i + 1), format!("127.0.0.1:{replica}"));
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("could not run haproxy ({e}): install it (apt-get install haproxy; scripts/test.sh does)")
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {port} within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Haproxy { child, port }
    }

    /// `http://127.0.0.1:<port>`, where clients, the homeserver and Telegram reach the node.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
