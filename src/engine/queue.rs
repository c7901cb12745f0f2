//! The producers' handle on the job queues: enqueue, then wake the worker.
//!
//! A worker claims jobs when woken and otherwise polls at an interval (another replica may
//! have queued something it cannot be told about). Waking it right after a commit keeps
//! latency at the speed of the database instead of the poll interval. One [`Notify`] per queue:
//! `notify_one` leaves a permit when the worker is busy claiming, so a wake-up is never lost,
//! it only merges with the next one.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::store::{BatchKey, Inserted, NewJob, QueueName, Store, StoreError};

/// Cheap to clone; every producer and worker of a node shares one.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    wakers: Arc<Wakers>,
}

#[derive(Default)]
struct Wakers {
    inbox: Notify,
    outbox: Notify,
}

impl Wakers {
    fn of(&self, queue: QueueName) -> &Notify {
        match queue {
            QueueName::Inbox => &self.inbox,
            QueueName::Outbox => &self.outbox,
        }
    }
}

impl Queue {
    pub fn new(store: Store) -> Self {
        Self { store, wakers: Arc::new(Wakers::default()) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues one job (unless its key was seen) and wakes its worker. Durable once returned.
    pub async fn enqueue(&self, job: &NewJob, now_ms: i64) -> Result<Inserted, StoreError> {
        let inserted = self.store.enqueue_job(job, now_ms).await?;
        if inserted == Inserted::New {
            self.wake(job.queue);
        }
        Ok(inserted)
    }

    /// Queues a batch in one transaction (see [`Store::enqueue_jobs`]) and wakes the workers
    /// of the queues it touched. Durable once returned.
    pub async fn enqueue_batch(
        &self,
        batch: Option<&BatchKey>,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> Result<Inserted, StoreError> {
        let inserted = self.store.enqueue_jobs(batch, jobs, now_ms).await?;
        if inserted == Inserted::New {
            for queue in QueueName::ALL {
                if jobs.iter().any(|job| job.queue == queue) {
                    self.wake(queue);
                }
            }
        }
        Ok(inserted)
    }

    /// Tells the worker of `queue` to claim now.
    pub fn wake(&self, queue: QueueName) {
        self.wakers.of(queue).notify_one();
    }

    /// Resolves at the next [`wake`](Self::wake) of `queue` (at once if one came since the
    /// last call).
    pub async fn woken(&self, queue: QueueName) {
        self.wakers.of(queue).notified().await;
    }
}
