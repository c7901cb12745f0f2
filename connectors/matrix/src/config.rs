//! `[matrix]`: the connector's section of the service's config file.
//!
//! The section's presence turns the bridge on; without it the node is a DM3 relay only. Its
//! keys describe the two directions of the appservice link and who may use it:
//! - `homeserver_url`: where the bridge reaches the homeserver (client-server API);
//! - `bridge_url`: where the homeserver reaches the bridge, i.e. this node's listener as seen
//!   from the homeserver (the registration's `url`);
//! - `as_token`/`hs_token`: the shared secrets, written here and into the registration file by
//!   `dm3-bridge generate-registration`. [`MatrixToken`] never prints them, and
//!   `DM3_BRIDGE_MATRIX__AS_TOKEN`/`__HS_TOKEN` may hold them instead of the file;
//! - `allow`: which Matrix users may get a virtual DM3 identity (see [`UserPolicy`]); empty
//!   means the users of `server_name` only;
//! - `command_prefix`: how a Matrix user's command to the bridge starts in a portal room
//!   (`!dm3 block`, [`crate::command`]);
//! - `reachable`: which of those a DM3 user may write to before they used the bridge (same
//!   entries, same default; docs/names.md "Reachable before first use");
//! - `encryption`: whether the bridge takes part in end-to-end encrypted rooms ([`Encryption`]);
//! - `sender_trust`: which devices of a Matrix user an encrypted message is believed from
//!   ([`SenderTrust`], beside the other settings of decryption).
//!
//! Shaped like the service's own config and `[telegram]`: values stay strings here so that
//! loading never fails on them; [`MatrixConfig::problems`] names each malformed one by its key
//! under `[matrix]`, and the service's Matrix bridge parses them once they passed.

use std::fmt;
use std::path::{Path, PathBuf};

use dm3_bridge_connector::ConfigProblem;
use ruma::ServerName;
use serde::{Deserialize, Serialize};

use crate::command::{CommandPrefix, CommandPrefixError, DEFAULT_COMMAND_PREFIX};
use crate::connector::DEFAULT_MAX_MEDIA_BYTES;
use crate::decrypting::SenderTrust;
use crate::ghost::{DEFAULT_GHOST_PREFIX, GhostNamespace};
use crate::policy::{PolicyEntry, PolicyError, UserPolicy};
use crate::registration::DEFAULT_BOT_LOCALPART;

/// The shortest token accepted: shorter ones can be guessed over the network.
pub const MIN_MATRIX_TOKEN_LEN: usize = 16;
/// 1 GiB: the engine holds a file in memory while it moves it.
const MAX_MEDIA_BYTES: u64 = 1024 * 1024 * 1024;
/// Ten minutes of waiting for the homeserver at start-up is already generous.
const MAX_PING_TIMEOUT_SECS: u64 = 600;

