//! Rate limits on the envelopes for virtual identities: per DM3 sender and per bridged user
//! (issue #19, docs/relay.md "Block and rate limits").
//!
//! A DM3 user may write first to any allowed Matrix or Telegram user, so without a bound the
//! bridge is a spam cannon: one sender reaching thousands of network users, or thousands of
//! senders burying one. Two budgets, each a GCRA (the algorithm of `crate::rate_limit`'s
//! `governor`): a sender may submit `rate_limits.dm3_sender_burst` envelopes for virtual
//! identities at once and then one every `60 / dm3_sender_per_minute` seconds, to all of them
//! together; a bridged user may receive `bridged_user_burst` at once and then one every
//! `60 / bridged_user_per_minute` seconds, from all senders together. Past either, the submit is
//! refused with the reference's spam code, -32010, as HTTP 429 (a retry later succeeds), and
//! nothing is queued.
//!
//! Only authenticated envelopes spend a budget: the inbox checks after the relay verified the
//! sender's signature, so nobody spends another sender's budget by writing their name in `from`
//! (with `relay.unresolved_sender = "accept"` an unverified `from` is still only a claim).
//!
//! In memory, per node, on purpose: a budget is a short window, lost harmlessly on a restart,
//! and checking it must cost nothing next to the submit it guards. With several replicas on one
//! PostgreSQL each keeps its own budgets, so a sender spread over `n` replicas gets up to `n`
//! times the rate; the per-conversation cap of the inbox (`engine.max_pending_per_conversation`,
//! counted in the database) holds across them all the same.
//!
//! Why not `governor`'s keyed limiter, as the per-client limits: under a flood of distinct
//! names the table must stay bounded while the senders already in it keep their budgets, which
//! needs "is this name tracked?", and the keyed limiter cannot answer it without spending. So
//! the state is ours: one theoretical arrival time per name, in a map of at most [`MAX_TRACKED`]
//! names. Names whose budget is full again are swept out every [`SWEEP_EVERY`] checks and when
//! the map is full (they are indistinguishable from names never seen; a full map is swept at most
//! every [`FULL_SWEEP_PAUSE`], so a flood of new names costs a lookup each, not a walk of the
//! map); if it is still full, a name not in it is refused like an exhausted one until budgets
//! refill: the node prefers refusing new senders for a moment to growing without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dm3::ens::EnsName;

use crate::config::{Rate, RateLimitsConfig};
use crate::protocol::DeliveryError;

/// How many checks of one budget pass between two sweeps of full budgets.
pub const SWEEP_EVERY: u32 = 4_096;

/// The most names one budget tracks: with a name of up to 255 bytes, a few tens of MiB at worst,
/// typically a few MiB.
pub const MAX_TRACKED: usize = 65_536;

/// The two budgets.
pub struct InboxLimits {
    senders: Option<Budget>,
    users: Option<Budget>,
}

impl InboxLimits {
    /// The budgets of `[rate_limits]`; a `*_per_minute` of 0 turns one off.
    pub fn new(config: &RateLimitsConfig) -> Self {
        Self::with_capacity(config, MAX_TRACKED)
    }

    /// [`InboxLimits::new`] with another bound on the names tracked (tests flood it).
    pub fn with_capacity(config: &RateLimitsConfig, max_tracked: usize) -> Self {
        Self {
            senders: Budget::new(config.dm3_sender(), max_tracked),
            users: Budget::new(config.bridged_user(), max_tracked),
        }
    }

    /// Spends one envelope of `sender`'s budget and one of `receiver`'s, or refuses with -32010
    /// and spends neither.
    pub fn check(&self, sender: &EnsName, receiver: &EnsName) -> Result<(), DeliveryError> {
        self.check_at(sender, receiver, Instant::now())
    }

    fn check_at(&self, sender: &EnsName, receiver: &EnsName, now: Instant) -> Result<(), DeliveryError> {
        if let Some(senders) = &self.senders {
            senders
                .peek(sender, now)
                .map_err(|wait| refusal(wait, &format!("{sender} sends"), "to the users of this bridge"))?;
        }
        if let Some(users) = &self.users {
            users
                .spend(receiver, now)
                .map_err(|wait| refusal(wait, &format!("{receiver} receives"), "from DM3"))?;
        }
        if let Some(senders) = &self.senders {
            // Peeked above; a concurrent submit of the same sender may have spent it since, and
            // then this one is refused, having spent the receiver's: the rarer error, and harmless.
            senders
                .spend(sender, now)
                .map_err(|wait| refusal(wait, &format!("{sender} sends"), "to the users of this bridge"))?;
        }
        Ok(())
    }

