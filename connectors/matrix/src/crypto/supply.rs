//! The task that keeps ghost devices supplied with one-time keys as transactions report them.
//!
//! The transaction route must answer the homeserver as soon as the events are stored; a
//! top-up is a few requests to the homeserver, so the route hands the counts over
//! ([`KeySupply::report`]) and a task of its own does the work. The hand-over never blocks:
//! the queue is bounded, and a count that does not fit is dropped, because the next
//! transaction carries the device's count again. A device already queued is not queued twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::devices::{DeviceError, GhostDevices};
use super::key_counts::DeviceKeyCount;

/// Devices waiting for a top-up at most.
const QUEUE: usize = 256;

/// The route's end of the top-up task.
#[derive(Clone, Debug)]
pub struct KeySupply {
    queue: mpsc::Sender<DeviceKeyCount>,
    queued: Arc<Mutex<HashSet<(String, String)>>>,
    /// A device is topped up when the homeserver holds fewer one-time keys than this.
    low: u64,
}

impl KeySupply {
    /// Starts the task over `devices`; it ends when every [`KeySupply`] is dropped.
    pub fn start(devices: Arc<GhostDevices>) -> (Self, JoinHandle<()>) {
        let (queue, mut receiver) = mpsc::channel::<DeviceKeyCount>(QUEUE);
        let queued: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
        let low = crate::crypto::GhostAccount::new().one_time_key_target();
        let task_queued = queued.clone();
        let task = tokio::spawn(async move {
            while let Some(count) = receiver.recv().await {
                task_queued.lock().unwrap_or_else(PoisonError::into_inner).remove(&key(&count));
                match devices.top_up(&count).await {
                    Ok(()) | Err(DeviceError::HeldElsewhere | DeviceError::NoAccount) => {}
                    Err(error) => {
                        tracing::warn!(ghost = %count.user, device = %count.device, %error, "one-time keys not topped up; the next transaction tries again");
                    }
                }
            }
        });
        (Self { queue, queued, low }, task)
    }

    /// Queues a top-up for every device in `counts` that runs low.
    pub fn report(&self, counts: Vec<DeviceKeyCount>) {
        for count in counts {
            if count.one_time_keys >= self.low && count.unused_fallback != Some(false) {
                continue;
            }
            let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            if !queued.insert(key(&count)) {
                continue;
            }
            if let Err(e) = self.queue.try_send(count) {
                let count = match e {
                    mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
                };
                queued.remove(&key(&count));
            }
        }
    }
}

fn key(count: &DeviceKeyCount) -> (String, String) {
    (count.user.to_string(), count.device.to_string())
}