/// `[matrix]`: the homeserver, the two tokens, the registration and the user policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatrixConfig {
    /// The homeserver's client-server base URL, as this node reaches it, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The homeserver's name, the part after `:` in user ids, e.g. `example.org`.
    pub server_name: String,
    /// The URL the homeserver reaches this node at (the registration's `url`).
    pub bridge_url: String,
    /// The bridge's token towards the homeserver; better set through `DM3_BRIDGE_MATRIX__AS_TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_token: Option<MatrixToken>,
    /// The homeserver's token towards the bridge; better set through `DM3_BRIDGE_MATRIX__HS_TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs_token: Option<MatrixToken>,
    /// Where `generate-registration` writes the registration; relative to the data directory.
    pub registration_file: PathBuf,
    /// The application service's id in the registration.
    pub registration_id: String,
    /// The bridge bot's localpart (the registration's `sender_localpart`).
    pub bot_localpart: String,
    /// The localpart prefix of the ghosts, the stand-ins of DM3 users: `@<prefix><name>:<server>`.
    pub ghost_prefix: String,
    /// Who may use the bridge: `@user:server`, `server`, or `*`. Empty: the users of `server_name`.
    pub allow: Vec<String>,
    /// Who DM3 users may write to before they used the bridge (their name resolves on demand,
    /// and the first message invites them): the same entries as `allow`, and only users that
    /// `allow` admits too. Empty: the users of `server_name`.
    pub reachable: Vec<String>,
    /// The largest file bridged, in bytes; lowered to the homeserver's `m.upload.size` at start.
    pub max_media_bytes: u64,
    /// How long start-up waits for the homeserver to answer the appservice ping, in seconds;
    /// 0 tries once.
    pub ping_timeout_secs: u64,
    /// How a command to the bridge starts in a portal room (`!dm3 block`).
    pub command_prefix: String,
    /// End-to-end encrypted rooms: `off`, `on` (follow the room) or `require`.
    pub encryption: Encryption,
    /// How long after an encrypted message arrived its room key may still come, in seconds;
    /// then its sender is told it could not be decrypted (docs/engine.md, "Encrypted rooms: plan").
    pub undecryptable_after_secs: u64,
    /// Which devices of a Matrix user their encrypted messages are believed from: `listed` or
    /// `cross-signed` (docs/engine.md, "Encrypted rooms: plan").
    pub sender_trust: SenderTrust,
}

/// `[matrix] encryption`: whether the bridge takes part in end-to-end encrypted rooms (issue 17).
///
/// Whatever the setting, nothing bridged is ever posted in the clear into an encrypted room
/// ([`crate::cleartext`]); with `on` a ghost sends there encrypted ([`crate::sending`]).
/// [`Encryption::today`] says in `check` what each setting does in this version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Never: an encrypted room is refused (the ghost says so), and the registration asks for
    /// no encryption extensions.
    Off,
    /// Follow the room: encrypted where the room is, in the clear where it is not. The
    /// registration asks for the extensions ghost devices need (MSC3202, MSC4190).
    #[default]
    On,
    /// Only encrypted rooms: portals are created encrypted, a room in the clear is refused.
    /// Asks for the same extensions as `On`.
    Require,
}

impl Encryption {
    /// Whether the registration asks the homeserver for the appservice encryption extensions.
    pub fn asks_for_extensions(self) -> bool {
        !matches!(self, Encryption::Off)
    }

    /// What the setting does in this version, in words for `dm3-bridge check`.
    pub fn today(self) -> &'static str {
        match self {
            Encryption::Off => {
                "off: a ghost refuses encrypted rooms, and a DM switched to encrypted carries nothing in \
                 the clear (a DM3 client's own ciphertext only)"
            }
            Encryption::Require => {
                "require: as on, and portals the bridge opens are encrypted from their first event; a room in \
                 the clear is refused (a stock DM3 user's messages reach Matrix users only in encrypted rooms)"
            }
            Encryption::On => {
                "on: the registration asks the homeserver for the encryption extensions (MSC3202, MSC4190, \
                 to-device events); ghosts get cross-signed devices and accept encrypted DMs; Matrix users' \
                 encrypted messages are decrypted and bridged to DM3, and the ghosts send theirs there \
                 encrypted (Megolm), never in the clear"
            }
        }
    }
}

impl Default for MatrixConfig {
    fn default() -> Self {
        Self {
            homeserver_url: String::new(),
            server_name: String::new(),
            bridge_url: String::new(),
            as_token: None,
            hs_token: None,
            registration_file: PathBuf::from("registration.yaml"),
            registration_id: "dm3-bridge".to_owned(),
            bot_localpart: DEFAULT_BOT_LOCALPART.to_owned(),
            ghost_prefix: DEFAULT_GHOST_PREFIX.to_owned(),
            allow: Vec::new(),
            reachable: Vec::new(),
            max_media_bytes: DEFAULT_MAX_MEDIA_BYTES,
            ping_timeout_secs: 30,
            encryption: Encryption::default(),
            undecryptable_after_secs: crate::decrypting::DEFAULT_UNDECRYPTABLE_AFTER.as_secs(),
            sender_trust: SenderTrust::default(),
            command_prefix: DEFAULT_COMMAND_PREFIX.to_owned(),
        }
    }
}

