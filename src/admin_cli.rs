//! `dm3-bridge identity …`, `dm3-bridge portal …` and `dm3-bridge job …`: the admin API's
//! operations from the command line.
//!
//! The CLI opens the node's database and keys itself (no running node is needed; SQLite's WAL
//! and PostgreSQL both allow it next to a running node) through the same start-up sequence
//! the node runs ([`NodeData::open`]: config, master key, node keys, database, names), so a
//! wrong master key is refused here the same way, with the same error.
//! It prints the same JSON as the API ([`crate::admin::views`]), one document on stdout.
//!
//! It is a module of its own, above [`crate::node`] and [`crate::name_service`] whose start-up it
//! runs, rather than a part of [`crate::admin`]: the node mounts the admin API, so an admin
//! module that also ran the node's start-up would use what uses it.

use std::io::Read as _;
use std::path::PathBuf;

use alloy_primitives::Address;
use clap::{Args, Subcommand};
use dm3::crypto::eth::parse_address;
use dm3::profile::SignedUserProfile;
use serde_json::Value;

use crate::admin::jobs::{DEFAULT_JOBS_PAGE, JobPageView, JobView, parse_filter};
use crate::admin::routes::CONVERSATIONS_LIMIT;
use crate::admin::views::{
    ConversationsView, IdentityView, PageView, PortalPageView, PortalView, ProfileView,
};
use crate::clock::now_ms;
use crate::config::Config;
use crate::identities::vault::DEFAULT_PER_PAGE;
use crate::identities::{IdentityError, IdentityRef, Network, NetworkUserId};
use crate::name_service::NameService;
use crate::node::{NodeData, NodeError};
use crate::store::portals::MAX_PAGE as MAX_PORTALS_PAGE;
use crate::store::{JobChange, JobFilter, StoreError};

/// The identity subcommands. `ID` is an identity's ENS name or `network:userId`
/// (e.g. `telegram:12345`, `matrix:@bob:example.org`).
#[derive(Subcommand, Debug, Clone)]
pub enum IdentityCommand {
    /// Create the virtual identity of a network user.
    Create {
        /// telegram or matrix.
        #[arg(long, value_parser = parse_network)]
        network: Network,
        /// The user's id on the network: 12345, or @bob:example.org.
        #[arg(long, value_name = "USER_ID", allow_hyphen_values = true)]
        user_id: String,
        #[command(flatten)]
        self_custody: SelfCustodyArgs,
    },
    /// List identities, in name order.
    List {
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = DEFAULT_PER_PAGE)]
        per_page: u32,
    },
    /// Show one identity.
    Show { id: String },
    /// Stop publishing an identity (its keys are kept).
    Disable { id: String },
    /// Publish a disabled identity again.
    Enable { id: String },
    /// Delete an identity and all its keys. Irreversible.
    Delete {
        id: String,
        /// Confirms the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Rotate: a new wallet (so a new address), new DM3 keys, a new signed profile.
    Rotate { id: String },
    /// Hand the identity to the user's own wallet: the node's keys of it are destroyed
    /// (docs/gateway.md section 4).
    SelfCustody {
        id: String,
        #[command(flatten)]
        wallet: SelfCustodyArgs,
    },
    /// Take a self-custody identity back: a new wallet the node holds.
    Custodial { id: String },
    /// Show the published signed profile and its text record.
    Profile { id: String },
    /// List the identity's portals (last message first) and who it has stored envelopes from.
    Conversations { id: String },
    /// Show the gateway signer address and URL template to register on chain.
    Gateway,
}

/// The user's wallet and the profile it signed (docs/gateway.md section 2).
#[derive(Args, Debug, Clone)]
pub struct SelfCustodyArgs {
    /// The user's wallet address (0x…): the name's `addr` from now on.
    #[arg(long, requires = "profile")]
    address: Option<String>,
    /// A file holding the signed profile `{profile, signature}` the wallet signed.
    #[arg(long, requires = "address")]
    profile: Option<PathBuf>,
}

/// The largest profile file read: a signed profile is a few hundred bytes.
const MAX_PROFILE_FILE: u64 = 16 * 1024;

