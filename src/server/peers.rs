//! The per-address connection cap (`limits.max_connections_per_ip`).
//!
//! The node-wide cap pauses accepting, which is fair to nobody in particular: one address with
//! many connections would hold all of them. Past its own cap an address's new connection is
//! closed at once instead (it cannot wait in the listen queue: it was accepted to learn its
//! address). An address is a client as the rate limits count one (`rate_limit::client_key`):
//! IPv4 clients of a `[::]` listener under their IPv4 address, an IPv6 host under its /64, so a
//! host cannot take a fresh cap per address of its prefix.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Connections per address; the map holds only addresses with a connection open.
pub(super) struct PeerSlots {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerSlots {
    /// `max` 0: no cap.
    pub(super) fn new(max: u32) -> Arc<Self> {
        Arc::new(Self { max: usize::try_from(max).unwrap_or(usize::MAX), open: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more connection from `ip`, unless the address has all of its own.
    pub(super) fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        if self.max == 0 {
            return Some(PeerSlot { slots: None, ip });
        }
        let ip = crate::rate_limit::client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot { slots: Some(self.clone()), ip })
    }
}

/// One connection's place under its address's cap, given back on drop.
pub(super) struct PeerSlot {
    slots: Option<Arc<PeerSlots>>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some(slots) = &self.slots else { return };
        let mut open = slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_gets_its_cap_and_its_slots_back() {
        let slots = PeerSlots::new(2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = slots.enter(a);
        let _second = slots.enter(a).unwrap();
        assert!(first.is_some());
        assert!(slots.enter(a).is_none(), "a third from the same address");
        let _other = slots.enter(b).unwrap();
        drop(first);
        let _again = slots.enter(a).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(slots.enter(mapped).is_none(), "an IPv4-mapped address is the same address");
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64() {
        let slots = PeerSlots::new(1);
        let first = slots.enter("2001:db8:1:2::1".parse().unwrap());
        assert!(first.is_some());
        assert!(slots.enter("2001:db8:1:2::ff".parse().unwrap()).is_none(), "same /64");
        assert!(slots.enter("2001:db8:1:3::1".parse().unwrap()).is_some(), "another /64");
        let mapped = slots.enter("::ffff:192.0.2.1".parse().unwrap());
        assert!(mapped.is_some());
        assert!(slots.enter("192.0.2.1".parse().unwrap()).is_none(), "the mapped address is the IPv4 one");
        drop((first, mapped));
    }

    #[test]
    fn zero_means_no_cap() {
        let slots = PeerSlots::new(0);
        let held: Vec<_> = (0..100).filter_map(|_| slots.enter(IpAddr::from([10, 0, 0, 1]))).collect();
        assert_eq!(held.len(), 100);
    }
}