impl MatrixConfig {
    /// Every semantic problem of the section, each with its key under `[matrix]`.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        problems(self)
    }

    /// The registration file, resolved against the data directory.
    pub fn registration_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.registration_file)
    }

    /// Who may use the bridge (an error for a malformed `allow` entry or `server_name`).
    pub fn user_policy(&self) -> Result<UserPolicy, PolicyError> {
        let own = ServerName::parse(&self.server_name).map_err(|_| PolicyError(self.server_name.clone()))?;
        UserPolicy::parse(self.allow.iter().map(String::as_str), &own)
    }

    /// How a command to the bridge starts (an error for an unusable `command_prefix`).
    pub fn command_prefix(&self) -> Result<CommandPrefix, CommandPrefixError> {
        CommandPrefix::new(&self.command_prefix)
    }

    /// Who may be written to before they used the bridge, before `allow` is applied too (an
    /// error for a malformed `reachable` entry or `server_name`).
    pub fn reachable_policy(&self) -> Result<UserPolicy, PolicyError> {
        let own = ServerName::parse(&self.server_name).map_err(|_| PolicyError(self.server_name.clone()))?;
        UserPolicy::parse(self.reachable.iter().map(String::as_str), &own)
    }
}

/// An appservice token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MatrixToken(String);

impl MatrixToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, to hand to the connector. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MatrixToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MatrixToken([redacted])")
    }
}

impl fmt::Display for MatrixToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

