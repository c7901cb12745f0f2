//! Full names of bridged users: `<label>.<network sub-label>.<parent>`.
//!
//! A bridge's operator owns one parent name (`[identities] parent` on the node, e.g.
//! `bridge.example.eth`) and points its resolver at the node's gateway. Each network gets its
//! own sub-name (`tg.bridge.example.eth`, `mx.bridge.example.eth`), so the labels of different
//! networks can never meet, whatever their alphabet; the labels themselves come from
//! [`super::label`].
//!
//! [`NameScheme::parse`] is the reverse, used by the node's gateway and local resolver to tell
//! apart what is ours and valid, what is ours and malformed (a clear 400 at the gateway), and
//! what is simply not an identity name (the reference's "not found"), and by `dm3 parse-name`.
//! The parent and the sub-labels are inputs, never constants: two bridges differ in them, and
//! a client asks the scheme of the bridge it writes through.

use super::addressee::Addressee;
use super::label::{
    LabelError, MatrixLabel, matrix_label, parse_matrix_label, parse_telegram_label, telegram_label,
};
use super::user_id::NetworkUserId;
use super::username::{ALIAS_PREFIX, TelegramUsername, alias_label, parse_alias_label};
use crate::ens::{EnsName, EnsNameError};
use crate::network::Network;

/// The sub-label of Telegram names unless a bridge configures another (the node's
/// `[identities] telegram_label` default).
pub const DEFAULT_TELEGRAM_SUB_LABEL: &str = "tg";
/// The sub-label of Matrix names unless a bridge configures another (`matrix_label`).
pub const DEFAULT_MATRIX_SUB_LABEL: &str = "mx";

/// Why the scheme cannot be built or a name not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("the parent name {0:?} is not a normalized ENS name")]
    Parent(String),
    #[error("the {network} sub-label {label:?} is not a normalized ENS label")]
    SubLabel { network: Network, label: String },
    #[error("the name {name:?} is not a valid ENS name: {source}")]
    Name { name: String, source: EnsNameError },
}

/// What a name means to a bridge with this scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedName {
    /// Outside the parent: not one of our identity names.
    Foreign,
    /// The parent, a sub-parent, or another name under the parent that holds no identity.
    Structural,
    /// An identity's name. `user` is known from the label unless the label is hashed.
    Identity { network: Network, label: String, user: Option<NetworkUserId> },
    /// A Telegram username's alias (`u-carol-x.tg.<parent>`): whoever holds the username, not
    /// yet a user (docs/names.md, "Telegram username aliases").
    TelegramAlias { label: String, username: TelegramUsername },
}

/// The parent name and the per-network sub-labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameScheme {
    parent: EnsName,
    telegram: String,
    matrix: String,
}

impl NameScheme {
    pub fn new(parent: &str, telegram_label: &str, matrix_label: &str) -> Result<Self, SchemeError> {
        let parent_name = EnsName::parse(parent).map_err(|_| SchemeError::Parent(parent.to_owned()))?;
        if parent_name.as_str() != parent || parent_name.is_root() {
            return Err(SchemeError::Parent(parent.to_owned()));
        }
        for (network, label) in [(Network::Telegram, telegram_label), (Network::Matrix, matrix_label)] {
            let valid = EnsName::parse(label).is_ok_and(|l| l.as_str() == label && l.labels().count() == 1);
            if !valid {
                return Err(SchemeError::SubLabel { network, label: label.to_owned() });
            }
        }
        if telegram_label == matrix_label {
            return Err(SchemeError::SubLabel { network: Network::Matrix, label: matrix_label.to_owned() });
        }
        Ok(Self { parent: parent_name, telegram: telegram_label.to_owned(), matrix: matrix_label.to_owned() })
    }

    pub fn parent(&self) -> &EnsName {
        &self.parent
    }

    pub fn sub_label(&self, network: Network) -> &str {
        match network {
            Network::Telegram => &self.telegram,
            Network::Matrix => &self.matrix,
        }
    }

    /// `<sub-label>.<parent>`.
    pub fn sub_parent(&self, network: Network) -> String {
        format!("{}.{}", self.sub_label(network), self.parent)
    }

    /// The label and full name of `user`'s identity. Fails only when the parent is so long
    /// that the name would exceed ENS's 255 bytes.
    pub fn name_for(&self, user: &NetworkUserId) -> Result<(String, EnsName), SchemeError> {
        let label = match user {
            NetworkUserId::Telegram(id) => telegram_label(*id),
            NetworkUserId::Matrix(id) => matrix_label(id),
        };
        self.named(label, user.network())
    }

    /// The label and full name of `username`'s alias; fails as [`name_for`](Self::name_for).
    pub fn alias_for(&self, username: &TelegramUsername) -> Result<(String, EnsName), SchemeError> {
        self.named(alias_label(username), Network::Telegram)
    }

    /// The label and full name of whom a person names: a user's identity or a username's alias.
    pub fn name_of(&self, addressee: &Addressee) -> Result<(String, EnsName), SchemeError> {
        match addressee {
            Addressee::User(user) => self.name_for(user),
            Addressee::TelegramAlias(username) => self.alias_for(username),
        }
    }

