//! A real Matrix homeserver for tests: Synapse from a cached venv, one per test, on a free port.
//!
//! Use it from a test file with `#[path = "support/synapse.rs"] mod synapse;` (tests/support/mod.rs
//! belongs to the node's own harness).
//!
//! - **Install.** `scripts/install-synapse.sh` puts Synapse into `.cache/synapse-venv` (git-ignored,
//!   kept between runs; ~1 min the first time). The harness runs the script once per test binary,
//!   which is a quick check when the venv is there. A failed install fails the test with the
//!   script's message: the Matrix tests are never skipped.
//! - **Config.** Written whole (not `--generate-config`, which costs a Python start-up): bound to
//!   127.0.0.1 only, SQLite, no key servers (no network here), presence off, rate limits raised
//!   for the test users, the given application-service registration, the appservice extensions
//!   for encrypted rooms a deployment enables (docs/engine.md, "Encrypted rooms: plan"), and a
//!   fresh signing key and shared secret. Server name `localhost`.
//! - **Users.** [`Synapse::register_user`] runs `register_new_matrix_user` (the shared-secret admin
//!   registration) and logs in, giving a [`MatrixUser`] that speaks the client-server API with
//!   plain JSON, as any client would.
//! - **Restart.** [`Synapse::stop`] (SIGTERM) or [`Synapse::kill`] (SIGKILL) and
//!   [`Synapse::start_again`] on the same directory and port, or a clean stop and start at once
//!   with [`Synapse::restart`]: what survives a homeserver restart or crash.
//! - **Stop.** On drop the process is killed and its directory removed. Its log is kept in the
//!   directory while it runs and shown in start-up errors.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// The homeserver's name: user ids are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";

