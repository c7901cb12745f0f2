//! The producers' handle on the job queues: enqueue, then wake the worker.
//!
//! A worker claims jobs when woken and otherwise polls at an interval (another replica may
//! have queued something it cannot be told about). Waking it right after a commit keeps
//! latency at the speed of the database instead of the poll interval. One [`Notify`] per queue:
//! `notify_one` leaves a permit when the worker is busy claiming, so a wake-up is never lost,
//! it only merges with the next one.
//!
//! A job whose conversation is running in this process wakes nobody: it cannot be a head
//! before the running job ends, and the running job's completion claims its conversation's
//! next job, or, when its task ends, the worker claims again (after the conversation left
//! the running set here, so that claim sees every job committed before).
//! Under load most jobs are queued behind a running one, and those claims found nothing.
//!
//! The queue also keeps this process's figures of the queue depth ([`QueueDepth`]), moved by
//! every enqueue here and every outcome the worker settles.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::depth::QueueDepth;
use crate::store::{BatchKey, CappedInsert, Inserted, NewJob, QueueName, Store, StoreError};

/// Cheap to clone; every producer and worker of a node shares one.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    wakers: Arc<Wakers>,
    depth: Arc<QueueDepth>,
}

#[derive(Default)]
struct Wakers {
    inbox: Waker,
    outbox: Waker,
}

/// A queue's wake-up and the conversations its worker in this process is running.
#[derive(Default)]
struct Waker {
    notify: Notify,
    running: Mutex<HashSet<String>>,
}

impl Wakers {
    fn of(&self, queue: QueueName) -> &Waker {
        match queue {
            QueueName::Inbox => &self.inbox,
            QueueName::Outbox => &self.outbox,
        }
    }
}

impl Waker {
    fn is_running(&self, conversation: &str) -> bool {
        // A poisoned set answers "not running": a needless claim, never a lost one.
        self.running.lock().is_ok_and(|running| running.contains(conversation))
    }
}

/// Marks a conversation as running in this process until dropped (the worker holds one per
/// job it runs, so a panicking or aborted job task leaves the set too).
pub struct Running {
    wakers: Arc<Wakers>,
    queue: QueueName,
    conversation: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.wakers.of(self.queue).running.lock() {
            running.remove(&self.conversation);
        }
    }
}

impl Queue {
    pub fn new(store: Store) -> Self {
        Self { store, wakers: Arc::new(Wakers::default()), depth: Arc::new(QueueDepth::default()) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This process's figures of the queue depth.
    pub fn depth(&self) -> &Arc<QueueDepth> {
        &self.depth
    }

    /// Queues one job (unless its key was seen) and wakes its worker. Durable once returned.
    pub async fn enqueue(&self, job: &NewJob, now_ms: i64) -> Result<Inserted, StoreError> {
        let inserted = self.store.enqueue_job(job, now_ms).await?;
        if inserted == Inserted::New {
            self.queued(job);
        }
        Ok(inserted)
    }

    /// Queues one job unless its key was seen or its conversation has `cap` jobs pending
    /// ([`Store::enqueue_job_capped`]), and wakes its worker. Durable once returned.
    pub async fn enqueue_capped(
        &self,
        job: &NewJob,
        now_ms: i64,
        cap: u64,
    ) -> Result<CappedInsert, StoreError> {
        let inserted = self.store.enqueue_job_capped(job, now_ms, cap).await?;
        if let CappedInsert::New { .. } = inserted {
            self.queued(job);
        }
        Ok(inserted)
    }

    /// A new `job` was committed: counted, and its worker woken unless the job's conversation
    /// runs here.
    fn queued(&self, job: &NewJob) {
        self.depth.queued(job.queue, 1);
        if !self.wakers.of(job.queue).is_running(&job.conversation) {
            self.wake(job.queue);
        }
    }

    /// Queues a batch in one transaction (see [`Store::enqueue_jobs`]) and wakes the workers
    /// of the queues it touched. Durable once returned.
    pub async fn enqueue_batch(
        &self,
        batch: Option<&BatchKey>,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> Result<Inserted, StoreError> {
        let (inserted, new_jobs) = self.store.enqueue_jobs_counted(batch, jobs, now_ms).await?;
        if inserted == Inserted::New {
            for queue in QueueName::ALL {
                self.depth.queued(queue, new_jobs.of(queue));
                let waker = self.wakers.of(queue);
                if jobs.iter().any(|job| job.queue == queue && !waker.is_running(&job.conversation)) {
                    self.wake(queue);
                }
            }
        }
        Ok(inserted)
    }

    /// Tells the worker of `queue` to claim now.
    pub fn wake(&self, queue: QueueName) {
        self.wakers.of(queue).notify.notify_one();
    }

    /// Resolves at the next [`wake`](Self::wake) of `queue` (at once if one came since the
    /// last call).
    pub async fn woken(&self, queue: QueueName) {
        self.wakers.of(queue).notify.notified().await;
    }

    /// Records that this process runs a job of `conversation` in `queue`, until the returned
    /// guard is dropped: meanwhile new jobs of that conversation wake nobody.
    pub fn running(&self, queue: QueueName, conversation: &str) -> Running {
        if let Ok(mut running) = self.wakers.of(queue).running.lock() {
            running.insert(conversation.to_owned());
        }
        Running { wakers: self.wakers.clone(), queue, conversation: conversation.to_owned() }
    }
}
