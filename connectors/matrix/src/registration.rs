//! The application-service registration: what the homeserver is told about the bridge.
//!
//! `dm3-bridge generate-registration` builds a [`Registration`] with fresh random tokens and
//! writes it as `registration.yaml` for the homeserver's `app_service_config_files`; the same
//! tokens go into the bridge's own configuration. The file follows the spec's registration
//! schema (ruma's [`ruma::api::appservice::Registration`]):
//! - `namespaces.users`: the ghosts `@<prefix>.*:<server>` and the bot, both **exclusive**, so
//!   nobody else can register a user the bridge speaks for;
//! - `rate_limited: false`: ghosts speak for many people, and the homeserver's per-user limits
//!   turned 19 of 30 quick ghost sends into 429s in our measurements against Synapse;
//! - `receive_ephemeral: true`: read receipts of Matrix users reach the bridge (and to-device
//!   events, MSC2409/MSC4203, where the homeserver enables `msc2409_to_device_messages_enabled`);
//! - with `[matrix] encryption` not `off`, the appservice extensions ghost devices need, under
//!   the unstable names Synapse reads ([`ENCRYPTION_EXTENSIONS`]): `org.matrix.msc3202` (device
//!   lists, one-time-key counts and unused fallback keys in transactions, with the homeserver's
//!   `msc3202_transaction_extensions`) and `io.element.msc4190` (the appservice creates and
//!   deletes its users' devices itself, `PUT /devices/{deviceId}`). ruma's type has no field
//!   for them, so they are added to the YAML beside it.
//!
//! **Scope of transaction ids.** The homeserver numbers transactions per registration and
//! restarts at 1 when a registration is replaced. A bridge that remembers processed txn ids
//! across that would ignore all new traffic (matrix-org/matrix-appservice-discord #852). So
//! processed ids are keyed by a [`RegistrationScope`]: a digest of the registration
//! id and the hs_token, which changes whenever the registration is regenerated, and which can be
//! stored and logged because it reveals nothing about the token.

use std::fmt;
use std::path::Path;

use ruma::api::appservice::{Namespace, Namespaces, Registration as RumaRegistration, RegistrationInit};
use ruma::{OwnedServerName, ServerName};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::ghost::{DEFAULT_GHOST_PREFIX, GhostError, GhostNamespace};
use crate::secret::{AsToken, HsToken, RandomError};

/// The bot's localpart unless configured otherwise.
pub const DEFAULT_BOT_LOCALPART: &str = "dm3bot";

/// Why a registration cannot be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Ghost(#[from] GhostError),
    /// The registration id is empty or not printable ASCII.
    #[error("`{0}` is not usable as an application-service id: use 1 to 64 of a-z A-Z 0-9 . _ -")]
    BadId(String),
    /// The bot localpart is not a conforming localpart.
    #[error("`{0}` is not usable as the bot's localpart: use a-z 0-9 . _ -")]
    BadBotLocalpart(String),
    /// The YAML could not be produced or read.
    #[error("registration YAML: {0}")]
    Yaml(String),
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The key that scopes remembered transaction ids to one generation of the registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationScope(String);

impl RegistrationScope {
    /// `sha256(id ‖ 0x00 ‖ hs_token)`, first 16 bytes in hex.
    pub fn derive(id: &str, hs_token: &HsToken) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(id.as_bytes());
        hasher.update([0u8]);
        hasher.update(hs_token.expose().as_bytes());
        let digest = hasher.finalize();
        Self(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }

    /// The scope as stored in the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistrationScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds a [`Registration`] with fresh tokens.
#[derive(Debug, Clone)]
pub struct RegistrationBuilder {
    id: String,
    url: Url,
    server_name: OwnedServerName,
    bot_localpart: String,
    ghost_prefix: String,
}

impl RegistrationBuilder {
    /// The bot's localpart (default [`DEFAULT_BOT_LOCALPART`]).
    pub fn bot_localpart(mut self, localpart: impl Into<String>) -> Self {
        self.bot_localpart = localpart.into();
        self
    }

    /// The ghosts' localpart prefix (default [`DEFAULT_GHOST_PREFIX`]).
    pub fn ghost_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ghost_prefix = prefix.into();
        self
    }

    /// Validates the settings and draws fresh tokens.
    pub fn build(self) -> Result<Registration, RegistrationError> {
        Registration::from_parts(
            self.id,
            self.url,
            &self.server_name,
            &self.bot_localpart,
            &self.ghost_prefix,
            AsToken::generate()?,
            HsToken::generate()?,
        )
    }
}