static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's directory, installing Synapse first if needed (once per test binary).
pub fn venv() -> Result<PathBuf> {
    INSTALLED
        .get_or_init(|| {
            let script = repo_root().join("scripts/install-synapse.sh");
            let output = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "Synapse is not installed and {} failed ({}):\n{}{}",
                    script.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(std::env::var_os("DM3_SYNAPSE_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join(".cache/synapse-venv")))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A running Synapse.
pub struct Synapse {
    child: Child,
    dir: tempfile::TempDir,
    venv: PathBuf,
    url: String,
    http: reqwest::Client,
}

impl Synapse {
    /// Starts Synapse with the application service in `registration_yaml` and waits until it
    /// answers `/_matrix/client/versions`.
    pub async fn start(registration_yaml: &str) -> Result<Synapse> {
        let venv = venv()?;
        let mut last_error = anyhow!("Synapse did not start");
        // The port is free when we look; another process may take it before Synapse binds it.
        for _ in 0..3 {
            match Self::start_once(&venv, registration_yaml).await {
                Ok(synapse) => return Ok(synapse),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    async fn start_once(venv: &Path, registration_yaml: &str) -> Result<Synapse> {
        let dir = tempfile::Builder::new().prefix("dm3-synapse-").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        write_config(dir.path(), port, registration_yaml)?;
        let child = spawn(venv, dir.path())?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut synapse = Synapse { child, dir, venv: venv.to_owned(), url, http };
        synapse.wait_until_ready().await?;
        Ok(synapse)
    }

    /// Stops Synapse as an operator's restart does (SIGTERM, then waiting for it to exit) and
    /// starts it again on the same data directory, configuration and port; answers once it
    /// serves again. Its users' tokens, rooms and pending appservice transactions survive.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.start_again().await
    }

    /// Stops the process: SIGTERM, and SIGKILL if it has not exited within 30 s. Start it again
    /// with [`start_again`](Self::start_again).
    pub async fn stop(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        if terminated.success() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if self.child.try_wait()?.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.child.kill().ok();
        self.child.wait()?;
        Ok(())
    }

    /// Kills the process as a crash or a lost machine does (SIGKILL: no shutdown, connections
    /// reset) and waits for it to be gone. Start it again with [`start_again`](Self::start_again).
    pub fn kill(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill()?;
            self.child.wait()?;
        }
        Ok(())
    }

    /// Starts the stopped homeserver again on the same directory and port.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            bail!("Synapse at {} is still running", self.url);
        }
        self.child = spawn(&self.venv, self.dir.path())?;
        self.wait_until_ready().await
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        let url = &self.url;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("Synapse exited with {status} at {url}:\n{}", self.log_tail());
            }
            let versions = self.http.get(format!("{url}/_matrix/client/versions")).send().await;
            if versions.is_ok_and(|r| r.status().is_success()) {
                eprintln!("synapse: ready at {url} in {:.1} s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Synapse at {url} did not answer within 90 s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client-server base URL, e.g. `http://127.0.0.1:38211`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last lines of Synapse's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The lines of Synapse's log about application services (pushes, failures, recovery).
    pub fn appservice_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("appservice") || l.contains("transactions/") || l.contains("Starting synapse")
            })
            .collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// How often Synapse has logged recovering an application service it had marked down
    /// (it then pushed the transactions it held while the service was unreachable).
    pub fn appservice_recoveries(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("Successfully recovered application service")).count()
    }

    /// The JSON of every event of `room_id` as Synapse stored it (its `event_json` table): what
    /// the homeserver's operator, and anyone with a copy of its database, can read.
    pub async fn stored_events(&self, room_id: &str) -> Result<Vec<String>> {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions as _, Row as _};
        let options =
            SqliteConnectOptions::new().filename(self.dir.path().join("homeserver.db")).read_only(true);
        let mut connection = options.connect().await?;
        let rows = sqlx::query("SELECT json FROM event_json WHERE room_id = ?")
            .bind(room_id)
            .fetch_all(&mut connection)
            .await?;
        rows.iter().map(|row| row.try_get::<String, _>("json").map_err(Into::into)).collect()
    }

    /// Whether Synapse has handled, for the application services, every device-list change it
    /// holds (their `device_list` position has reached the last entry of `device_lists_stream`).
    /// Synapse announces a change only to those who share a room with its user when it handles
    /// it, which may be seconds after the change: once this holds, a change made before it can
    /// no longer be announced to a room joined after it.
    pub async fn device_list_changes_handled(&self) -> Result<bool> {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions as _, Row as _};
        let options =
            SqliteConnectOptions::new().filename(self.dir.path().join("homeserver.db")).read_only(true);
        let mut connection = options.connect().await?;
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(stream_id), 0) AS last FROM device_lists_stream")
            .fetch_one(&mut connection)
            .await?
            .try_get("last")?;
        let handled: i64 = sqlx::query(
            "SELECT COALESCE(MIN(device_list_stream_id), 0) AS handled FROM application_services_state",
        )
        .fetch_one(&mut connection)
        .await?
        .try_get("handled")?;
        Ok(handled >= last)
    }

    /// How many to-device messages Synapse holds per recipient device (its `device_inbox`
    /// table): a message stays there until its device syncs past it, whether or not it was
    /// pushed to an application service.
    pub async fn device_inbox(&self) -> Result<Vec<(String, String, i64)>> {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions as _, Row as _};
        let options =
            SqliteConnectOptions::new().filename(self.dir.path().join("homeserver.db")).read_only(true);
        let mut connection = options.connect().await?;
        let rows = sqlx::query(
            "SELECT user_id, device_id, COUNT(*) AS n FROM device_inbox GROUP BY user_id, device_id ORDER BY user_id",
        )
        .fetch_all(&mut connection)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("user_id")?, row.try_get("device_id")?, row.try_get("n")?)))
            .collect()
    }

    /// Registers a normal (non-admin) user with `register_new_matrix_user` and logs them in.
    pub async fn register_user(&self, name: &str) -> Result<MatrixUser> {
        let password = self.register_account(name).await?;
        self.log_in(name, &password).await
    }

    /// Registers a normal (non-admin) user with `register_new_matrix_user`; answers the
    /// password, for a client that logs in itself (the matrix-sdk client of `clients/matrix`).
    pub async fn register_account(&self, name: &str) -> Result<String> {
        let password = format!("pw-{name}-{}", random_hex(8)?);
        let output = Command::new(self.venv.join("bin/register_new_matrix_user"))
            .arg("-c")
            .arg(self.dir.path().join("homeserver.yaml"))
            .args(["-u", name, "-p", &password, "--no-admin", &self.url])
            .stdin(Stdio::null())
            .output()
            .context("running register_new_matrix_user")?;
        if !output.status.success() {
            bail!(
                "register_new_matrix_user {name} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(password)
    }

    /// Logs `name` in with `password` (a new device, with no crypto of its own): the plain
    /// client-server API beside a matrix-sdk client of the same account.
    pub async fn log_in(&self, name: &str, password: &str) -> Result<MatrixUser> {
        let login = self
            .http
            .post(format!("{}/_matrix/client/v3/login", self.url))
            .json(&json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": name},
                "password": password,
            }))
            .send()
            .await?;
        let status = login.status();
        let body: Value = login.json().await?;
        if !status.is_success() {
            bail!("logging in {name}: {status} {body}");
        }
        let field = |key: &str| {
            body[key].as_str().map(str::to_owned).ok_or_else(|| anyhow!("login answer without {key}: {body}"))
        };
        Ok(MatrixUser {
            user_id: field("user_id")?,
            access_token: field("access_token")?,
            url: self.url.clone(),
            http: self.http.clone(),
        })
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        // Best effort: the test is ending, and the homeserver's data dies with its directory.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A real user of the homeserver, speaking the client-server API.
#[derive(Clone)]
pub struct MatrixUser {
    pub user_id: String,
    access_token: String,
    url: String,
    http: reqwest::Client,
}

impl MatrixUser {
    /// One authenticated call; answers the JSON body of a 2xx, an error with the body otherwise.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request =
            self.http.request(method.clone(), format!("{}{path}", self.url)).bearer_auth(&self.access_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path} as {}: {status} {body}", self.user_id);
        }
        Ok(body)
    }

    /// Creates a room with `body` (the `/createRoom` request); answers its id.
    pub async fn create_room(&self, body: Value) -> Result<String> {
        let answer = self.call(reqwest::Method::POST, "/_matrix/client/v3/createRoom", Some(body)).await?;
        answer["room_id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no room_id in {answer}"))
    }

    /// Sends a plain text message; answers the event id.
    pub async fn send_text(&self, room_id: &str, txn_id: &str, text: &str) -> Result<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn_id}", encode(room_id));
        let answer =
            self.call(reqwest::Method::PUT, &path, Some(json!({"msgtype": "m.text", "body": text}))).await?;
        answer["event_id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no event_id in {answer}"))
    }

    /// Joins a room (accepting an invite).
    pub async fn join(&self, room_id: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/join", encode(room_id));
        self.call(reqwest::Method::POST, &path, Some(json!({}))).await.map(|_| ())
    }

    /// The room's timeline, oldest first (up to 100 events).
    pub async fn messages(&self, room_id: &str) -> Result<Vec<Value>> {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=100", encode(room_id));
        let answer = self.call(reqwest::Method::GET, &path, None).await?;
        answer["chunk"].as_array().cloned().ok_or_else(|| anyhow!("no chunk in {answer}"))
    }

    /// The room's whole timeline, oldest first: `/messages` paginated forwards, 100 events a
    /// page, until a page comes back empty or without a next token.
    pub async fn timeline(&self, room_id: &str) -> Result<Vec<Value>> {
        const MOST_PAGES: usize = 1_000;
        let mut events = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..MOST_PAGES {
            let mut path = format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=100", encode(room_id));
            if let Some(token) = &from {
                path.push_str(&format!("&from={}", encode(token)));
            }
            let answer = self.call(reqwest::Method::GET, &path, None).await?;
            let chunk = answer["chunk"].as_array().ok_or_else(|| anyhow!("no chunk in {answer}"))?;
            if chunk.is_empty() {
                return Ok(events);
            }
            events.extend(chunk.iter().cloned());
            match answer["end"].as_str() {
                Some(end) => from = Some(end.to_owned()),
                None => return Ok(events),
            }
        }
        bail!("the timeline of {room_id} has more than {MOST_PAGES} pages")
    }

    /// The bodies of the `m.room.message` events `sender` sent to the room, oldest first (the
    /// whole timeline).
    pub async fn bodies_from(&self, room_id: &str, sender: &str) -> Result<Vec<String>> {
        let timeline = self.timeline(room_id).await?;
        Ok(timeline
            .iter()
            .filter(|e| e["sender"] == sender && e["type"] == "m.room.message")
            .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Uploads a file to the media repository; answers its `mxc://` URI.
    pub async fn upload(&self, bytes: Vec<u8>, content_type: &str, filename: &str) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/_matrix/media/v3/upload?filename={}", self.url, encode(filename)))
            .bearer_auth(&self.access_token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("upload as {}: {status} {body}", self.user_id);
        }
        body["content_uri"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no content_uri in {body}"))
    }

    /// Downloads a file through authenticated media, as this user.
    pub async fn download(&self, mxc: &str) -> Result<Vec<u8>> {
        let path = mxc.strip_prefix("mxc://").ok_or_else(|| anyhow!("not an mxc URI: {mxc}"))?;
        let response = self
            .http
            .get(format!("{}/_matrix/client/v1/media/download/{path}", self.url))
            .bearer_auth(&self.access_token)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "download {mxc} as {}: {status} {}",
                self.user_id,
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// The rooms this user is invited to (from one `/sync`).
    pub async fn invited_rooms(&self) -> Result<Vec<String>> {
        let answer = self.call(reqwest::Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await?;
        Ok(answer["rooms"]["invite"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }
}

/// Percent-encodes a path segment (room ids start with `!`, user ids hold `@` and `:`).
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow!("random: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts the homeserver of `dir` (its homeserver.yaml), appending to its log.
fn spawn(venv: &Path, dir: &Path) -> Result<Child> {
    let log = std::fs::File::options().create(true).append(true).open(dir.join("homeserver.log"))?;
    Command::new(venv.join("bin/python"))
        .args(["-m", "synapse.app.homeserver", "-c"])
        .arg(dir.join("homeserver.yaml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting Synapse from {}", venv.display()))
}

/// Writes homeserver.yaml, the signing key and the registration into `dir`; answers the config path.
fn write_config(dir: &Path, port: u16, registration_yaml: &str) -> Result<PathBuf> {
    let registration = dir.join("registration.yaml");
    std::fs::write(&registration, registration_yaml)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("random: {e}"))?;
    let signing_key = dir.join("signing.key");
    std::fs::write(
        &signing_key,
        format!("ed25519 a_test {}\n", base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed)),
    )?;
    let d = dir.display();
    let many = "{per_second: 1000, burst_count: 1000}";
    let config = format!(
        r#"server_name: "{SERVER_NAME}"
pid_file: "{d}/homeserver.pid"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media_store"
signing_key_path: "{signing_key}"
report_stats: false
registration_shared_secret: "{shared}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
url_preview_enabled: false
app_service_config_files: ["{registration}"]
experimental_features:
  msc3202_transaction_extensions: true
  msc2409_to_device_messages_enabled: true
rc_message: {many}
rc_registration: {many}
rc_room_creation: {many}
rc_login:
  address: {many}
  account: {many}
  failed_attempts: {many}
rc_joins:
  local: {many}
  remote: {many}
rc_invites:
  per_room: {many}
  per_user: {many}
  per_issuer: {many}
"#,
        signing_key = signing_key.display(),
        registration = registration.display(),
        shared = random_hex(16)?,
        macaroon = random_hex(16)?,
        form = random_hex(16)?,
    );
    let path = dir.join("homeserver.yaml");
    std::fs::write(&path, config)?;
    Ok(path)
}
