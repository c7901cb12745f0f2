//! Telegram usernames and their alias labels: `@carol_x` ⇄ `u-carol-x`.
//!
//! A bot cannot open a chat, and a DM3 user who wants to reach a Telegram contact usually knows
//! their `@username`, not their numeric id. So the scheme gives every username an *alias*
//! name, `u-<username>.<telegram sub-label>.<parent>` (`docs/names.md`, "Telegram username
//! aliases"), which a DM3 user can write to before the contact ever used the bridge.
//!
//! The label must be exact and reversible, and an ENS label:
//! - Telegram usernames are 5–32 characters of `a-z 0-9 _`, begin with a letter, do not end
//!   with `_` and have no `__`; Telegram compares them without regard to case, so the username
//!   is kept in lower case (`@Carol_X` and `@carol_x` are one username, hence one alias);
//! - ENSIP-15 allows `_` only at the start of a label, and usernames never contain `-`, so each
//!   `_` is written `-`: a bijection on the username alphabet, hence reversible with no escape
//!   sequences and no choices. Telegram's own rules then keep the label inside this scheme's
//!   conventions (never `--`, never a trailing `-`);
//! - `u-` cannot start a numeric label (`tg-<id>`), so an alias and an id label never meet;
//!   `u-` plus at most 32 characters is far below ENS's 63 bytes.
//!
//! Decoding refuses every label that is not the encoding of a valid username, so one username
//! has exactly one alias and one alias names at most one username.

use std::fmt;
use std::str::FromStr;

use super::label::LabelError;
use super::user_id::UserIdError;

/// What starts every alias label.
pub const ALIAS_PREFIX: &str = "u-";
/// Telegram's bounds on a username's length, in characters.
pub const MIN_USERNAME_LEN: usize = 5;
pub const MAX_USERNAME_LEN: usize = 32;

/// A Telegram username, lower case, without its `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TelegramUsername(String);

impl TelegramUsername {
    /// The username without `@`, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TelegramUsername {
    type Err = UserIdError;

    /// `@carol_x` or `carol_x`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| UserIdError::TelegramUsername { value: text.chars().take(80).collect(), reason };
        let bare = text.strip_prefix('@').unwrap_or(text);
        if !(MIN_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&bare.len()) {
            return Err(fail("it must be 5 to 32 characters long"));
        }
        if !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(fail("it may hold only letters a-z, digits and _"));
        }
        if !bare.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) {
            return Err(fail("it must begin with a letter"));
        }
        if bare.ends_with('_') || bare.contains("__") {
            return Err(fail("it may not end with _ nor hold __"));
        }
        Ok(Self(bare.to_ascii_lowercase()))
    }
}

impl fmt::Display for TelegramUsername {
    /// `@carol_x`, as Telegram shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// `u-` and the username with each `_` written `-`.
pub fn alias_label(username: &TelegramUsername) -> String {
    format!("{ALIAS_PREFIX}{}", username.as_str().replace('_', "-"))
}

/// The username of an alias label; refuses anything [`alias_label`] cannot have produced.
pub fn parse_alias_label(label: &str) -> Result<TelegramUsername, LabelError> {
    let rest = label.strip_prefix(ALIAS_PREFIX).ok_or(LabelError::NotAlias)?;
    // Labels reach here normalized (lower case); upper case would be a second spelling.
    if !rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(LabelError::NotAlias);
    }
    rest.replace('-', "_").parse().map_err(LabelError::UserId)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn username(text: &str) -> TelegramUsername {
        text.parse().unwrap()
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(alias_label(&username("@carol_x")), "u-carol-x");
        assert_eq!(alias_label(&username("Carol_X")), "u-carol-x", "Telegram ignores case");
        assert_eq!(username("@Carol_X").to_string(), "@carol_x");
        assert_eq!(parse_alias_label("u-carol-x").unwrap(), username("carol_x"));
        assert_eq!(alias_label(&username(&"a".repeat(32))).len(), 34);
    }

    #[test]
    fn invalid_usernames_are_refused() {
        for bad in [
            "", "@", "caro", "@caro", "carol-x", "carol.x", "carol x", "_carol", "1carol", "carol_",
            "car__ol", "carolé", "@@carol",
        ] {
            assert!(bad.parse::<TelegramUsername>().is_err(), "{bad:?}");
        }
        assert!("a".repeat(33).parse::<TelegramUsername>().is_err());
    }

    #[test]
    fn only_canonical_alias_labels_are_read() {
        for bad in
            ["carol", "u-", "u-caro", "u-carol-", "u-car--ol", "u--carol", "u-1carol", "u-Carol", "u-carol_x"]
        {
            assert!(parse_alias_label(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_alias_label("tg-12345"), Err(LabelError::NotAlias));
    }
}
