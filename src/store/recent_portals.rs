//! Portals read in the last moment, reused instead of read again.
//!
//! Every bridged message looks its portal up (the inbox by the pair of names, the outbox by the
//! conversation), and a burst of messages in one conversation read the same row once per
//! message: in the engine's A/B that read was a good part of the cost the portal lifecycle
//! added (docs/benchmarks.md). A portal read less than [`RecentPortals::TTL`] ago is reused,
//! as the identity vault reuses identity rows (`identities::recent`):
//! - a change made through this process (a suspension, a move, an unlink, a new portal)
//!   forgets every remembered portal at once, so this node never posts into a conversation it
//!   has itself suspended; portal changes are rare next to messages, so starting over costs a
//!   read per conversation;
//! - a change written by another replica reaches this one within the TTL. That is the same
//!   order as the time the homeserver takes to push the membership change that causes a
//!   suspension, in which every replica still posts (docs/engine.md, "Portal lifecycle");
//! - only found portals are kept, never an absence: a portal another replica creates is found
//!   at once;
//! - a read that began before such a change is not remembered after it
//!   ([`crate::recent_reads::ReadTicket`]): the engine reading the portal while this node moved
//!   it would otherwise bring the old conversation back for a whole TTL.
//!
//! Bounded, and let go of once too old to be served (`recent_reads`): what a burst of reads
//! leaves lasts until the node's next sweep.

use std::sync::Mutex;
use std::time::Duration;

use dm3::ens::EnsName;
use dm3_bridge_connector::{ConversationId, NetworkId};

use super::portals::Portal;
use crate::recent_reads::{ReadTicket, RecentReads};

/// How long a lookup reuses a portal read before: a change written through another store (a
/// replica) is seen within this.
pub const PORTAL_READS_REUSED_FOR: Duration = RecentPortals::TTL;

#[derive(Default)]
pub(super) struct RecentPortals {
    maps: Mutex<Maps>,
}

type ByConversation = RecentReads<(NetworkId, ConversationId), Portal>;
type ByNames = RecentReads<(NetworkId, EnsName, EnsName), Portal>;

/// Taken before a portal is read from the database ([`RecentPortals::ticket`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct PortalReadTicket {
    by_conversation: ReadTicket,
    by_names: ReadTicket,
}

/// The two ways a portal is looked up, locked together so that forgetting reaches both at once.
struct Maps {
    by_conversation: ByConversation,
    by_names: ByNames,
}

impl Default for Maps {
    fn default() -> Self {
        Self {
            by_conversation: RecentReads::new(RecentPortals::TTL, RecentPortals::MAX_ENTRIES),
            by_names: RecentReads::new(RecentPortals::TTL, RecentPortals::MAX_ENTRIES),
        }
    }
}

impl RecentPortals {
    /// How long a read is reused.
    pub const TTL: Duration = Duration::from_secs(1);
    const MAX_ENTRIES: usize = 10_000;

    pub fn by_conversation(&self, network: &NetworkId, conversation: &ConversationId) -> Option<Portal> {
        self.maps.lock().ok()?.by_conversation.get(&(network.clone(), conversation.clone()))
    }

    pub fn by_names(&self, network: &NetworkId, local: &EnsName, remote: &EnsName) -> Option<Portal> {
        self.maps.lock().ok()?.by_names.get(&(network.clone(), local.clone(), remote.clone()))
    }

    /// To take before reading a portal that [`remember`](Self::remember) will keep.
    pub fn ticket(&self) -> Option<PortalReadTicket> {
        let maps = self.maps.lock().ok()?;
        Some(PortalReadTicket {
            by_conversation: maps.by_conversation.ticket(),
            by_names: maps.by_names.ticket(),
        })
    }

    /// Remembers `portal`, read since `read` was taken, unless a change came in between.
    pub fn remember(&self, portal: &Portal, read: Option<PortalReadTicket>) {
        let Some(read) = read else { return };
        if let Ok(mut maps) = self.maps.lock() {
            let names = (portal.network.clone(), portal.local_name.clone(), portal.remote_name.clone());
            maps.by_names.remember(names, portal.clone(), read.by_names);
            let conversation = (portal.network.clone(), portal.conversation.clone());
            maps.by_conversation.remember(conversation, portal.clone(), read.by_conversation);
        }
    }

    /// Forgets every portal (one changed through this process).
    pub fn forget_all(&self) {
        if let Ok(mut maps) = self.maps.lock() {
            maps.by_conversation.forget_all();
            maps.by_names.forget_all();
        }
    }

    /// Lets go of every read too old to be served (`recent_reads`).
    pub fn sweep(&self) {
        if let Ok(mut maps) = self.maps.lock() {
            maps.by_conversation.sweep();
            maps.by_names.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::PortalState;

    fn portal() -> Portal {
        Portal {
            id: 1,
            network: NetworkId::new("matrix").unwrap(),
            conversation: ConversationId::new("!room:hs").unwrap(),
            local_name: EnsName::parse("bob.mx.bridge.eth").unwrap(),
            remote_name: EnsName::parse("alice.eth").unwrap(),
            created_at_ms: 0,
            state: PortalState::Live,
            updated_at_ms: 0,
            consent: crate::store::Consent::Given,
        }
    }

    #[test]
    fn a_portal_is_served_from_both_sides_until_forgotten() {
        let recent = RecentPortals::default();
        let p = portal();
        assert!(recent.by_conversation(&p.network, &p.conversation).is_none());
        recent.remember(&p, recent.ticket());
        assert_eq!(recent.by_conversation(&p.network, &p.conversation), Some(p.clone()));
        assert_eq!(recent.by_names(&p.network, &p.local_name, &p.remote_name), Some(p.clone()));
        recent.forget_all();
        assert!(recent.by_conversation(&p.network, &p.conversation).is_none());
        assert!(recent.by_names(&p.network, &p.local_name, &p.remote_name).is_none());
    }

    #[test]
    fn a_read_older_than_the_ttl_is_not_served_and_is_swept() {
        let recent = RecentPortals::default();
        let p = portal();
        recent.remember(&p, recent.ticket());
        {
            let mut maps = recent.maps.lock().unwrap();
            maps.by_conversation.age(&(p.network.clone(), p.conversation.clone()), RecentPortals::TTL);
            let names = (p.network.clone(), p.local_name.clone(), p.remote_name.clone());
            maps.by_names.age(&names, RecentPortals::TTL);
        }
        assert!(recent.by_conversation(&p.network, &p.conversation).is_none());
        recent.sweep();
        let maps = recent.maps.lock().unwrap();
        assert_eq!((maps.by_conversation.len(), maps.by_names.len()), (0, 0));
    }

    #[test]
    fn a_portal_read_before_a_move_is_not_remembered_after_it() {
        let recent = RecentPortals::default();
        let before = portal();
        let read_began = recent.ticket();
        // The move commits and forgets; then the read of the old row comes back.
        recent.forget_all();
        recent.remember(&before, read_began);
        assert!(recent.by_conversation(&before.network, &before.conversation).is_none());
        assert!(recent.by_names(&before.network, &before.local_name, &before.remote_name).is_none());
    }
}
