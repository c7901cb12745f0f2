//! Whom a DM3 user writes to through a bridge: a network user by their id, or a Telegram
//! contact by their `@username` (its alias, [`super::username`]).
//!
//! This is what a person types (`dm3 name-for telegram @carol_x`, `GET /names/lookup?…&user=`),
//! so one parser serves the command and the node. A Telegram username is written with its `@`:
//! a Telegram id is digits and a username begins with a letter, but with the `@` a mistyped id
//! (`12a`) is still answered as a bad id, not as a bad username.

use super::user_id::{NetworkUserId, UserIdError};
use super::username::TelegramUsername;
use crate::network::Network;

/// A network user, or a Telegram username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressee {
    User(NetworkUserId),
    TelegramAlias(TelegramUsername),
}

impl Addressee {
    /// `text` as a user of `network`: `@username` on Telegram is a username, anything else an id.
    pub fn parse(network: Network, text: &str) -> Result<Self, UserIdError> {
        match network {
            Network::Telegram if text.starts_with('@') => text.parse().map(Self::TelegramAlias),
            _ => NetworkUserId::parse(network, text).map(Self::User),
        }
    }

    pub fn network(&self) -> Network {
        match self {
            Self::User(user) => user.network(),
            Self::TelegramAlias(_) => Network::Telegram,
        }
    }

    /// As a person writes it, and as [`parse`](Self::parse) reads it: `12345`, `@carol_x`,
    /// `@bob:example.org`.
    pub fn written(&self) -> String {
        match self {
            Self::User(user) => user.user_id(),
            Self::TelegramAlias(username) => username.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_at_sign_makes_a_telegram_username() {
        let alias = Addressee::parse(Network::Telegram, "@Carol_X").unwrap();
        assert_eq!((alias.network(), alias.written()), (Network::Telegram, "@carol_x".to_owned()));
        assert_eq!(Addressee::parse(Network::Telegram, "12345").unwrap().written(), "12345");
        assert!(matches!(Addressee::parse(Network::Telegram, "12a"), Err(UserIdError::Telegram(_))));
        assert!(matches!(Addressee::parse(Network::Telegram, "carol_x"), Err(UserIdError::Telegram(_))));
        assert!(matches!(
            Addressee::parse(Network::Telegram, "@car"),
            Err(UserIdError::TelegramUsername { .. })
        ));
        let matrix = Addressee::parse(Network::Matrix, "@bob:example.org").unwrap();
        assert_eq!(matrix.written(), "@bob:example.org");
    }
}
