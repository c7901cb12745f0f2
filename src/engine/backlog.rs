//! The inbox's bound per conversation, and the warning to the DM3 sender who fills it.
//!
//! The relay accepts DM3 messages as fast as they come; a network takes them at its own pace
//! (Telegram about one a second per chat). Unbounded, one sender's flood to one virtual
//! identity became a backlog of half an hour in which every later message of that chat waited
//! (issue #16). So an inbox conversation (receiver + sender) holds at most
//! `[engine] max_pending_per_conversation` pending messages: a submit beyond is refused with
//! [`DeliveryError::Backlogged`] (HTTP 429, JSON-RPC -32005, what DM3 clients and delivery
//! services take for "retry later"), and nothing already accepted is touched. A replay of an
//! envelope still queued is a duplicate, as always: it was accepted.
//!
//! The sender caused the backlog and is the one who can stop it, so they are told: when their
//! conversation reaches half the cap, one DM3 reply from the virtual identity says how many of
//! their messages wait ([`warning_job`]). Once per crossing: only the message whose submit makes
//! the count reach the threshold queues it, and its key names the conversation and the hour,
//! so a backlog that hovers around the threshold warns at most once an hour. (On PostgreSQL,
//! submits committed at the same moment may step over the threshold together and none warns;
//! the cap still holds, see `store::jobs::bounds`.)

use std::time::Duration;

use super::job::Report;
use super::parts::report_job;
use crate::protocol::DeliveryError;
use crate::store::{NewEnvelope, NewJob};

/// How much one inbox conversation may hold, and how long a warning may take to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxBounds {
    /// Most pending messages per conversation (receiver + sender).
    pub max_pending: u64,
    /// The relay's message TTL, for the warning (`None`: kept until delivered).
    pub report_ttl: Option<Duration>,
}

/// One hour, in milliseconds: a conversation is warned at most once per hour.
const WARN_WINDOW_MS: i64 = 3_600_000;

impl InboxBounds {
    /// The count at which the sender is warned: half the cap.
    pub fn warn_at(&self) -> u64 {
        (self.max_pending / 2).max(1)
    }

    /// The refusal of a message to `envelope`'s receiver while its conversation is full.
    pub fn refusal(&self, envelope: &NewEnvelope) -> DeliveryError {
        DeliveryError::Backlogged(format!(
            "{} has {} of your messages waiting to be delivered, the most this bridge keeps from one \
             sender; retry later",
            envelope.receiver, self.max_pending
        ))
    }
}

/// The warning to `envelope`'s sender that `pending` of their messages wait in `conversation`
/// (the inbox job's), as a DM3 reply to the message that reached the threshold.
pub fn warning_job(
    envelope: &NewEnvelope,
    conversation: &str,
    pending: u64,
    bounds: &InboxBounds,
) -> Result<NewJob, serde_json::Error> {
    let now = envelope.received_at_ms;
    let warning = format!(
        "{pending} of your messages to {receiver} are waiting to be delivered. The bridge passes them on \
         at the pace {receiver}'s network allows (Telegram: about one a second per chat), so the last \
         ones will take a while. Up to {cap} can wait; beyond that, your messages are refused until \
         some have been delivered, and your client is asked to retry them later.",
        receiver = envelope.receiver,
        cap = bounds.max_pending,
    );
    let report = Report::ToDm3Warning {
        from: envelope.receiver.to_string(),
        to: envelope.sender.to_string(),
        about_hash: envelope.message_hash.to_string(),
        warning,
        at_ms: u64::try_from(now).unwrap_or_default(),
    };
    let key = format!("{conversation}#backlog-{}", now.div_euclid(WARN_WINDOW_MS));
    report_job(&key, conversation, &report, now, bounds.report_ttl)
}