    /// Names tracked, over both budgets (tests, and the bound asserted under a flood).
    pub fn tracked(&self) -> usize {
        [&self.senders, &self.users].into_iter().flatten().map(Budget::len).sum()
    }
}

/// The refusal: 429 -32010, with when to retry.
fn refusal(wait: Wait, who: &str, whom: &str) -> DeliveryError {
    let message = match wait {
        Wait::For(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            format!(
                "spam rule: {who} more messages {whom} than this bridge passes on; retry in {} s",
                seconds.max(1)
            )
        }
        Wait::Crowded => format!(
            "spam rule: this bridge is taking messages from too many DM3 senders at once, so {who} nothing \
             new {whom} for now; retry in a minute"
        ),
    };
    DeliveryError::SpamLimited(message)
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The name's budget is spent; it may pass again after this long.
    For(Duration),
    /// The table is full of other names with budgets in use.
    Crowded,
}

/// One GCRA budget per name.
struct Budget {
    /// Time between two envelopes at the sustained rate.
    interval: Duration,
    /// How far ahead of now a name's arrival time may run: `(burst - 1) × interval`.
    tolerance: Duration,
    max_tracked: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each name's theoretical arrival time: the moment its budget is full again.
    arrivals: HashMap<EnsName, Instant>,
    checks: u32,
    /// When a full table was last swept: a sweep walks the whole table, so under a flood of new
    /// names it runs at most once per [`FULL_SWEEP_PAUSE`], not once per refused name.
    full_sweep_at: Option<Instant>,
}

/// The least time between two sweeps of a full table.
const FULL_SWEEP_PAUSE: Duration = Duration::from_millis(100);

impl Budget {
    fn new(rate: Rate, max_tracked: usize) -> Option<Self> {
        if rate.per_minute == 0 {
            return None;
        }
        let interval = Duration::from_secs(60) / rate.per_minute;
        let tolerance = interval.saturating_mul(rate.burst.max(1) - 1);
        Some(Self { interval, tolerance, max_tracked, state: Mutex::new(State::default()) })
    }

    fn peek(&self, name: &EnsName, now: Instant) -> Result<(), Wait> {
        self.with_state(|state| self.admit(state, name, now).map(|_| ()))
    }

    fn spend(&self, name: &EnsName, now: Instant) -> Result<(), Wait> {
        self.with_state(|state| {
            let next = self.admit(state, name, now)?;
            state.arrivals.insert(name.clone(), next);
            Ok(())
        })
    }

    /// The name's next arrival time if one envelope passes now.
    fn admit(&self, state: &mut State, name: &EnsName, now: Instant) -> Result<Instant, Wait> {
        let known = state.arrivals.get(name).copied();
        if known.is_none() && state.arrivals.len() >= self.max_tracked {
            if state.full_sweep_at.is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_PAUSE) {
                state.full_sweep_at = Some(now);
                sweep(&mut state.arrivals, now);
            }
            if state.arrivals.len() >= self.max_tracked {
                return Err(Wait::Crowded);
            }
        }
        let arrival = known.filter(|&t| t > now).unwrap_or(now);
        let ahead = arrival.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(Wait::For(ahead - self.tolerance));
        }
        Ok(arrival + self.interval)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another check panicked mid-way; the map is still valid.
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.checks = state.checks.wrapping_add(1);
        if state.checks.is_multiple_of(SWEEP_EVERY) {
            sweep(&mut state.arrivals, Instant::now());
        }
        f(&mut state)
    }

    fn len(&self) -> usize {
        self.with_state(|state| state.arrivals.len())
    }
}

