//! The `dm3-matrix` command: a gateway user's DM3 over Matrix from a shell (docs/gateway.md
//! section 6). The binary's `main` only parses and calls [`run`], so the tests drive the very
//! same code in process.
//!
//! Output is plain and scriptable: one JSON object per line on stdout. Exit codes as `dm3`'s:
//! 0 success; 1 the operation failed (the homeserver or the node refused or did not answer, a
//! claim did not take); 2 a usage error or malformed input (arguments, the key or session
//! file), with one line on stderr.

mod account;
mod messages;
mod output;

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::ClientError;
use crate::gateway::GatewayClientError;

/// A Matrix client for DM3 gateway users: your keys stay on your machine.
#[derive(Parser, Debug)]
#[command(name = "dm3-matrix", version, about, long_about = None)]
pub struct Cli {
    /// The session file `login` writes and every other command resumes (mode 0600).
    #[arg(long, env = "DM3_MATRIX_SESSION", default_value = "dm3-matrix-session.json", global = true)]
    pub session: PathBuf,
    /// The DM3 key file `keys` makes (mode 0600): the wallet your DM3 keys derive from.
    #[arg(long, env = "DM3_MATRIX_KEYS", default_value = "dm3-keys.json", global = true)]
    pub keys: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Loads the key file, or makes it: a new wallet, or with --import the wallet's secret
    /// (hex) read from stdin. Prints the address and the public keys.
    Keys {
        #[arg(long)]
        import: bool,
    },
    /// Logs in with a password (a new device) and writes the session file.
    Login {
        #[arg(long)]
        homeserver: String,
        /// The localpart or the full user id.
        #[arg(long)]
        user: String,
        /// Prefer the environment variable: arguments show in the process list.
        #[arg(long, env = "DM3_MATRIX_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "dm3-matrix")]
        device_name: String,
    },
    /// Lists the rooms you are in or invited to, one JSON object per line.
    Rooms,
    /// Joins ROOM (accepts its invite): a DM3 contact's room, opened by their ghost.
    Join { room: String },
    /// Claims your Matrix account's DM3 name for your wallet, in ROOM, a room where the bridge
    /// answers commands (your DM with a DM3 user's ghost); succeeds once the node serves your
    /// profile for the name.
    Claim {
        #[arg(long)]
        room: String,
        /// The node's public URL.
        #[arg(long)]
        node: String,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Seals TEXT to the DM3 name --to (a name the node serves) and sends it into ROOM, one
    /// network.dm3.envelope per delivery service of the recipient.
    Send {
        #[arg(long)]
        to: String,
        #[arg(long)]
        room: String,
        #[arg(long)]
        node: String,
        /// Your DM3 name; by default the one the node gives your Matrix account.
        #[arg(long)]
        from: Option<String>,
        text: String,
    },
    /// Prints the DM3 messages of ROOM, opened with your keys, one JSON object per line;
    /// with --node, each sender's signature is checked against the profile the node serves.
    Read {
        room: String,
        #[arg(long)]
        node: Option<String>,
    },
}

/// A failure, by its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: the operation failed.
    Failed(String),
    /// Exit 2: usage or malformed input.
    Malformed(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::Malformed(_) => 2,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Self::Failed(message) | Self::Malformed(message)) = self;
        f.write_str(&message.replace('\n', " "))
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::BadId { .. } | ClientError::BadHomeserver(_) | ClientError::Session { .. } => {
                Self::Malformed(error.to_string())
            }
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<GatewayClientError> for Failure {
    fn from(error: GatewayClientError) -> Self {
        match error {
            GatewayClientError::Matrix(error) => error.into(),
            GatewayClientError::KeyFile { .. } => Self::Malformed(error.to_string()),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Runs one command; `stdin` is read only by `keys --import`.
pub async fn run(cli: Cli, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Failure> {
    match cli.command {
        Command::Keys { import } => account::keys(&cli.keys, import, stdin, stdout),
        Command::Login { homeserver, user, password, device_name } => {
            account::login(&cli.session, &homeserver, &user, &password, &device_name, stdout).await
        }
        Command::Rooms => messages::rooms(&cli, stdout).await,
        Command::Join { ref room } => messages::join(&cli, room, stdout).await,
        Command::Claim { ref room, ref node, timeout_secs } => {
            messages::claim(&cli, room, node, timeout_secs, stdout).await
        }
        Command::Send { ref to, ref room, ref node, ref from, ref text } => {
            messages::send(&cli, to, room, node, from.as_deref(), text, stdout).await
        }
        Command::Read { ref room, ref node } => messages::read(&cli, room, node.as_deref(), stdout).await,
    }
}
