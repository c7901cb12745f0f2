//! Whether a connector is doing its job: an optional report the node's `/ready` can use.
//!
//! A connector may fail where no request notices: a background task that receives from the
//! network (Telegram's long poll) can end while every send still works, and the node would go
//! on answering "ready" while nothing arrives. [`Connector::health`](crate::Connector::health)
//! lets the connector say so. It is a report, not a control: the connector restarts what failed
//! itself, and says [`Health::Unhealthy`] with the reason for as long as it is not working.

/// What a connector says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    /// Working, or not expected to be (not started, stopped on purpose).
    #[default]
    Healthy,
    /// Not working now, in words for the operator (the connector is restarting what failed).
    Unhealthy(String),
}

impl Health {
    /// Whether the connector works.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}
