//! The connector's health as the receiving side sees it: one cell, shared.
//!
//! The polling loop ([`crate::poller`]) reports healthy once Telegram answered it, its
//! supervisor ([`crate::supervisor`]) unhealthy when it ended, and the connector reads the cell
//! for the node's `/ready`. It sits below all three, so that none of them leans on another
//! for it.

use std::sync::{Mutex, PoisonError};

use dm3_bridge_connector::Health;

/// The connector's health, as the polling loop and its supervisor see it.
#[derive(Default)]
pub(crate) struct HealthCell(Mutex<Health>);

impl HealthCell {
    pub(crate) fn get(&self) -> Health {
        self.lock().clone()
    }

    pub(crate) fn healthy(&self) {
        let mut health = self.lock();
        if !health.is_healthy() {
            tracing::info!("Telegram polling works again");
            *health = Health::Healthy;
        }
    }

    pub(crate) fn unhealthy(&self, reason: String) {
        *self.lock() = Health::Unhealthy(reason);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        // One assignment per update: a poisoned lock still holds a whole value.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
