//! A sender a test can hold still between two sends.
//!
//! The Synapse restart and crash scenarios stop bob while the bridge comes back, until Synapse
//! has pushed what it held: its recoverer can end just before it stores a transaction made
//! meanwhile, and then holds that one back until the next failure (Synapse's race, not the
//! bridge's). The sender calls [`Pause::checkpoint`] before each send; the test calls
//! [`Pause::hold`], waits for [`Pause::is_paused`], and later [`Pause::release`]s it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Pause {
    held: AtomicBool,
    paused: AtomicBool,
}

impl Pause {
    /// The sender's side: waits while held, saying so in [`Pause::is_paused`].
    pub async fn checkpoint(&self) {
        while self.held.load(Ordering::SeqCst) {
            self.paused.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Asks the sender to stop at its next checkpoint.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Whether the sender stands still at a checkpoint.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}
