//! The node as a hostile client meets it: the real `dm3-bridge` binary in its own process (so
//! that the memory measured is the node's alone), one registered user whose token opens the
//! authenticated routes, raw HTTP/1.1 over `TcpStream`, and the node's RSS from `/proc`.
//!
//! Use it with `#[path = "support/bridge_process.rs"] mod bridge_process;` and
//! `#[path = "support/hostile.rs"] mod hostile;`. Settings (short limits) are `DM3_BRIDGE_…`
//! variables, as an operator would give them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dm3::crypto::eth::{Wallet, checksum};
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::profile::UserProfile;
use dm3_bridge::config::DatabaseUrl;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::bridge_process::BridgeProcess;

/// The node's name, and the user registered on it.
pub const NODE: &str = "relay.hostile.eth";
pub const USER: &str = "bob.hostile.eth";

/// A running node and the session token of [`USER`].
pub struct HostileNode {
    pub process: BridgeProcess,
    pub token: String,
}

impl HostileNode {
    /// `dm3-bridge run` with `settings` on `database` (`None`: SQLite in the data directory),
    /// and [`USER`] registered through `POST /profile`.
    pub async fn start(database: Option<&DatabaseUrl>, settings: &[(&str, &str)]) -> HostileNode {
        let wallet = Wallet::generate();
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        let profile = UserProfile::from_keys(&keys, [NODE]).sign(&wallet);
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let mut process = BridgeProcess::init(NODE, free_port());
        process.set_env(
            "DM3_BRIDGE_NAMES__STATIC",
            format!(
                "[{{ name = {}, address = {}, profile = {} }}]",
                quoted(USER),
                quoted(&checksum(&wallet.address())),
                quoted(&profile.to_text_record())
            ),
        );
        if let Some(url) = database {
            process.set_env("DM3_BRIDGE_DATABASE__URL", url.expose());
        }
        for (key, value) in settings {
            process.set_env(*key, *value);
        }
        process.start().await;
        // No idle connection is kept: the tests count this address's connections against
        // `max_connections_per_ip`, and a pooled one left from here would take a slot.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let response = client
            .post(process.url(&format!("/profile/{USER}")))
            .json(&profile.to_value())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "registering {USER}");
        let token: String = response.json().await.unwrap();
        HostileNode { process, token }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.process.port()))
    }

    /// The node's resident memory now (`VmRSS`), in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// The most resident memory since the last [`reset_peak`](Self::reset_peak) (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// Starts a new peak: `VmHWM` becomes `VmRSS` (proc(5), `clear_refs` value 5).
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.process.pid()), "5").unwrap();
    }

    /// The RSS once it stopped moving (two readings a second apart within 1 MiB), waiting at
    /// most `patience`; the last reading if it never settled.
    pub async fn settled_rss_mib(&self, patience: Duration) -> f64 {
        let deadline = Instant::now() + patience;
        let mut last = self.rss_mib();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.rss_mib();
            if (now - last).abs() < 1.0 || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// Waits until the RSS is at most `limit` MiB, for at most `patience`; the last reading.
    pub async fn rss_falls_to(&self, limit: f64, patience: Duration) -> f64 {
        let deadline = Instant::now() + patience;
        loop {
            let now = self.rss_mib();
            if now <= limit || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn status_kib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
        line[field.len()..].trim().trim_end_matches("kB").trim().parse().unwrap()
    }

    /// A new connection to the node from 127.0.0.1.
    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr()).await.unwrap()
    }

    /// A new connection to the node from another loopback address (all of 127/8 is local).
    pub async fn connect_from(&self, source: [u8; 4]) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket.connect(self.addr()).await.unwrap()
    }

    /// The request head of a `syncAcknowledgements` POST of `length` bytes for [`USER`].
    pub fn ack_head(&self, length: usize) -> String {
        format!(
            "POST /delivery/messages/{USER}/syncAcknowledgements HTTP/1.1\r\nHost: node\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
            self.token
        )
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A full acknowledgement list: [`MAX_ACKS`](dm3_bridge::routes::acknowledgements::MAX_ACKS)
/// entries from 101 senders, ~160 bytes each (about 16 MB), as a client that acknowledges a
/// whole `incoming` answer sends it.
pub fn full_ack_body() -> Vec<u8> {
    let mut body = String::from(r#"{"acknowledgements":["#);
    for i in 0..dm3_bridge::routes::acknowledgements::MAX_ACKS {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"contactAddress":"sender-{:03}-of-the-hostile-suite.relay.hostile.eth","messageHash":"0x{:064x}"}}"#,
            i % 101,
            i
        ));
    }
    body.push_str("]}");
    body.into_bytes()
}

/// The status of one HTTP/1.1 answer read from `stream`, its body read to its
/// `Content-Length`; `None` if the connection closed or nothing came within `wait`.
pub async fn read_answer(stream: &mut (impl AsyncRead + Unpin), wait: Duration) -> Option<u16> {
    tokio::time::timeout(wait, async {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        Some(status)
    })
    .await
    .ok()
    .flatten()
}

/// `GET /health` on `stream` (kept alive); its status, or `None` as [`read_answer`].
pub async fn health(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), wait: Duration) -> Option<u16> {
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n").await.ok()?;
    read_answer(stream, wait).await
}

/// How long until the node closed `stream`, reading (and dropping) whatever it sends; `None`
/// if it was still open after `wait`.
pub async fn closed_within(stream: &mut (impl AsyncRead + Unpin), wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(wait, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}
