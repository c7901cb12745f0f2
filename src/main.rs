//! `dm3-bridge`: the command line of the relay node.
//!
//! The binary edge: parse arguments, read the environment once, call the library, turn errors
//! into messages and exit codes. Everything else lives in the library (`src/lib.rs`), where the
//! integration tests reach it.
//!
//! ```text
//! dm3-bridge init --data-dir DIR --name NODE_ENS_NAME --public-url URL [--listen ADDR]
//! dm3-bridge --config DIR/config.toml check
//! dm3-bridge --config DIR/config.toml run
//! dm3-bridge --config DIR/config.toml profile [--json]
//! dm3-bridge --config DIR/config.toml identity create|list|show|disable|enable|delete|rotate|profile|conversations|gateway
//! dm3-bridge --config DIR/config.toml generate-registration [--homeserver-url URL] [--server-name NAME] [--bridge-url URL] [--force]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dm3_bridge::admin_cli::{AdminCommand, IdentityCommand, JobCommand, PortalCommand};
use dm3_bridge::check::check;
use dm3_bridge::config::Config;
use dm3_bridge::config::env::{CONFIG_VAR, process_env};
use dm3_bridge::delivery::Relay;
use dm3_bridge::ds_profile::NodeDsProfile;
use dm3_bridge::init::{InitOptions, init};
use dm3_bridge::matrix::generate::{GenerateOptions, generate_registration};
use dm3_bridge::names::chain::build_directory;
use dm3_bridge::node::Node;
use dm3_bridge::telemetry;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// mimalloc instead of glibc's malloc: the node allocates and frees many short-lived buffers
/// per message (JSON, envelopes, HTTP bodies) from two runtime threads, and glibc's free-list
/// upkeep was ~15% of its CPU samples. Measured side by side (docs/benchmarks.md, "Bridge
/// engine"): 10–15% less CPU per bridged message.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often [`return_freed_memory_regularly`] has mimalloc give memory back.
const TRIM_INTERVAL: Duration = Duration::from_secs(2);

/// mimalloc gives freed memory back to the OS ("purges" it) a second after it was freed, but
/// only at a later allocator event (a page freed, a thread ending). A node that goes quiet after
/// a large request keeps that request's memory as long as it stays quiet (docs/relay.md,
/// "Memory"). A thread's end makes mimalloc purge whatever is due in all of its arenas, so a
/// helper thread starts and ends an empty thread every [`TRIM_INTERVAL`]: a quiet node is back
/// near its idle RSS a few seconds after the last large request, and a busy one pays one thread
/// start per interval.
///
/// The alternatives were worse: `mi_collect` is reachable only through `unsafe` FFI, which the
/// workspace forbids; `MIMALLOC_PURGE_DELAY=0` must be in the environment before the process
/// starts (setting it from here is `unsafe` too) and purges on every free, costing CPU under
/// load. An operator can still tune mimalloc with its `MIMALLOC_*` variables.
fn return_freed_memory_regularly() -> std::io::Result<()> {
    std::thread::Builder::new().name("allocator-trim".to_owned()).spawn(|| {
        loop {
            std::thread::sleep(TRIM_INTERVAL);
            // The allocation makes the thread one mimalloc knows, so that its end is an event.
            // A thread that cannot start now (out of threads) is tried again next round.
            let _ = std::thread::Builder::new()
                .name("allocator-trim-1".to_owned())
                .spawn(|| drop(std::hint::black_box(vec![0u8; 64])))
                .map(std::thread::JoinHandle::join);
        }
    })?;
    Ok(())
}

/// Turns transparent huge pages off for this process, before its threads allocate.
///
/// mimalloc reserves its memory in large aligned arenas, and where the kernel's THP mode is
/// `always` (Debian's default) every 2 MiB of arena the node touches becomes a whole huge page:
/// an idle node held 11.7 MiB of anonymous memory with them and 2.6 MiB without, its RSS
/// 28.7 against 19.6 MiB (docs/benchmarks.md, "Idle memory"). The node's working set is small
/// and scattered (buffers per request), so huge pages buy it little TLB reach for that price.
/// The flag is the process's (`prctl(PR_SET_THP_DISABLE)`), and mimalloc is built with
/// `no_thp` so that it does not ask for huge pages itself (`madvise`); it took both to get there
/// (the flag alone: 6.1 MiB anonymous). A kernel without the flag leaves THP as it was, which
/// costs memory, not correctness, so a failure is a warning.
#[cfg(target_os = "linux")]
fn without_transparent_huge_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: could not turn transparent huge pages off: {error}");
    }
}

