//! `dm3 name-for` and `dm3 parse-name`: a bridge's names for Matrix and Telegram users, computed
//! and read back offline from the scheme (`docs/names.md`).
//!
//! The parent name is a required flag, not a default: every bridge has its own, and a name
//! computed under the wrong parent reaches nobody (or somebody else's bridge). The sub-labels
//! default to the node's defaults (`tg`, `mx`) because few operators change them.
//!
//! Exit codes as everywhere: 2 for what can never be a user id or a name of the scheme (a
//! malformed id, a label the scheme cannot have produced); 1 for a well-formed name that is
//! not a user's name of this bridge (outside its parent, a sub-name, or a hashed label whose
//! user only the node knows).
//!
//! A Telegram contact may be named by `@username` as well as by id: the answer is then the
//! username's alias (`u-carol-x.tg.<parent>`), and `parse-name` reads an alias back as
//! `telegram @carol_x`.

use clap::Args;
use serde_json::json;

use dm3::bridge_names::scheme::{DEFAULT_MATRIX_SUB_LABEL, DEFAULT_TELEGRAM_SUB_LABEL};
use dm3::bridge_names::{Addressee, NameScheme, ParsedName};
use dm3::canonical;
use dm3::ens::EnsName;
use dm3::network::Network;

use crate::io::Failure;

/// Which bridge: its parent name and its networks' sub-labels.
#[derive(Args, Debug)]
pub struct SchemeArgs {
    /// The bridge's parent name (its `[identities] parent`), e.g. bridge.example.eth. Required.
    #[arg(long)]
    parent: Option<String>,
    /// The sub-label of the bridge's Telegram names.
    #[arg(long, default_value = DEFAULT_TELEGRAM_SUB_LABEL)]
    telegram_label: String,
    /// The sub-label of the bridge's Matrix names.
    #[arg(long, default_value = DEFAULT_MATRIX_SUB_LABEL)]
    matrix_label: String,
}

#[derive(Args, Debug)]
pub struct NameForArgs {
    /// The user's network: matrix or telegram.
    #[arg(value_parser = parse_network)]
    network: Network,
    /// The user's id on it: @carol:example.org (Matrix), 12345 or @username (Telegram).
    #[arg(allow_hyphen_values = true)]
    user: String,
    #[command(flatten)]
    scheme: SchemeArgs,
    /// Print {"label", "name", "network", "userId"} instead of the name alone.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ParseNameArgs {
    /// A DM3 name the bridge gives a user, e.g. tg-12345.tg.bridge.example.eth.
    #[arg(allow_hyphen_values = true)]
    name: String,
    #[command(flatten)]
    scheme: SchemeArgs,
    /// Print {"label", "name", "network", "userId"} instead of "<network> <user id>".
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_network(text: &str) -> Result<Network, String> {
    text.parse().map_err(|_| format!("`{text}` is not matrix or telegram"))
}

impl SchemeArgs {
    fn scheme(&self) -> Result<NameScheme, Failure> {
        let parent = self.parent.as_deref().ok_or_else(|| {
            Failure::malformed(
                "--parent is required: the bridge's parent name, e.g. --parent bridge.example.eth \
                 (its operator publishes it; the node answers it in GET /names/lookup)",
            )
        })?;
        // Accept the parent as a person types it (`Bridge.Example.ETH`); the scheme itself
        // insists on the normalized form, which is what the names are made under.
        let parent = EnsName::parse(parent)
            .map_err(|e| Failure::malformed(format!("--parent {parent:?} is not an ENS name: {e}")))?;
        NameScheme::new(parent.as_str(), &self.telegram_label, &self.matrix_label)
            .map_err(|e| Failure::malformed(format!("--parent and the sub-labels: {e}")))
    }
}

pub fn name_for(args: &NameForArgs) -> Result<String, Failure> {
    let scheme = args.scheme.scheme()?;
    let addressee = Addressee::parse(args.network, &args.user).map_err(Failure::malformed)?;
    let (label, name) = scheme.name_of(&addressee).map_err(Failure::malformed)?;
    if !args.json {
        return Ok(name.to_string());
    }
    Ok(described(&label, &name, &addressee))
}

pub fn parse_name(args: &ParseNameArgs) -> Result<String, Failure> {
    let scheme = args.scheme.scheme()?;
    let name = EnsName::parse(&args.name)
        .map_err(|e| Failure::malformed(format!("{:?} is not an ENS name: {e}", bounded(&args.name))))?;
    if name.is_root() {
        return Err(Failure::malformed("the name is empty"));
    }
    let (network, label, user) = match scheme.parse(&name) {
        Ok(ParsedName::Identity { network, label, user }) => (network, label, user),
        Ok(ParsedName::TelegramAlias { label, username }) => {
            let addressee = Addressee::TelegramAlias(username);
            return Ok(if args.json {
                described(&label, &name, &addressee)
            } else {
                format!("telegram {}", addressee.written())
            });
        }
        Ok(ParsedName::Foreign) => {
            return Err(Failure::check(format!(
                "{name} is not under the parent {}: not a name of this bridge",
                scheme.parent()
            )));
        }
        Ok(ParsedName::Structural) => {
            return Err(Failure::check(format!(
                "{name} names no user: a user's name is <label>.{}.{} or <label>.{}.{}",
                scheme.sub_label(Network::Matrix),
                scheme.parent(),
                scheme.sub_label(Network::Telegram),
                scheme.parent()
            )));
        }
        Err(error) => return Err(Failure::malformed(format!("{name}: {error}"))),
    };
    let Some(user) = user else {
        return Err(Failure::check(format!(
            "{name} has a hashed label (the {network} id was too long to fit a label): \
             only the bridge's node knows whose it is"
        )));
    };
    if !args.json {
        return Ok(format!("{network} {}", user.user_id()));
    }
    Ok(described(&label, &name, &Addressee::User(user)))
}

/// `{"label", "name", "network", "userId"}`; `userId` as the person wrote it (`@carol_x` for
/// a username's alias).
fn described(label: &str, name: &EnsName, addressee: &Addressee) -> String {
    canonical::stringify(&json!({
        "label": label,
        "name": name.as_str(),
        "network": addressee.network().as_str(),
        "userId": addressee.written(),
    }))
}

/// Keeps an echoed argument short, whatever was passed.
fn bounded(text: &str) -> String {
    text.chars().take(80).collect()
}
