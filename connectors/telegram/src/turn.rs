//! Whose turn it is to poll: one process per bot token at a time.
//!
//! Telegram serves a bot's updates to one long poll at a time and answers a second one with
//! "terminated by other getUpdates request", so of several bridge processes sharing one
//! database behind a load balancer (docs/scaling.md) exactly one may poll, and another must
//! take over when it dies. Who decides is the service's business (it holds a lease in the
//! database), not the connector's, which knows no database: the service hands in a
//! [`PollingTurn`], and the supervisor waits for a [`Turn`] before each polling loop and stops
//! the loop when the turn ends. Without one (a single process), it is always this process's
//! turn.
//!
//! Two processes polling for a moment (one paused past its lease and not yet told) is safe, only
//! wasteful: each update is stored once under its `update_id` (the sink answers `Duplicate` to
//! the second), and each process hands a chat's updates to the sink in order, an update only
//! after the ones before it were stored by one of them.

use dm3_bridge_connector::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Grants this process turns at polling the bot.
pub trait PollingTurn: Send + Sync {
    /// Waits until this process may poll; `None` if `stop` fired first.
    fn wait_for_turn<'a>(&'a self, stop: &'a CancellationToken) -> BoxFuture<'a, Option<Box<dyn Turn>>>;
}

/// A turn at polling, held until it ends.
pub trait Turn: Send {
    /// Cancelled when the turn ends: lost to another process, or the `stop` it was granted under
    /// fired. The polling loop stops on it.
    fn ended(&self) -> CancellationToken;
    /// Gives the turn up, so that another process need not wait for it to run out.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}
