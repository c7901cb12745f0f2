//! Who a bridged name stands for: a network and that network's user id, validated once.
//!
//! A bridge's virtual identity is bound to exactly one person on one network, and the name
//! scheme ([`super::label`]) turns that binding into an ENS label. Both sides therefore need
//! ids that are already known to be well formed:
//! - [`TelegramUserId`]: a positive integer (Bot API `User.id`, at most 52 significant bits in
//!   practice; any `u64` above zero is accepted), written in decimal without leading zeros;
//! - [`MatrixUserId`]: `@localpart:server`, at most 255 bytes (Matrix spec, "User
//!   Identifiers"). The localpart may be any printable ASCII except `:` (the spec's
//!   "historical" grammar, a superset of today's `a-z0-9._=-/+`), the server name is a DNS
//!   name, an IPv4 address or a bracketed IPv6 address, with an optional port.
//!
//! The ids are compared byte for byte, as the networks do: `@Bob:example.org` and
//! `@bob:example.org` are two users (Matrix localparts were once case-sensitive).
//!
//! They live in the SDK, not in the bridge, because the scheme is pure: a DM3 client (the
//! `dm3 name-for` command) computes a contact's name from the user id alone, without the
//! bridge's crate.

use std::fmt;
use std::str::FromStr;

/// The longest Matrix user id, in bytes (Matrix spec).
pub const MAX_MATRIX_ID_LEN: usize = 255;

use crate::network::{Network, UnknownNetwork};

/// Why a text is not a network user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error(transparent)]
    UnknownNetwork(#[from] UnknownNetwork),
    #[error("{0:?} is not a Telegram user id: expected a positive decimal number without leading zeros")]
    Telegram(String),
    #[error("{value:?} is not a Telegram username: {reason} (e.g. @carol_x)")]
    TelegramUsername { value: String, reason: &'static str },
    #[error(
        "{value:?} is not a Matrix user id: {reason} (expected @localpart:server, e.g. @bob:example.org)"
    )]
    Matrix { value: String, reason: &'static str },
}

/// A Telegram user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TelegramUserId(u64);

impl TelegramUserId {
    pub fn new(id: u64) -> Result<Self, UserIdError> {
        if id == 0 { Err(UserIdError::Telegram("0".to_owned())) } else { Ok(Self(id)) }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for TelegramUserId {
    type Err = UserIdError;

    /// Canonical decimal only, so that one user has one spelling (and one label).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = || UserIdError::Telegram(bounded(text));
        if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail());
        }
        text.parse::<u64>().map_err(|_| fail()).and_then(|id| Self::new(id).map_err(|_| fail()))
    }
}

impl fmt::Display for TelegramUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A Matrix user id, `@localpart:server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatrixUserId(String);

impl MatrixUserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn localpart(&self) -> &str {
        self.split().0
    }

    pub fn server_name(&self) -> &str {
        self.split().1
    }

    fn split(&self) -> (&str, &str) {
        // Validated: '@' first, and a ':' after a non-empty localpart.
        let body = self.0.get(1..).unwrap_or_default();
        body.split_once(':').unwrap_or((body, ""))
    }
}

impl FromStr for MatrixUserId {
    type Err = UserIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| UserIdError::Matrix { value: bounded(text), reason };
        if text.len() > MAX_MATRIX_ID_LEN {
            return Err(fail("longer than 255 bytes"));
        }
        let body = text.strip_prefix('@').ok_or_else(|| fail("it does not start with @"))?;
        let (localpart, server) = body.split_once(':').ok_or_else(|| fail("there is no :server part"))?;
        if localpart.is_empty() {
            return Err(fail("the localpart is empty"));
        }
        if !localpart.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail("the localpart must be printable ASCII without spaces"));
        }
        if !is_server_name(server) {
            return Err(fail(
                "the server name is not a host name, IP address or [IPv6] with an optional :port",
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

/// `hostname [":" port]`, hostname a DNS name, IPv4 or `[IPv6]` (Matrix spec, "Server Name").
fn is_server_name(server: &str) -> bool {
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else { return false };
        if v6.is_empty()
            || v6.len() > 45
            || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => (v6, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (v6, Some(port)),
                None => return false,
            },
        }
    } else {
        match server.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (server, None),
        }
    };
    let host_ok = server.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

impl fmt::Display for MatrixUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user on one network: what a virtual identity is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetworkUserId {
    Telegram(TelegramUserId),
    Matrix(MatrixUserId),
}

impl NetworkUserId {
    /// Parses `user_id` as an id of `network`.
    pub fn parse(network: Network, user_id: &str) -> Result<Self, UserIdError> {
        match network {
            Network::Telegram => user_id.parse().map(Self::Telegram),
            Network::Matrix => user_id.parse().map(Self::Matrix),
        }
    }

    pub fn network(&self) -> Network {
        match self {
            Self::Telegram(_) => Network::Telegram,
            Self::Matrix(_) => Network::Matrix,
        }
    }

    /// The id as the network writes it (and as it is stored).
    pub fn user_id(&self) -> String {
        match self {
            Self::Telegram(id) => id.to_string(),
            Self::Matrix(id) => id.to_string(),
        }
    }
}

impl fmt::Display for NetworkUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.network(), self.user_id())
    }
}

/// Keeps error messages short even for hostile input.
fn bounded(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn telegram_ids_are_canonical_decimal() {
        assert_eq!("12345".parse::<TelegramUserId>().unwrap().get(), 12345);
        for bad in ["", "0", "012", "-5", "1e3", " 1", "18446744073709551616"] {
            assert!(bad.parse::<TelegramUserId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matrix_ids_follow_the_spec_grammar() {
        let id: MatrixUserId = "@Bob_x:example.org".parse().unwrap();
        assert_eq!((id.localpart(), id.server_name()), ("Bob_x", "example.org"));
        for good in ["@a:b", "@a.b=c/d+e-f:matrix.example.org:8448", "@x:[::1]:80", "@x:1.2.3.4", "@!#$%:h"] {
            assert!(good.parse::<MatrixUserId>().is_ok(), "{good}");
        }
        for bad in [
            "bob:example.org",
            "@:example.org",
            "@bob",
            "@bob:",
            "@b b:x",
            "@bob:ex ample",
            "@bé:x",
            "@x:[::1",
        ] {
            assert!(bad.parse::<MatrixUserId>().is_err(), "{bad}");
        }
        assert!(format!("@{}:x", "a".repeat(253)).parse::<MatrixUserId>().is_err());
    }
}
