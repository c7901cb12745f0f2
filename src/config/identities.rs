//! `[identities]` and `[admin]`: the names the node serves and who may manage them.
//!
//! Kept in their own sections (and this file) because they are one feature: the bridge's
//! virtual DM3 identities live under `parent` (empty: the feature is off), one sub-name per
//! network (`tg.<parent>`, `mx.<parent>`), and are published through the CCIP-read gateway,
//! whose answers are signed by the key in `gateway_signer_file` and expire after
//! `answer_ttl_secs`. `docs/names.md` is the operator's view of the same.
//!
//! The admin token is a secret. It may come from the file or from `DM3_BRIDGE_ADMIN__TOKEN`
//! (the usual override mechanism), and [`AdminToken`] never prints it: a `{:?}` of the whole
//! [`Config`](super::Config) shows `[redacted]`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problem;

/// The shortest admin token accepted: shorter ones can be guessed over the network.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Bounds of `identities.answer_ttl_secs`: a signed answer must outlive clock skew between
/// the node and the chain, and the reference's 30000 s is the longest anyone should want
/// (a disabled identity keeps resolving until its last answer expires).
const MIN_TTL_SECS: u64 = 30;
const MAX_TTL_SECS: u64 = 30_000;

/// `[identities]`: the parent name of the virtual identities and the gateway that publishes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitiesConfig {
    /// The ENS name the virtual identities live under, e.g. `bridge.example.eth`. Its resolver
    /// on chain must be an OffchainResolver pointing at this node's gateway. Empty: no virtual
    /// identities (the gateway still answers for the node's own name).
    pub parent: String,
    /// The sub-label for Telegram users: `tg-<id>.<telegram_label>.<parent>`.
    pub telegram_label: String,
    /// The sub-label for Matrix users: `<escaped id>.<matrix_label>.<parent>`.
    pub matrix_label: String,
    /// The gateway's secp256k1 signing key, sealed under the master key; relative to the data
    /// directory. Generated at the first start when missing.
    pub gateway_signer_file: PathBuf,
    /// How long a signed gateway answer is valid (`validUntil = now + ttl`), in seconds.
    pub answer_ttl_secs: u64,
}

impl Default for IdentitiesConfig {
    fn default() -> Self {
        Self {
            parent: String::new(),
            telegram_label: "tg".to_owned(),
            matrix_label: "mx".to_owned(),
            gateway_signer_file: PathBuf::from("gateway-signer.sealed"),
            answer_ttl_secs: 600,
        }
    }
}

/// `[admin]`: the HTTP admin API under `/admin`. Without a token it is disabled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The bearer token of the admin API; better set through `DM3_BRIDGE_ADMIN__TOKEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<AdminToken>,
    /// Serve `GET /metrics` to anyone. Off by default: the metrics tell how much is stored and
    /// who is refused why, and each scrape counts the stored envelopes; a scraper presents
    /// the admin token (`Authorization: Bearer`).
    pub public_metrics: bool,
    /// A second listener (`127.0.0.1:9102`) that serves `GET /metrics` and nothing else, to
    /// anyone who reaches it: for a scraper on a private network, without the admin token.
    /// `/metrics` on the main listener stays as `public_metrics` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
}

/// The admin bearer token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the constant-time comparison only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The problems of both sections.
pub(super) fn problems(identities: &IdentitiesConfig, admin: &AdminConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |key: &str, message: String| out.push(Problem { key: key.to_owned(), message });

    if !identities.parent.is_empty() {
        match dm3::ens::EnsName::parse(&identities.parent) {
            Ok(name) if name.as_str() == identities.parent && name.labels().count() >= 2 => {}
            Ok(name) if name.labels().count() >= 2 => problem(
                "identities.parent",
                format!("{:?} is not normalized; write it as {:?}", identities.parent, name.as_str()),
            ),
            Ok(_) => problem(
                "identities.parent",
                format!("{:?} is not a dotted name; expected e.g. bridge.example.eth", identities.parent),
            ),
            Err(e) => {
                problem("identities.parent", format!("{:?} is not an ENS name: {e}", identities.parent))
            }
        }
    }
    for (key, label) in [
        ("identities.telegram_label", &identities.telegram_label),
        ("identities.matrix_label", &identities.matrix_label),
    ] {
        if let Err(message) = check_sub_label(label) {
            problem(key, message);
        }
    }
    if identities.telegram_label == identities.matrix_label {
        problem(
            "identities.matrix_label",
            format!(
                "{:?} is also the Telegram sub-label; every network needs its own",
                identities.matrix_label
            ),
        );
    }
    if identities.gateway_signer_file.as_os_str().is_empty() {
        problem("identities.gateway_signer_file", "must not be empty".to_owned());
    }
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&identities.answer_ttl_secs) {
        problem(
            "identities.answer_ttl_secs",
            format!(
                "{} is out of range; expected {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds",
                identities.answer_ttl_secs
            ),
        );
    }
    if let Some(token) = &admin.token
        && token.expose().chars().count() < MIN_ADMIN_TOKEN_LEN
    {
        problem(
            "admin.token",
            format!(
                "is shorter than {MIN_ADMIN_TOKEN_LEN} characters; use e.g. `openssl rand -hex 32` (the value is not shown)"
            ),
        );
    }
    out
}

/// One normalized ENS label: lowercase letters, digits and inner hyphens.
fn check_sub_label(label: &str) -> Result<(), String> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.get(2..4) != Some("--");
    if ok {
        Ok(())
    } else {
        Err(format!("{label:?} is not a single lowercase label; expected e.g. \"tg\" or \"mx\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(problems(&IdentitiesConfig::default(), &AdminConfig::default()).is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let identities = IdentitiesConfig {
            parent: "Bridge.Example.eth".to_owned(),
            telegram_label: "mx".to_owned(),
            matrix_label: "mx".to_owned(),
            answer_ttl_secs: 5,
            ..IdentitiesConfig::default()
        };
        let admin = AdminConfig { token: Some(AdminToken::new("short")), ..AdminConfig::default() };
        let keys: Vec<String> = problems(&identities, &admin).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["identities.parent", "identities.matrix_label", "identities.answer_ttl_secs", "admin.token"]
        );
        let sub = IdentitiesConfig { telegram_label: "a.b".to_owned(), ..IdentitiesConfig::default() };
        assert_eq!(problems(&sub, &AdminConfig::default()).len(), 1);
    }

    #[test]
    fn token_never_printed() {
        let admin =
            AdminConfig { token: Some(AdminToken::new("hunter2hunter2hunter2")), ..AdminConfig::default() };
        assert!(!format!("{admin:?}").contains("hunter2"));
        assert!(!AdminToken::new("hunter2").to_string().contains("hunter2"));
    }
}