#[cfg(not(target_os = "linux"))]
fn without_transparent_huge_pages() {}

/// A DM3 message relay node that bridges DM3 to Matrix and Telegram.
///
/// Every config key can be overridden by an environment variable DM3_BRIDGE_<SECTION>__<KEY>,
/// e.g. DM3_BRIDGE_DATABASE__URL. The master key can be given as DM3_BRIDGE_MASTER_KEY (base64).
#[derive(Parser, Debug)]
#[command(name = "dm3-bridge", version, about, long_about = None)]
struct Cli {
    /// The config file (written by `init` as DIR/config.toml).
    #[arg(long, global = true, env = CONFIG_VAR, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a data directory: a commented config.toml, master.key (mode 0600, unless
    /// DM3_BRIDGE_MASTER_KEY is set) and the sealed node keys. Never overwrites.
    Init {
        /// The directory to create or fill.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The node's ENS name, e.g. relay.example.eth.
        #[arg(long, value_name = "NODE_ENS_NAME")]
        name: String,
        /// The URL DM3 clients reach the node at, e.g. https://relay.example.org.
        #[arg(long, value_name = "URL")]
        public_url: String,
        /// The address to listen on [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Validate the config and the keys; print every problem and exit non-zero if any.
    Check,
    /// Run the node until SIGTERM or ctrl-c.
    Run,
    /// Print the node's delivery-service profile and the network.dm3.deliveryService text
    /// record to publish on the node's ENS name, so that DM3 clients find it.
    Profile {
        /// Print one JSON object {name, profile, textRecordKey, textRecord} instead.
        #[arg(long)]
        json: bool,
    },
    /// Manage virtual identities (the same operations as the admin API); prints JSON.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// List, show or unlink portals (network conversations bridged to DM3); prints JSON.
    Portal {
        #[command(subcommand)]
        command: PortalCommand,
    },
    /// List, show, retry or drop jobs of the engine's queues (inbox, outbox); prints JSON.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Write the Matrix homeserver's registration file (matrix.registration_file) with fresh
    /// tokens, and put the tokens into [matrix] of the config file, keeping its comments.
    GenerateRegistration {
        /// The homeserver's client-server URL as this node reaches it [default: matrix.homeserver_url].
        #[arg(long, value_name = "URL")]
        homeserver_url: Option<String>,
        /// The homeserver's name, the part after `:` in user ids [default: matrix.server_name].
        #[arg(long, value_name = "NAME")]
        server_name: Option<String>,
        /// The URL the homeserver reaches this node at [default: matrix.bridge_url].
        #[arg(long, value_name = "URL")]
        bridge_url: Option<String>,
        /// Replace an existing registration (new tokens: the homeserver must reload it).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    without_transparent_huge_pages();
    let cli = Cli::parse();
    let env = process_env();
    let result = match cli.command {
        Command::Init { data_dir, name, public_url, listen } => {
            run_init(InitOptions { data_dir, name, public_url, listen }, &env)
        }
        Command::Check => run_check(cli.config, &env),
        Command::Run => run_node(cli.config, &env),
        Command::Profile { json } => run_profile(cli.config, &env, json),
        Command::Identity { command } => run_admin(cli.config, AdminCommand::Identity(command), &env),
        Command::Portal { command } => run_admin(cli.config, AdminCommand::Portal(command), &env),
        Command::Job { command } => run_admin(cli.config, AdminCommand::Job(command), &env),
        Command::GenerateRegistration { homeserver_url, server_name, bridge_url, force } => {
            run_generate_registration(cli.config, &env, homeserver_url, server_name, bridge_url, force)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_path(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    path.with_context(|| format!("no config file: pass --config FILE or set {CONFIG_VAR}"))
}

fn run_init(options: InitOptions, env: &[(String, String)]) -> anyhow::Result<ExitCode> {
    let report = init(&options, env)?;
    println!("wrote {}", report.config_file.display());
    match &report.master_key_file {
        Some(path) => println!(
            "wrote {} (mode 0600; back it up: without it the node keys cannot be opened)",
            path.display()
        ),
        None => println!("master key: taken from DM3_BRIDGE_MASTER_KEY (no key file written)"),
    }
    println!("wrote {}", report.node_keys_file.display());
    println!();
    println!("Publish these in the node's delivery-service profile:");
    println!("  publicEncryptionKey: {}", report.encryption_public_key);
    println!("  publicSigningKey:    {}", report.signing_public_key);
    println!();
    println!("Start with: dm3-bridge --config {} run", report.config_file.display());
    println!("The text record to publish: dm3-bridge --config {} profile", report.config_file.display());
    Ok(ExitCode::SUCCESS)
}

fn run_check(path: Option<PathBuf>, env: &[(String, String)]) -> anyhow::Result<ExitCode> {
    let path = config_path(path)?;
    let report = check(&path, env);
    for note in &report.notes {
        println!("{note}");
    }
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    if report.is_ok() {
        println!("{}: OK", path.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}: {} problem(s) found", path.display(), report.problems.len());
        Ok(ExitCode::FAILURE)
    }
}

fn run_profile(path: Option<PathBuf>, env: &[(String, String)], json: bool) -> anyhow::Result<ExitCode> {
    let path = config_path(path)?;
    let config = Config::load(&path, env.iter().cloned())?;
    let profile = NodeDsProfile::load(&config, env)?;
    if json {
        println!("{:#}", profile.to_json());
    } else {
        println!("Delivery-service profile of {}:", profile.name);
        println!("{:#}", profile.profile.to_value());
        println!();
        println!("Publish it as the text record {} of {}:", profile.record_key(), profile.name);
        println!("{}", profile.record_value());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_node(path: Option<PathBuf>, env: &[(String, String)]) -> anyhow::Result<ExitCode> {
    let path = config_path(path)?;
    let config = Config::load(&path, env.iter().cloned())?;
    telemetry::logging::init(&config.log)?;
    // `[[names.static]]` first, then ENS when `names.ens_rpc_url` is set (names::chain).
    let directory = build_directory(&config.names).context("setting up name resolution")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    return_freed_memory_regularly().context("starting the allocator's trim thread")?;
    runtime.block_on(async {
        // Install the handlers before start-up: a SIGTERM that arrives while the node starts
        // must stop it gracefully, not kill it with the default action.
        let mut signals = ShutdownSignals::install()?;
        let node = Node::start(&config, env, Relay::factory(directory)).await?;
        signals.received().await;
        node.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_admin(
    path: Option<PathBuf>,
    command: AdminCommand,
    env: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let path = config_path(path)?;
    let config = Config::load(&path, env.iter().cloned())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let output = runtime.block_on(dm3_bridge::admin_cli::run(&config, env, command))?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

fn run_generate_registration(
    path: Option<PathBuf>,
    env: &[(String, String)],
    homeserver_url: Option<String>,
    server_name: Option<String>,
    bridge_url: Option<String>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let config_file = config_path(path)?;
    let options = GenerateOptions { config_file, homeserver_url, server_name, bridge_url, force };
    let report = generate_registration(&options, env)?;
    println!("wrote {} (mode 0600: it holds both tokens)", report.registration_file.display());
    println!("wrote the tokens into [matrix] of {}", report.config_file.display());
    if report.replaced {
        println!(
            "replaced the earlier registration: the homeserver must load the new file and restart; \
             the bridge now remembers transaction ids under scope {}",
            report.scope
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    println!();
    println!(
        "Next: add {} to the homeserver's app_service_config_files, restart the homeserver, then run the node.",
        report.registration_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (service managers) and SIGINT (ctrl-c).
struct ShutdownSignals {
    term: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.interrupt.recv() => tracing::info!("interrupt received"),
        }
    }
}