impl SelfCustodyArgs {
    /// The wallet and its profile, if given; a file that is not a signed profile is refused.
    fn read(&self) -> Result<Option<(Address, SignedUserProfile)>, CliError> {
        let (Some(address), Some(path)) = (&self.address, &self.profile) else { return Ok(None) };
        let bad = |reason: String| CliError::BadProfile(format!("{}: {reason}", path.display()));
        let address = parse_address(address).map_err(|e| CliError::BadProfile(format!("--address: {e}")))?;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PROFILE_FILE + 1).read_to_string(&mut text))
            .map_err(|e| bad(e.to_string()))?;
        if text.len() as u64 > MAX_PROFILE_FILE {
            return Err(bad(format!("larger than {MAX_PROFILE_FILE} bytes")));
        }
        let profile = SignedUserProfile::parse(&text).map_err(|e| bad(e.to_string()))?;
        Ok(Some((address, profile)))
    }
}

fn parse_network(text: &str) -> Result<Network, String> {
    text.parse().map_err(|e: crate::identities::network::UnknownNetwork| e.to_string())
}

/// The portal subcommands (docs/engine.md, "Portal lifecycle").
#[derive(Subcommand, Debug, Clone)]
pub enum PortalCommand {
    /// List portals in id order, with their state (live or suspended, and why).
    List {
        /// Only this network's (matrix, telegram).
        #[arg(long)]
        network: Option<String>,
        /// Start after this portal id (the `next` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one portal.
    Show { id: i64 },
    /// Unlink a portal: it is forgotten, and a running node has the DM3 user's stand-in say so
    /// in the conversation and leave it. The pair's next message opens a new conversation.
    Unlink { id: i64 },
}

/// The job subcommands (docs/engine.md, "Admin actions on jobs").
#[derive(Subcommand, Debug, Clone)]
pub enum JobCommand {
    /// List jobs in id order, payloads left out.
    List {
        /// inbox or outbox.
        #[arg(long)]
        queue: Option<String>,
        /// pending, retrying, failed or done.
        #[arg(long)]
        state: Option<String>,
        /// Start after this job id (the `next` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = DEFAULT_JOBS_PAGE)]
        limit: u32,
    },
    /// Show one job: its state, attempts, last error and payload kind.
    Show { id: i64 },
    /// Put a failed job back in its queue, due at once.
    Retry { id: i64 },
    /// Drop a failed or waiting job; a replay of its message is then queued again.
    Drop { id: i64 },
}

async fn execute_job(store: &crate::store::Store, command: JobCommand) -> Result<Value, CliError> {
    let now = now_ms();
    let changed = |change: JobChange, id: i64| match change {
        JobChange::Changed(job) => Ok(json(&JobView::detail(&job, now))),
        JobChange::NotFound => Err(CliError::NoJob(id)),
        JobChange::Refused(reason) => Err(CliError::JobRefused(reason)),
    };
    match command {
        JobCommand::List { queue, state, after, limit } => {
            // The API's parser: the same names, bounds and messages.
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("queue", queue.as_deref().unwrap_or_default());
            query.append_pair("state", state.as_deref().unwrap_or_default());
            query.append_pair("after", &after.to_string());
            query.append_pair("limit", &limit.to_string());
            let filter: JobFilter =
                parse_filter(Some(&query.finish())).map_err(|e| CliError::BadFilter(e.message))?;
            Ok(json(&JobPageView::new(&store.list_jobs(filter).await?, filter.limit, now)))
        }
        JobCommand::Show { id } => {
            Ok(json(&JobView::detail(&store.job(id).await?.ok_or(CliError::NoJob(id))?, now)))
        }
        JobCommand::Retry { id } => changed(store.retry_failed_job(id, now).await?, id),
        JobCommand::Drop { id } => changed(store.drop_job(id, now).await?, id),
    }
}

async fn execute_portal(store: &crate::store::Store, command: PortalCommand) -> Result<Value, CliError> {
    Ok(match command {
        PortalCommand::List { network, after, limit } => {
            let network = network
                .map(|n| dm3_bridge_connector::NetworkId::new(n.as_str()))
                .transpose()
                .map_err(|e| CliError::BadNetwork(e.to_string()))?;
            let limit = limit.clamp(1, MAX_PORTALS_PAGE);
            json(&PortalPageView::new(&store.list_portals(network.as_ref(), after, limit).await?, limit))
        }
        PortalCommand::Show { id } => {
            json(&PortalView::from(&store.portal(id).await?.ok_or(CliError::NoPortal(id))?))
        }
        PortalCommand::Unlink { id } => {
            let unlinked = crate::engine::portals::unlink(store, id).await?;
            json(&PortalView::from(&unlinked.ok_or(CliError::NoPortal(id))?))
        }
    })
}

/// Why an identity or portal command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The node's data did not open (the same reasons as for `dm3-bridge run`).
    #[error(transparent)]
    Open(#[from] NodeError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the database: {0}")]
    Store(#[from] StoreError),
    #[error("there is no portal {0}")]
    NoPortal(i64),
    #[error("--network: {0}")]
    BadNetwork(String),
    #[error("there is no job {0}")]
    NoJob(i64),
    #[error("{0}")]
    JobRefused(String),
    #[error("{0}")]
    BadFilter(String),
    #[error("delete is irreversible: add --yes to delete {0} and all its keys")]
    NotConfirmed(String),
    #[error("the signed profile: {0}")]
    BadProfile(String),
}

/// Connections the CLI needs: one command at a time, and the SQLite writer's own.
const CLI_CONNECTIONS: u32 = 2;

/// What `dm3-bridge identity …`, `portal …` and `job …` ask for.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    Identity(IdentityCommand),
    Portal(PortalCommand),
    Job(JobCommand),
}

/// Runs one command against the node's data; returns the JSON to print.
pub async fn run(
    config: &Config,
    env: &[(String, String)],
    command: AdminCommand,
) -> Result<Value, CliError> {
    let NodeData { store, names, .. } = NodeData::open(config, env, CLI_CONNECTIONS).await?;
    let result = match command {
        AdminCommand::Identity(command) => execute(&names, &store, command).await,
        AdminCommand::Portal(command) => execute_portal(&store, command).await,
        AdminCommand::Job(command) => execute_job(&store, command).await,
    };
    store.close().await;
    result
}

async fn execute(
    names: &NameService,
    store: &crate::store::Store,
    command: IdentityCommand,
) -> Result<Value, CliError> {
    let vault = &names.vault;
    let id = |text: &str| text.parse::<IdentityRef>();
    let value = match command {
        IdentityCommand::Create { network, user_id, self_custody } => {
            let user = NetworkUserId::parse(network, &user_id).map_err(IdentityError::from)?;
            let identity = match self_custody.read()? {
                Some((address, profile)) => {
                    vault.create_self_custody(user, address, profile, now_ms()).await?
                }
                None => vault.create(user, now_ms()).await?,
            };
            json(&IdentityView::from(&identity))
        }
        IdentityCommand::List { page, per_page } => json(&PageView::from(&vault.list(page, per_page).await?)),
        IdentityCommand::Show { id: text } => json(&IdentityView::from(&vault.get(&id(&text)?).await?)),
        IdentityCommand::Disable { id: text } => {
            json(&IdentityView::from(&vault.disable(&id(&text)?, now_ms()).await?))
        }
        IdentityCommand::Enable { id: text } => {
            json(&IdentityView::from(&vault.enable(&id(&text)?, now_ms()).await?))
        }
        IdentityCommand::Delete { id: text, yes } => {
            let reference = id(&text)?;
            if !yes {
                return Err(CliError::NotConfirmed(reference.to_string()));
            }
            json(&IdentityView::from(&vault.delete(&reference).await?))
        }
        IdentityCommand::Rotate { id: text } => {
            json(&IdentityView::from(&vault.rotate(&id(&text)?, now_ms()).await?))
        }
        IdentityCommand::SelfCustody { id: text, wallet } => {
            let (address, profile) = wallet
                .read()?
                .ok_or_else(|| CliError::BadProfile("give --address and --profile".to_owned()))?;
            json(&IdentityView::from(
                &vault.switch_to_self_custody(&id(&text)?, address, profile, now_ms()).await?,
            ))
        }
        IdentityCommand::Custodial { id: text } => {
            json(&IdentityView::from(&vault.switch_to_custodial(&id(&text)?, now_ms()).await?))
        }
        IdentityCommand::Profile { id: text } => json(&ProfileView::from(&vault.get(&id(&text)?).await?)),
        IdentityCommand::Conversations { id: text } => {
            let (identity, counterparties) = vault.counterparties(&id(&text)?, CONVERSATIONS_LIMIT).await?;
            let portals = store.identity_portals(&identity.name, CONVERSATIONS_LIMIT).await?;
            json(&ConversationsView::new(&identity, &counterparties, &portals))
        }
        IdentityCommand::Gateway => json(&names.info),
    };
    Ok(value)
}

/// Views are plain structs of strings and numbers: serializing them cannot fail.
fn json<T: serde::Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}