fn problems(matrix: &MatrixConfig) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    let mut problem = |key: &str, message: String| out.push(ConfigProblem::new(key, message));

    if let Err(message) = check_http_url(&matrix.homeserver_url, "http://127.0.0.1:8008") {
        problem(
            "homeserver_url",
            format!("{message} (the homeserver's client-server API, as this node reaches it)"),
        );
    }
    if let Err(message) = check_http_url(&matrix.bridge_url, "http://127.0.0.1:8080") {
        problem("bridge_url", format!("{message} (this node, as the homeserver reaches it)"));
    }
    let server_name = ServerName::parse(&matrix.server_name);
    if server_name.is_err() {
        let example = "expected the part after : in the homeserver's user ids, e.g. example.org";
        match matrix.server_name.as_str() {
            "" => problem("server_name", format!("must be set; {example}")),
            name => problem("server_name", format!("{name:?} is not a server name; {example}")),
        }
    }
    let generate = "run `dm3-bridge generate-registration` to create both tokens and the registration file";
    for (key, token) in [("as_token", &matrix.as_token), ("hs_token", &matrix.hs_token)] {
        match token {
            None => problem(key, format!("must be set; {generate}")),
            Some(token) if token.expose().chars().count() < MIN_MATRIX_TOKEN_LEN => problem(
                key,
                format!(
                    "is shorter than {MIN_MATRIX_TOKEN_LEN} characters (the value is not shown); {generate}"
                ),
            ),
            Some(_) => {}
        }
    }
    if let (Some(a), Some(h)) = (&matrix.as_token, &matrix.hs_token)
        && a == h
    {
        problem("hs_token", format!("must differ from as_token; {generate}"));
    }
    if matrix.registration_file.as_os_str().is_empty() {
        problem("registration_file", "must not be empty".to_owned());
    }
    let id_ok = !matrix.registration_id.is_empty()
        && matrix.registration_id.len() <= 64
        && matrix
            .registration_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !id_ok {
        problem(
            "registration_id",
            format!("{:?} is not usable; use 1 to 64 of a-z A-Z 0-9 . _ -", matrix.registration_id),
        );
    }
    let localpart_ok = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    };
    if !localpart_ok(&matrix.ghost_prefix) {
        problem(
            "ghost_prefix",
            format!("{:?} is not usable; use a-z 0-9 . _ -, e.g. \"_dm3_\"", matrix.ghost_prefix),
        );
    } else if let Ok(server) = &server_name
        && GhostNamespace::new(&matrix.ghost_prefix, server).is_err()
    {
        problem("ghost_prefix", format!("{:?} is not usable", matrix.ghost_prefix));
    }
    if !localpart_ok(&matrix.bot_localpart) {
        problem(
            "bot_localpart",
            format!("{:?} is not usable; use a-z 0-9 . _ -, e.g. \"dm3bot\"", matrix.bot_localpart),
        );
    } else if !matrix.ghost_prefix.is_empty() && matrix.bot_localpart.starts_with(&matrix.ghost_prefix) {
        problem(
            "bot_localpart",
            format!(
                "{:?} starts with the ghost prefix {:?}; the bot is not a ghost",
                matrix.bot_localpart, matrix.ghost_prefix
            ),
        );
    }
    for (key, entries) in [("allow", &matrix.allow), ("reachable", &matrix.reachable)] {
        for (index, entry) in entries.iter().enumerate() {
            if let Err(e) = PolicyEntry::parse(entry) {
                problem(&format!("{key}[{index}]"), e.to_string());
            }
        }
    }
    if !(1..=MAX_MEDIA_BYTES).contains(&matrix.max_media_bytes) {
        problem(
            "max_media_bytes",
            format!("{} is out of range; expected 1 to {MAX_MEDIA_BYTES}", matrix.max_media_bytes),
        );
    }
    if let Err(e) = matrix.command_prefix() {
        problem("command_prefix", e.to_string());
    }
    if !(1..=MAX_UNDECRYPTABLE_AFTER_SECS).contains(&matrix.undecryptable_after_secs) {
        problem(
            "undecryptable_after_secs",
            format!(
                "{} is not between 1 and {MAX_UNDECRYPTABLE_AFTER_SECS} seconds (an encrypted message holds back \
                 those after it in its room while its key is awaited)",
                matrix.undecryptable_after_secs
            ),
        );
    }
    if matrix.ping_timeout_secs > MAX_PING_TIMEOUT_SECS {
        problem(
            "ping_timeout_secs",
            format!("{} is more than {MAX_PING_TIMEOUT_SECS} seconds", matrix.ping_timeout_secs),
        );
    }
    out
}

/// The longest wait for a late room key: a day.
const MAX_UNDECRYPTABLE_AFTER_SECS: u64 = 86_400;

/// An absolute http(s) URL with a host and without query or fragment.
fn check_http_url(text: &str, example: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("must be set, e.g. {example}"));
    }
    match url::Url::parse(text) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Ok(())
        }
        _ => Err(format!("{text:?} is not an http(s) URL without query, e.g. {example}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn problems_are_keyed_under_the_section() {
        let keys: Vec<String> = MatrixConfig::default().problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["homeserver_url", "bridge_url", "server_name", "as_token", "hs_token"]);
    }

    #[test]
    fn encryption_is_on_by_default_and_require_is_accepted() {
        assert_eq!(MatrixConfig::default().encryption, Encryption::On);
        let parsed: MatrixConfig = serde_json::from_value(serde_json::json!({"encryption": "off"})).unwrap();
        assert_eq!(parsed.encryption, Encryption::Off);
        assert!(serde_json::from_value::<MatrixConfig>(serde_json::json!({"encryption": "maybe"})).is_err());
        let require = MatrixConfig { encryption: Encryption::Require, ..MatrixConfig::default() };
        assert!(require.problems().iter().all(|p| p.key != "encryption"));
        assert!(Encryption::Require.asks_for_extensions());
        assert!(Encryption::On.asks_for_extensions() && !Encryption::Off.asks_for_extensions());
    }
}