    fn named(&self, label: String, network: Network) -> Result<(String, EnsName), SchemeError> {
        let text = format!("{label}.{}", self.sub_parent(network));
        let name =
            EnsName::parse(&text).map_err(|source| SchemeError::Name { name: text.clone(), source })?;
        Ok((label, name))
    }

    /// What `name` is to this node; `Err` for a malformed identity name under a sub-parent.
    pub fn parse(&self, name: &EnsName) -> Result<ParsedName, LabelError> {
        if !name.is_within(&self.parent) {
            return Ok(ParsedName::Foreign);
        }
        // The labels left of the parent, leftmost first.
        let own = name.labels().count() - self.parent.labels().count();
        let labels: Vec<&str> = name.labels().take(own).collect();
        let network = match labels.last() {
            Some(sub) if *sub == self.telegram => Network::Telegram,
            Some(sub) if *sub == self.matrix => Network::Matrix,
            _ => return Ok(ParsedName::Structural),
        };
        let label = match labels.as_slice() {
            [_sub] => return Ok(ParsedName::Structural),
            [label, _sub] => *label,
            _ => return Err(LabelError::TooDeep),
        };
        if network == Network::Telegram && label.starts_with(ALIAS_PREFIX) {
            let username = parse_alias_label(label)?;
            return Ok(ParsedName::TelegramAlias { label: label.to_owned(), username });
        }
        let user = match network {
            Network::Telegram => Some(NetworkUserId::Telegram(parse_telegram_label(label)?)),
            Network::Matrix => match parse_matrix_label(label)? {
                MatrixLabel::Escaped(id) => Some(NetworkUserId::Matrix(id)),
                MatrixLabel::Hashed => None,
            },
        };
        Ok(ParsedName::Identity { network, label: label.to_owned(), user })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scheme() -> NameScheme {
        NameScheme::new("bridge.example.eth", "tg", "mx").unwrap()
    }

    fn name(text: &str) -> EnsName {
        EnsName::parse(text).unwrap()
    }

    #[test]
    fn names_are_label_sub_label_parent() {
        let telegram = NetworkUserId::parse(Network::Telegram, "12345").unwrap();
        let (label, full) = scheme().name_for(&telegram).unwrap();
        assert_eq!((label.as_str(), full.as_str()), ("tg-12345", "tg-12345.tg.bridge.example.eth"));
        assert_eq!(
            scheme().parse(&full).unwrap(),
            ParsedName::Identity { network: Network::Telegram, label, user: Some(telegram) }
        );
        let matrix = NetworkUserId::parse(Network::Matrix, "@Bob_x:example.org").unwrap();
        let (_, full) = scheme().name_for(&matrix).unwrap();
        assert_eq!(full.as_str(), "-42ob-ux-sexample-porg.mx.bridge.example.eth");
    }

    #[test]
    fn usernames_have_aliases_under_the_telegram_sub_name() {
        let carol = Addressee::parse(Network::Telegram, "@Carol_X").unwrap();
        let (label, full) = scheme().name_of(&carol).unwrap();
        assert_eq!((label.as_str(), full.as_str()), ("u-carol-x", "u-carol-x.tg.bridge.example.eth"));
        let username = "carol_x".parse().unwrap();
        assert_eq!(scheme().parse(&full).unwrap(), ParsedName::TelegramAlias { label, username });
        // Only under the Telegram sub-name, and only canonical.
        assert!(scheme().parse(&name("u-carol-x.mx.bridge.example.eth")).is_err());
        assert!(scheme().parse(&name("u-car.tg.bridge.example.eth")).is_err());
        assert!(scheme().parse(&name("u-carol-.tg.bridge.example.eth")).is_err());
    }

    #[test]
    fn parse_sorts_names() {
        let s = scheme();
        assert_eq!(s.parse(&name("alice.eth")).unwrap(), ParsedName::Foreign);
        assert_eq!(s.parse(&name("xbridge.example.eth")).unwrap(), ParsedName::Foreign);
        for structural in
            ["bridge.example.eth", "tg.bridge.example.eth", "ds.bridge.example.eth", "a.b.bridge.example.eth"]
        {
            assert_eq!(s.parse(&name(structural)).unwrap(), ParsedName::Structural, "{structural}");
        }
        assert_eq!(s.parse(&name("tg-0.tg.bridge.example.eth")), Err(LabelError::NotTelegram));
        assert_eq!(s.parse(&name("a.tg-1.tg.bridge.example.eth")), Err(LabelError::TooDeep));
        // A Telegram label under the Matrix sub-parent is not a Matrix label.
        assert!(s.parse(&name("tg-1.mx.bridge.example.eth")).is_err());
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(NameScheme::new("Bridge.eth", "tg", "mx").is_err());
        assert!(NameScheme::new("", "tg", "mx").is_err());
        assert!(NameScheme::new("bridge.eth", "t.g", "mx").is_err());
        assert!(NameScheme::new("bridge.eth", "mx", "mx").is_err());
    }

    #[test]
    fn too_long_parents_fail_cleanly() {
        let parent =
            format!("{}.{}.{}.{}.eth", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(40));
        let s = NameScheme::new(&parent, "tg", "mx").unwrap();
        let user = NetworkUserId::parse(Network::Matrix, "@bob:example.org").unwrap();
        assert!(matches!(s.name_for(&user), Err(SchemeError::Name { .. })));
    }
}
