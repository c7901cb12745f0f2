//! The running engine: one worker per queue over the shared [`EngineParts`].

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::inbox::InboxHandler;
use super::outbox::OutboxHandler;
use super::parts::EngineParts;
use super::worker::{self, WorkerOptions};
use crate::store::QueueName;

/// The engine's workers; [`Engine::shutdown`] lets the jobs in flight finish.
pub struct Engine {
    stop: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts the inbox and outbox workers.
    pub fn start(parts: EngineParts, options: WorkerOptions) -> Self {
        let parts = Arc::new(parts);
        let stop = CancellationToken::new();
        let queue = parts.queue.clone();
        let inbox = Arc::new(InboxHandler { parts: parts.clone() });
        let outbox = Arc::new(OutboxHandler { parts });
        let workers = vec![
            tokio::spawn(worker::run(queue.clone(), QueueName::Inbox, inbox, options.clone(), stop.clone())),
            tokio::spawn(worker::run(queue, QueueName::Outbox, outbox, options, stop.clone())),
        ];
        Self { stop, workers }
    }

    /// Stops claiming and waits for the jobs in flight.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for worker in self.workers {
            if let Err(error) = worker.await {
                tracing::warn!(%error, "an engine worker ended abnormally");
            }
        }
    }
}