/// The registration keys, each `true`, of the appservice extensions for encrypted rooms.
pub const ENCRYPTION_EXTENSIONS: [&str; 2] = ["org.matrix.msc3202", "io.element.msc4190"];

/// A registration: who the bridge is to the homeserver, and the tokens both sides present.
#[derive(Debug, Clone)]
pub struct Registration {
    id: String,
    url: Url,
    bot_localpart: String,
    ghosts: GhostNamespace,
    as_token: AsToken,
    hs_token: HsToken,
    /// Whether it asks for [`ENCRYPTION_EXTENSIONS`].
    encryption_extensions: bool,
}

impl Registration {
    /// A builder for a new registration with id `id`, reachable by the homeserver at `url`, for
    /// users of `server_name`.
    pub fn builder(id: impl Into<String>, url: Url, server_name: &ServerName) -> RegistrationBuilder {
        RegistrationBuilder {
            id: id.into(),
            url,
            server_name: server_name.to_owned(),
            bot_localpart: DEFAULT_BOT_LOCALPART.to_owned(),
            ghost_prefix: DEFAULT_GHOST_PREFIX.to_owned(),
        }
    }

    /// A registration from known parts (the tokens from the bridge's configuration).
    pub fn from_parts(
        id: String,
        url: Url,
        server_name: &ServerName,
        bot_localpart: &str,
        ghost_prefix: &str,
        as_token: AsToken,
        hs_token: HsToken,
    ) -> Result<Self, RegistrationError> {
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !id_ok {
            return Err(RegistrationError::BadId(id));
        }
        let bot_ok = !bot_localpart.is_empty()
            && bot_localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if !bot_ok {
            return Err(RegistrationError::BadBotLocalpart(bot_localpart.to_owned()));
        }
        let ghosts = GhostNamespace::new(ghost_prefix, server_name)?;
        if bot_localpart.starts_with(ghosts.prefix()) {
            return Err(RegistrationError::BadBotLocalpart(bot_localpart.to_owned()));
        }
        Ok(Self {
            id,
            url,
            bot_localpart: bot_localpart.to_owned(),
            ghosts,
            as_token,
            hs_token,
            encryption_extensions: false,
        })
    }

    /// The same registration, asking for the [`ENCRYPTION_EXTENSIONS`] if `on`.
    pub fn with_encryption_extensions(mut self, on: bool) -> Self {
        self.encryption_extensions = on;
        self
    }

    /// The application-service id (the `{appserviceId}` of the ping endpoint).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the homeserver reaches the bridge.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The bot's localpart (the registration's `sender_localpart`).
    pub fn bot_localpart(&self) -> &str {
        &self.bot_localpart
    }

    /// The ghosts this registration claims.
    pub fn ghosts(&self) -> &GhostNamespace {
        &self.ghosts
    }

    /// The bridge's token towards the homeserver.
    pub fn as_token(&self) -> &AsToken {
        &self.as_token
    }

    /// The homeserver's token towards the bridge.
    pub fn hs_token(&self) -> &HsToken {
        &self.hs_token
    }

    /// The scope of remembered transaction ids (see the module doc).
    pub fn scope(&self) -> RegistrationScope {
        RegistrationScope::derive(&self.id, &self.hs_token)
    }

    /// The registration as ruma's spec type.
    pub fn to_ruma(&self) -> RumaRegistration {
        let server = regex_escape(self.ghosts.server_name().as_str());
        let users = vec![
            Namespace::new(true, format!("@{}.*:{server}", regex_escape(self.ghosts.prefix()))),
            Namespace::new(true, format!("@{}:{server}", regex_escape(&self.bot_localpart))),
        ];
        let mut namespaces = Namespaces::new();
        namespaces.users = users;
        let mut registration: RumaRegistration = RegistrationInit {
            id: self.id.clone(),
            url: Some(self.url.to_string()),
            as_token: self.as_token.expose().to_owned(),
            hs_token: self.hs_token.expose().to_owned(),
            sender_localpart: self.bot_localpart.clone(),
            namespaces,
            rate_limited: Some(false),
            protocols: None,
        }
        .into();
        registration.receive_ephemeral = true;
        registration
    }

    /// `registration.yaml`.
    pub fn to_yaml(&self) -> Result<String, RegistrationError> {
        let yaml_error = |e: serde_norway::Error| RegistrationError::Yaml(e.to_string());
        let mut value = serde_norway::to_value(self.to_ruma()).map_err(yaml_error)?;
        if self.encryption_extensions
            && let serde_norway::Value::Mapping(mapping) = &mut value
        {
            for key in ENCRYPTION_EXTENSIONS {
                mapping.insert(key.into(), true.into());
            }
        }
        serde_norway::to_string(&value).map_err(yaml_error)
    }

