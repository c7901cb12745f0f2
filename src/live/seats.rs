//! How many logged-in sockets live delivery holds, in all and per account, and until when each
//! may receive.
//!
//! A [`Seat`] is taken when a handshake's session checks out and given back when it is dropped
//! (the socket's extensions hold it, so that is when the socket is gone, however it went). The
//! caps are `limits.max_live_sockets` and `limits.max_live_sockets_per_account`: a socket is
//! held for hours and its connection with it (`crate::server` counts it against the connection
//! caps), so neither one account nor all of them may take every connection of the node.
//!
//! The count per account also answers [`Seats::listening`] without asking the Socket.IO
//! server, which the relay asks on every submit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use dm3::ens::EnsName;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::telemetry::metrics::LIVE_SOCKETS;

/// The seats of the node.
pub(super) struct Seats {
    max_total: usize,
    max_per_account: usize,
    taken: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    total: usize,
    by_account: HashMap<EnsName, usize>,
}

/// Why a handshake got no seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Full {
    #[error("this node serves as many live sockets as it can; poll instead, or retry later")]
    Node,
    #[error("this account has as many live sockets as it may; close one first")]
    Account,
}

impl Full {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Node => "node_full",
            Self::Account => "account_full",
        }
    }
}

impl Seats {
    pub(super) fn new(max_total: u32, max_per_account: u32) -> Arc<Self> {
        Arc::new(Self {
            max_total: usize::try_from(max_total).unwrap_or(usize::MAX),
            max_per_account: usize::try_from(max_per_account).unwrap_or(usize::MAX),
            taken: Mutex::new(Taken::default()),
        })
    }

    /// A seat for one more socket of `name`, whose session ends at `expires_at_ms`.
    pub(super) fn take(self: &Arc<Self>, name: &EnsName, expires_at_ms: i64) -> Result<Seat, Full> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if taken.total >= self.max_total {
            return Err(Full::Node);
        }
        let of_account = taken.by_account.get(name).copied().unwrap_or(0);
        if of_account >= self.max_per_account {
            return Err(Full::Account);
        }
        taken.by_account.insert(name.clone(), of_account + 1);
        taken.total += 1;
        metrics::gauge!(LIVE_SOCKETS).increment(1.0);
        Ok(Seat { seats: self.clone(), name: name.clone(), expires_at_ms, ended: CancellationToken::new() })
    }

    /// Whether `name` has a socket now.
    pub(super) fn listening(&self, name: &EnsName) -> bool {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner).by_account.contains_key(name)
    }

    fn give_back(&self, name: &EnsName) {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken.total = taken.total.saturating_sub(1);
        if let Some(count) = taken.by_account.get_mut(name) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.by_account.remove(name);
            }
        }
        metrics::gauge!(LIVE_SOCKETS).decrement(1.0);
    }
}

/// One logged-in socket's place: whose it is, until when it may receive, and a token cancelled
/// when it is given back (which ends the socket's expiry timer).
pub(super) struct Seat {
    seats: Arc<Seats>,
    pub(super) name: EnsName,
    pub(super) expires_at_ms: i64,
    pub(super) ended: CancellationToken,
}

impl Seat {
    /// Whether the session still runs.
    pub(super) fn open(&self) -> bool {
        now_ms() < self.expires_at_ms
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.ended.cancel();
        self.seats.give_back(&self.name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(text: &str) -> EnsName {
        text.parse().unwrap()
    }

    #[test]
    fn seats_are_capped_per_account_and_in_all_and_come_back_when_dropped() {
        let seats = Seats::new(3, 2);
        let (alice, bob, carol) = (name("alice.eth"), name("bob.eth"), name("carol.eth"));
        let a1 = seats.take(&alice, i64::MAX).unwrap();
        let a2 = seats.take(&alice, i64::MAX).unwrap();
        assert_eq!(seats.take(&alice, i64::MAX).err(), Some(Full::Account));
        let b1 = seats.take(&bob, i64::MAX).unwrap();
        assert_eq!(seats.take(&carol, i64::MAX).err(), Some(Full::Node));
        assert!(seats.listening(&alice) && seats.listening(&bob) && !seats.listening(&carol));

        drop(a1);
        assert!(seats.listening(&alice), "one socket left");
        let c1 = seats.take(&carol, i64::MAX).unwrap();
        let token = c1.ended.clone();
        drop((a2, c1));
        assert!(!seats.listening(&alice) && !seats.listening(&carol));
        assert!(token.is_cancelled(), "the expiry timer ends with the seat");
        drop(b1);
        assert_eq!(seats.taken.lock().unwrap().total, 0);
    }

    #[test]
    fn a_seat_is_open_until_its_session_ends() {
        let seats = Seats::new(2, 2);
        assert!(seats.take(&name("alice.eth"), now_ms() + 60_000).unwrap().open());
        assert!(!seats.take(&name("alice.eth"), now_ms() - 1).unwrap().open());
    }
}
