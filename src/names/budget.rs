//! A budget around every lookup that leaves the node: one deadline for the whole lookup, and a
//! cap on how many run at once.
//!
//! Each request a lookup makes is already bounded ([`super::http_fetch`]: time, size,
//! addresses; [`super::ccip_read`]: lookups, URLs and gateway requests per call), but a name
//! lookup is several of them (the resolver, `addr`, the text record, a profile link), and the
//! names come from unauthenticated callers: a registration or a submit names whatever it
//! likes. So the lookup as a whole gets [`LookupBudget::deadline`], and at most
//! [`LookupBudget::max_concurrent`] lookups are out at once; one that cannot start before its
//! deadline fails as unavailable instead of queueing without end. Answers (and, for a short
//! while, failures) are remembered by [`super::cache`] in front of this, so a repeated name
//! costs nothing here.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use dm3::ens::EnsName;
use tokio::sync::Semaphore;

use super::{BoxFuture, NameResolver, ResolveError};

/// The limits of [`BudgetedResolver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupBudget {
    /// From asking for a slot to the last byte of the answer.
    pub deadline: Duration,
    pub max_concurrent: usize,
}

/// A [`NameResolver`] whose lookups keep to a [`LookupBudget`].
pub struct BudgetedResolver<R> {
    inner: R,
    deadline: Duration,
    slots: Arc<Semaphore>,
}

impl<R: NameResolver> BudgetedResolver<R> {
    pub fn new(inner: R, budget: LookupBudget) -> Self {
        Self {
            inner,
            deadline: budget.deadline,
            slots: Arc::new(Semaphore::new(budget.max_concurrent.max(1))),
        }
    }

    async fn bounded<T>(
        &self,
        name: &EnsName,
        lookup: impl Future<Output = Result<T, ResolveError>>,
    ) -> Result<T, ResolveError> {
        let deadline = self.deadline;
        let run = async {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| ResolveError::Unavailable("the name service is stopping".to_owned()))?;
            lookup.await
        };
        tokio::time::timeout(deadline, run).await.unwrap_or_else(|_| {
            Err(ResolveError::Unavailable(format!(
                "looking up {name} took longer than {} ms",
                deadline.as_millis()
            )))
        })
    }
}

impl<R: NameResolver> NameResolver for BudgetedResolver<R> {
    fn address<'a>(&'a self, name: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(self.bounded(name, self.inner.address(name)))
    }

    fn text<'a>(
        &'a self,
        name: &'a EnsName,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(self.bounded(name, self.inner.text(name, key)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// Takes `delay` per lookup and counts how many run at once at most.
    struct Slow {
        delay: Duration,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl NameResolver for Slow {
        fn address<'a>(&'a self, _: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(Address::repeat_byte(1)))
            })
        }

        fn text<'a>(
            &'a self,
            _: &'a EnsName,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
            Box::pin(async { Ok(None) })
        }
    }

    fn slow(delay: Duration) -> Slow {
        Slow { delay, running: AtomicUsize::new(0), most: AtomicUsize::new(0) }
    }

    #[tokio::test]
    async fn a_lookup_past_its_deadline_fails_as_unavailable() {
        let budget = LookupBudget { deadline: Duration::from_millis(50), max_concurrent: 4 };
        let resolver = BudgetedResolver::new(slow(Duration::from_secs(30)), budget);
        let started = Instant::now();
        let answer = resolver.address(&"a.eth".parse().unwrap()).await;
        assert!(matches!(answer, Err(ResolveError::Unavailable(_))), "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn no_more_lookups_run_at_once_than_the_budget_allows() {
        let budget = LookupBudget { deadline: Duration::from_secs(10), max_concurrent: 3 };
        let resolver = Arc::new(BudgetedResolver::new(slow(Duration::from_millis(20)), budget));
        let lookups: Vec<_> = (0..12)
            .map(|i| {
                let resolver = resolver.clone();
                tokio::spawn(async move { resolver.address(&format!("n{i}.eth").parse().unwrap()).await })
            })
            .collect();
        for lookup in lookups {
            assert!(lookup.await.unwrap().is_ok());
        }
        assert_eq!(resolver.inner.most.load(Ordering::SeqCst), 3);
    }
}