    /// Whether the registration in `yaml` asks for every one of the [`ENCRYPTION_EXTENSIONS`].
    pub fn yaml_asks_for_encryption(yaml: &str) -> Result<bool, RegistrationError> {
        let value: serde_norway::Value =
            serde_norway::from_str(yaml).map_err(|e| RegistrationError::Yaml(e.to_string()))?;
        Ok(ENCRYPTION_EXTENSIONS
            .iter()
            .all(|key| value.get(key).and_then(serde_norway::Value::as_bool) == Some(true)))
    }

    /// Writes `registration.yaml` to `path`, readable by its owner only (it holds both tokens).
    pub fn write_yaml(&self, path: &Path) -> Result<(), RegistrationError> {
        let yaml = self.to_yaml()?;
        let write_error = |source| RegistrationError::Write { path: path.display().to_string(), source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(write_error)?;
        std::io::Write::write_all(&mut file, yaml.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)
    }

    /// Reads the spec type back from YAML (to check a file an operator edited).
    pub fn parse_yaml(yaml: &str) -> Result<RumaRegistration, RegistrationError> {
        serde_norway::from_str(yaml).map_err(|e| RegistrationError::Yaml(e.to_string()))
    }
}

/// Escapes the regex metacharacters of `text` (homeservers read namespaces as regexes).
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn server() -> &'static ServerName {
        <&ServerName>::try_from("example.org").unwrap()
    }

    fn registration() -> Registration {
        Registration::builder("dm3", Url::parse("http://127.0.0.1:9000").unwrap(), server()).build().unwrap()
    }

    #[test]
    fn yaml_has_exclusive_namespaces_no_rate_limit_and_the_tokens() {
        let r = registration();
        let yaml = r.to_yaml().unwrap();
        let parsed = Registration::parse_yaml(&yaml).unwrap();
        assert_eq!(parsed.id, "dm3");
        assert_eq!(parsed.url.as_deref(), Some("http://127.0.0.1:9000/"));
        assert_eq!(parsed.as_token, r.as_token().expose());
        assert_eq!(parsed.hs_token, r.hs_token().expose());
        assert_ne!(parsed.as_token, parsed.hs_token);
        assert_eq!(parsed.sender_localpart, "dm3bot");
        assert_eq!(parsed.rate_limited, Some(false));
        assert!(parsed.receive_ephemeral);
        let users: Vec<_> = parsed.namespaces.users.iter().map(|n| (n.exclusive, n.regex.as_str())).collect();
        assert_eq!(users, vec![(true, "@_dm3_.*:example\\.org"), (true, "@dm3bot:example\\.org")]);
        assert!(yaml.contains("rate_limited: false"), "{yaml}");
        assert!(!Registration::yaml_asks_for_encryption(&yaml).unwrap(), "off unless asked for");
    }

    #[test]
    fn the_encryption_extensions_are_written_beside_the_spec_fields() {
        let yaml = registration().with_encryption_extensions(true).to_yaml().unwrap();
        for key in ENCRYPTION_EXTENSIONS {
            assert!(yaml.contains(&format!("{key}: true")), "{yaml}");
        }
        assert!(Registration::yaml_asks_for_encryption(&yaml).unwrap());
        assert!(Registration::parse_yaml(&yaml).unwrap().receive_ephemeral, "still the spec's registration");
    }

    #[test]
    fn scope_changes_with_the_token_and_hides_it() {
        let a = registration();
        let b = registration();
        assert_eq!(a.scope(), a.scope());
        assert_ne!(a.scope(), b.scope());
        assert_eq!(a.scope().as_str().len(), 32);
        assert!(!a.hs_token().expose().contains(a.scope().as_str()));
    }

    #[test]
    fn settings_are_validated() {
        let url = Url::parse("http://127.0.0.1:9000").unwrap();
        let bad = |b: RegistrationBuilder| b.build().is_err();
        assert!(bad(Registration::builder("", url.clone(), server())));
        assert!(bad(Registration::builder("a b", url.clone(), server())));
        assert!(bad(Registration::builder("dm3", url.clone(), server()).bot_localpart("Bot")));
        assert!(bad(Registration::builder("dm3", url.clone(), server()).bot_localpart("_dm3_bot")));
        assert!(bad(Registration::builder("dm3", url, server()).ghost_prefix("")));
    }

    #[test]
    fn written_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registration.yaml");
        registration().write_yaml(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(Registration::parse_yaml(&std::fs::read_to_string(&path).unwrap()).is_ok());
    }
}
