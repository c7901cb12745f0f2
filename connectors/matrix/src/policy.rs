//! Which Matrix users may use the bridge.
//!
//! A Matrix user who talks through the bridge gets a custodial DM3 identity: keys sealed on this
//! node, a name under the bridge's parent, a published profile. On a federated network anyone on
//! any homeserver can invite a ghost, so without a policy a bridge would mint identities for the
//! whole federation. The operator lists who may, in `matrix.allow`:
//! - `@alice:example.org`: that user;
//! - `example.org`: every user of that homeserver;
//! - `*`: everyone (a public bridge, by explicit choice).
//!
//! With an empty list, only the users of the bridge's own homeserver may: the usual deployment
//! is a bridge for one's own server. Comparisons are exact, as Matrix ids are.

use std::collections::HashSet;

use dm3_bridge_connector::NetworkUserId;
use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};

/// An entry of the allow list that is neither a user id, a server name nor `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither a Matrix user id (@alice:example.org), a server name (example.org) nor *")]
pub struct PolicyError(pub String);

/// One entry of the allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyEntry {
    User(OwnedUserId),
    Server(OwnedServerName),
    Everyone,
}

impl PolicyEntry {
    /// Parses one entry of `matrix.allow`.
    pub fn parse(entry: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError(entry.to_owned());
        if entry == "*" {
            Ok(Self::Everyone)
        } else if entry.starts_with('@') {
            UserId::parse(entry).map(Self::User).map_err(|_| bad())
        } else {
            ServerName::parse(entry).map(Self::Server).map_err(|_| bad())
        }
    }
}

/// Who may use the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    everyone: bool,
    users: HashSet<OwnedUserId>,
    servers: HashSet<OwnedServerName>,
}

impl UserPolicy {
    /// Only the users of `server_name`.
    pub fn own_server(server_name: &ServerName) -> Self {
        Self { everyone: false, users: HashSet::new(), servers: HashSet::from([server_name.to_owned()]) }
    }

    /// The policy of `entries` (see the module doc); with none, [`UserPolicy::own_server`].
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        own_server: &ServerName,
    ) -> Result<Self, PolicyError> {
        let mut policy = Self { everyone: false, users: HashSet::new(), servers: HashSet::new() };
        let mut any = false;
        for entry in entries {
            any = true;
            match PolicyEntry::parse(entry)? {
                PolicyEntry::User(user) => {
                    policy.users.insert(user);
                }
                PolicyEntry::Server(server) => {
                    policy.servers.insert(server);
                }
                PolicyEntry::Everyone => policy.everyone = true,
            }
        }
        Ok(if any { policy } else { Self::own_server(own_server) })
    }

    /// Whether `user` may use the bridge.
    pub fn allows(&self, user: &UserId) -> bool {
        self.everyone || self.users.contains(user) || self.servers.contains(user.server_name())
    }

    /// The same for a user id as the engine holds it; `false` for anything not a Matrix user id.
    pub fn allows_network_user(&self, user: &NetworkUserId) -> bool {
        UserId::parse(user.as_str()).is_ok_and(|user| self.allows(&user))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn server(name: &str) -> OwnedServerName {
        ServerName::parse(name).unwrap()
    }

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn default_is_the_own_homeserver_only() {
        let policy = UserPolicy::parse([], &server("example.org")).unwrap();
        assert!(policy.allows(&user("@alice:example.org")));
        assert!(!policy.allows(&user("@mallory:evil.org")));
        assert!(!policy.allows(&user("@alice:sub.example.org")), "no suffix matching");
        assert!(policy.allows_network_user(&NetworkUserId::new("@bob:example.org").unwrap()));
        assert!(!policy.allows_network_user(&NetworkUserId::new("12345").unwrap()));
    }

    #[test]
    fn users_and_servers_are_listed_and_replace_the_default() {
        let policy =
            UserPolicy::parse(["@alice:example.org", "friends.org"], &server("example.org")).unwrap();
        assert!(policy.allows(&user("@alice:example.org")));
        assert!(!policy.allows(&user("@bob:example.org")), "the list replaces the own-server default");
        assert!(policy.allows(&user("@carol:friends.org")));
        assert!(policy.allows(&user("@dave:friends.org")));
        assert!(!policy.allows(&user("@eve:other.org")));
        let everyone = UserPolicy::parse(["*"], &server("example.org")).unwrap();
        assert!(everyone.allows(&user("@anyone:anywhere.net")));
    }

    #[test]
    fn bad_entries_are_named() {
        let own = server("example.org");
        assert_eq!(UserPolicy::parse(["@alice"], &own), Err(PolicyError("@alice".to_owned())));
        assert!(UserPolicy::parse(["not a server"], &own).is_err());
        assert!(UserPolicy::parse([""], &own).is_err());
        assert!(UserPolicy::parse(["example.org:8448"], &own).is_ok());
        assert!(UserPolicy::parse(["[::1]:8448"], &own).is_ok());
    }

    proptest! {
        #[test]
        fn a_listed_server_allows_exactly_its_users(local in "[a-z0-9._=-]{1,20}", host in "[a-z]{1,10}\\.[a-z]{2,5}", other in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let policy = UserPolicy::parse([host.as_str()], &server("own.example")).unwrap();
            let listed = user(&format!("@{local}:{host}"));
            let elsewhere = user(&format!("@{local}:{other}"));
            prop_assert!(policy.allows(&listed));
            prop_assert_eq!(policy.allows(&elsewhere), other == host);
        }
    }
}