/// Forgets the names whose budget is full again.
fn sweep(arrivals: &mut HashMap<EnsName, Instant>, now: Instant) {
    arrivals.retain(|_, arrival| *arrival > now);
    arrivals.shrink_to(arrivals.len().saturating_mul(2));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn name(text: &str) -> EnsName {
        EnsName::parse(text).unwrap()
    }

    fn limits(sender: (u32, u32), user: (u32, u32), max_tracked: usize) -> InboxLimits {
        let config = RateLimitsConfig {
            dm3_sender_per_minute: sender.0,
            dm3_sender_burst: sender.1,
            bridged_user_per_minute: user.0,
            bridged_user_burst: user.1,
            ..RateLimitsConfig::default()
        };
        InboxLimits::with_capacity(&config, max_tracked)
    }

    fn is_spam(result: Result<(), DeliveryError>) -> String {
        match result {
            Err(DeliveryError::SpamLimited(message)) => message,
            other => panic!("expected a spam refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_sender_gets_its_burst_over_all_users_then_one_per_interval() {
        let limits = limits((60, 3), (0, 0), 100);
        let alice = name("alice.eth");
        let now = Instant::now();
        for i in 0..3 {
            limits.check_at(&alice, &name(&format!("u{i}.tg.bridge.eth")), now).unwrap();
        }
        let refused = is_spam(limits.check_at(&alice, &name("u9.tg.bridge.eth"), now));
        assert!(refused.contains("alice.eth sends") && refused.contains("retry in 1 s"), "{refused}");
        limits.check_at(&name("bob.eth"), &name("u9.tg.bridge.eth"), now).unwrap();
        // One interval later, one more; then refused again.
        let later = now + Duration::from_secs(1);
        limits.check_at(&alice, &name("u9.tg.bridge.eth"), later).unwrap();
        is_spam(limits.check_at(&alice, &name("u9.tg.bridge.eth"), later));
        // After the whole burst refilled, the burst again.
        let refilled = later + Duration::from_secs(3);
        for _ in 0..3 {
            limits.check_at(&alice, &name("u1.tg.bridge.eth"), refilled).unwrap();
        }
    }

    #[test]
    fn a_user_gets_its_burst_over_all_senders_and_a_refusal_spends_no_sender_budget() {
        let limits = limits((60, 2), (60, 2), 100);
        let ann = name("ann.tg.bridge.eth");
        let now = Instant::now();
        limits.check_at(&name("s1.eth"), &ann, now).unwrap();
        limits.check_at(&name("s2.eth"), &ann, now).unwrap();
        let refused = is_spam(limits.check_at(&name("s3.eth"), &ann, now));
        assert!(refused.contains("ann.tg.bridge.eth receives"), "{refused}");
        // s3 was refused for ann's budget: its own is untouched.
        limits.check_at(&name("s3.eth"), &name("ben.tg.bridge.eth"), now).unwrap();
        limits.check_at(&name("s3.eth"), &name("cy.tg.bridge.eth"), now).unwrap();
    }

    #[test]
    fn a_flood_of_distinct_senders_stays_within_the_bound_and_tracked_senders_keep_theirs() {
        const CAP: usize = 1_000;
        // One envelope a minute each: a sender who sent one stays tracked for a minute.
        let limits = limits((1, 5), (0, 0), CAP);
        let now = Instant::now();
        let regular = name("regular.eth");
        let ann = name("ann.tg.bridge.eth");
        limits.check_at(&regular, &ann, now).unwrap();
        let spammers: Vec<EnsName> = (0..100_000u32).map(|i| name(&format!("spammer{i}.eth"))).collect();
        let mut crowded = 0;
        let started = Instant::now();
        for (i, spammer) in spammers.iter().enumerate() {
            match limits.check_at(spammer, &ann, now) {
                Ok(()) => {}
                Err(DeliveryError::SpamLimited(message)) if message.contains("too many DM3 senders") => {
                    crowded += 1
                }
                Err(other) => panic!("{other:?}"),
            }
            if i % 1_000 == 0 {
                assert!(limits.tracked() <= CAP, "{} names tracked", limits.tracked());
            }
        }
        // The figure of docs/benchmarks.md ("Block and rate limits").
        eprintln!("100000 senders checked in {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(crowded, 100_000 - (CAP - 1));
        assert!(limits.tracked() <= CAP);
        // The regular sender, tracked before the flood, keeps its budget.
        limits.check_at(&regular, &ann, now).unwrap();
        // Once the budgets refill, the sweep makes room for new senders.
        let later = now + Duration::from_secs(61);
        limits.check_at(&name("newcomer.eth"), &ann, later).unwrap();
        assert!(limits.tracked() <= 2, "{}", limits.tracked());
    }

    #[test]
    fn zero_per_minute_turns_a_budget_off() {
        let limits = limits((0, 0), (0, 0), 10);
        let now = Instant::now();
        for i in 0..1_000 {
            limits.check_at(&name("alice.eth"), &name(&format!("u{i}.tg.bridge.eth")), now).unwrap();
        }
        assert_eq!(limits.tracked(), 0);
    }
}
