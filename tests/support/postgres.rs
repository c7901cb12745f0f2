//! A throwaway PostgreSQL cluster, started once per test binary.
//!
//! The recipe: `initdb` + `pg_ctl` as user `postgres`
//! (PostgreSQL refuses to run as root), on a free port, with the socket and data in a new
//! temporary directory, and `fsync=off` because test data need not survive a crash.
//!
//! Each test gets its own database (`CREATE DATABASE`), so tests run in parallel without
//! seeing each other's rows.
//!
//! Cleanup: the cluster must not outlive the test binary, but statics are never dropped. A
//! detached watchdog shell polls `/proc/<test pid>` and, once the test process is gone, stops
//! the cluster (`-m immediate`) and removes its directory. That also covers a test binary
//! killed by a panic or a signal.
//!
//! Benchmarks that claim durability call [`keep_durability`] before the first use: the
//! cluster then keeps PostgreSQL's default `fsync`, `synchronous_commit` and
//! `full_page_writes`.
//!
//! Missing binaries are a test failure with a clear message, never a silent skip: the storage
//! suite is only meaningful if it ran on both backends. Set `DM3_TEST_PG_BIN` to use another
//! PostgreSQL installation.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use dm3_bridge::config::DatabaseUrl;
use sqlx::Connection;

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Cluster {
    port: u16,
    /// What [`stop_cluster`] and [`start_cluster`] need to run `pg_ctl` again.
    as_root: bool,
    pg_ctl: PathBuf,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);
static DURABLE: AtomicBool = AtomicBool::new(false);

/// Keeps `fsync` on in the cluster this process starts; call before the first
/// [`fresh_database`]. For benchmarks that claim durability.
pub fn keep_durability() {
    DURABLE.store(true, Ordering::SeqCst);
}

/// A URL to a new, empty database in the cluster (started on first use).
pub async fn fresh_database() -> DatabaseUrl {
    let port = cluster().port;
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test cluster at {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = conn.close().await;
    DatabaseUrl::new(format!("postgres://postgres@127.0.0.1:{port}/{name}"))
}

fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

/// Stops this test binary's cluster as a crash does (`pg_ctl stop -m immediate`: no checkpoint,
/// every connection cut), for the fault tests; [`start_cluster`] brings it back on the same
/// port and data. Every test of the binary loses its database meanwhile, so a binary that
/// calls this holds one test.
pub fn stop_cluster() {
    cluster_ctl("-m immediate stop");
}

/// Starts the cluster [`stop_cluster`] stopped, and waits until it accepts connections.
pub fn start_cluster() {
    let cluster = cluster();
    cluster_ctl(&start_arguments(cluster.port, &cluster.dir));
}

fn cluster_ctl(arguments: &str) {
    let cluster = cluster();
    let line = format!("{} -D {} {arguments}", cluster.pg_ctl.display(), cluster.dir.join("data").display());
    as_postgres(cluster.as_root, &line).unwrap_or_else(|e| panic!("pg_ctl {arguments}: {e}"));
}

fn start() -> Result<Cluster, String> {
    let bin = PathBuf::from(std::env::var("DM3_TEST_PG_BIN").unwrap_or(DEFAULT_BIN.to_owned()));
    for tool in ["initdb", "pg_ctl"] {
        if !bin.join(tool).is_file() {
            return Err(format!(
                "PostgreSQL binaries not found: {} is missing. The storage tests must run on \
                 PostgreSQL too; install postgresql-15 (Debian: apt-get install postgresql-15) \
                 or point DM3_TEST_PG_BIN at a PostgreSQL bin directory.",
                bin.join(tool).display()
            ));
        }
    }
    let as_root = run_output(Command::new("id").arg("-u"))?.trim() == "0";
    let dir = tempfile::Builder::new()
        .prefix("dm3-pg-")
        .tempdir()
        .map_err(|e| format!("creating the cluster directory: {e}"))?
        .keep();
    if as_root {
        run_output(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let data = dir.join("data");
    as_postgres(
        as_root,
        &format!(
            "{} -D {} -A trust -U postgres -E UTF8 --no-sync",
            bin.join("initdb").display(),
            data.display()
        ),
    )?;
    // The port is free when we look; another process could take it before PostgreSQL binds
    // it, so try a few times.
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let started = as_postgres(
            as_root,
            &format!(
                "{} -D {} {}",
                bin.join("pg_ctl").display(),
                data.display(),
                start_arguments(port, &dir)
            ),
        );
        match started {
            Ok(_) => {
                watchdog(as_root, &bin, &dir)?;
                return Ok(Cluster { port, as_root, pg_ctl: bin.join("pg_ctl"), dir });
            }
            Err(e) => last_error = e,
        }
    }
    Err(format!(
        "the test PostgreSQL cluster did not start (log: {}): {last_error}",
        dir.join("pg.log").display()
    ))
}

/// `pg_ctl`'s arguments after `-D` that start the cluster in `dir` on `port` and wait for it.
fn start_arguments(port: u16, dir: &Path) -> String {
    let durability = if DURABLE.load(Ordering::SeqCst) {
        ""
    } else {
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    };
    format!(
        "-l {} -w -t 30 -o '-p {port} -k {} -c listen_addresses=127.0.0.1 {durability} \
         -c max_connections=300' start",
        dir.join("pg.log").display(),
        dir.display()
    )
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Runs a shell command line as the `postgres` user (or as ourselves when not root).
fn as_postgres(as_root: bool, command_line: &str) -> Result<String, String> {
    if as_root {
        run_output(Command::new("su").args(["postgres", "-s", "/bin/sh", "-c"]).arg(command_line))
    } else {
        run_output(Command::new("/bin/sh").arg("-c").arg(command_line))
    }
}

fn run_output(command: &mut Command) -> Result<String, String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("running {command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Stops the cluster and removes its directory once this test process has exited.
fn watchdog(as_root: bool, bin: &Path, dir: &Path) -> Result<(), String> {
    let stop =
        format!("{} -D {} -m immediate stop", bin.join("pg_ctl").display(), dir.join("data").display());
    let stop = if as_root { format!("su postgres -s /bin/sh -c '{stop}'") } else { stop };
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("setsid")
        .arg("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("starting the cluster watchdog: {e}"))
}
