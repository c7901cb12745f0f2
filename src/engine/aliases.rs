//! Messages to a Telegram username's alias (docs/names.md section 8): held until the
//! username's holder starts the bot with the sender's link, then delivered in order to that
//! account, and never to an account the username moved to.
//!
//! Holding is the inbox job waiting at the head of its conversation (`<alias>:<sender>`): it is
//! retried with the queue's backoff until its TTL, when it fails and its sender is told, as
//! every undeliverable message is. A start wakes the alias's jobs
//! (`Store::wake_alias_jobs`), so a released message goes at once and in order. While held,
//! the relay accepts at most `[engine] max_held_until_consent` of one sender's messages (the
//! cap is checked at submit, where the count of the conversation's pending jobs is at hand);
//! one more is refused with the relay's backlog error and a DM3 reply from the alias.
//!
//! Whom a message may reach is decided from the binding and the message's arrival alone
//! ([`turn`]): the account bound when it arrived; or, for a message that arrived while nobody
//! was bound, the first account bound afterwards, and only once that account started with the
//! sender's link. A message older than a move is refused.

use std::time::Duration;

use dm3::ens::EnsName;

use super::job::{InboxPayload, Report};
use super::parts::{EngineParts, Failure, report_job};
use super::queue::Queue;
use super::worker::FailureCause;
use crate::clock::now_ms;
use crate::identities::IdentityVault;
use crate::protocol::DeliveryError;
use crate::store::{ClaimedJob, NewEnvelope, Store, StoreError};

/// What becomes of a message to an alias now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasTurn {
    /// It goes to the account the alias is bound to.
    Deliver,
    /// It waits for a start with its sender's link.
    Hold,
    /// It never goes: the username moved to another account after it arrived.
    Refuse,
}

/// What becomes of a message from `sender` to `alias` that arrived at `received_at_ms`.
pub async fn turn(
    store: &Store,
    alias: &EnsName,
    sender: &EnsName,
    received_at_ms: i64,
) -> Result<AliasTurn, StoreError> {
    let Some(binding) = store.alias_binding(alias).await? else { return Ok(AliasTurn::Hold) };
    if received_at_ms >= binding.bound_at_ms {
        return Ok(AliasTurn::Deliver);
    }
    if binding.moved {
        return Ok(AliasTurn::Refuse);
    }
    let released = store.alias_released_to(alias, sender).await?;
    Ok(if released.as_deref() == Some(binding.telegram_user.as_str()) {
        AliasTurn::Deliver
    } else {
        AliasTurn::Hold
    })
}

impl EngineParts {
    /// Lets the inbox job `job` to alias `receiver` (of `username`) go on to the bound account,
    /// or holds it (its sender given the start link once), or refuses it.
    pub async fn alias_gate(
        &self,
        job: &ClaimedJob,
        payload: &InboxPayload,
        receiver: &EnsName,
        username: &str,
        sender: &EnsName,
    ) -> Result<(), Failure> {
        match turn(&self.store, receiver, sender, job.created_at_ms).await.map_err(Failure::store)? {
            AliasTurn::Deliver => Ok(()),
            AliasTurn::Refuse => Err(Failure::permanent(format!(
                "the Telegram username {username} moved to another account after you wrote this message; \
                 the bridge does not give that account what was written before the move"
            ))
            .because(FailureCause::Identity)),
            AliasTurn::Hold => {
                self.give_start_link(job, payload, receiver, username, sender).await?;
                Err(Failure::retry(format!(
                    "held until {username} starts the bridge's Telegram bot with your link"
                ))
                .because(FailureCause::AwaitingConsent))
            }
        }
    }

    /// Queues, once per (alias, sender), the DM3 reply that carries the start link to forward.
    async fn give_start_link(
        &self,
        job: &ClaimedJob,
        payload: &InboxPayload,
        receiver: &EnsName,
        username: &str,
        sender: &EnsName,
    ) -> Result<(), Failure> {
        let token = self.vault.alias_link_token(receiver, sender);
        let connector = self.connector(dm3::network::Network::Telegram)?;
        let link = connector
            .start_link(&token)
            .ok_or_else(|| Failure::retry("the Telegram bot's username is not known yet"))?;
        // The link is kept before it is given: a start with it must find it.
        self.store.record_alias_link(&token, receiver, sender, now_ms()).await.map_err(Failure::store)?;
        let cap = self.max_held_until_consent;
        let report = Report::ToDm3Warning {
            from: payload.receiver.clone(),
            to: payload.sender.clone(),
            about_hash: payload.message_hash.clone(),
            warning: format!(
                "{username} has not started this bridge's Telegram bot, which cannot write to them first. \
                 Your messages wait for them (until they expire; at most {cap}). Send them this link: {link} \
                 When the account that holds {username} opens it, it receives your messages, in order."
            ),
            at_ms: u64::try_from(job.created_at_ms).unwrap_or_default(),
        };
        let key = format!("alias-link:{receiver}:{sender}");
        self.queue_report(&key, &job.conversation, &report).await.map_err(Failure::retry)
    }
}

/// The relay's side: the cap on what is held for an alias.
pub struct AliasHold {
    vault: IdentityVault,
    cap: u64,
    report_ttl: Option<Duration>,
}

impl AliasHold {
    pub fn new(vault: IdentityVault, cap: u32, report_ttl: Option<Duration>) -> Self {
        Self { vault, cap: u64::from(cap), report_ttl }
    }

    /// The cap on the pending messages of `envelope`'s conversation if it would be held: at
    /// most [`EngineParts::max_held_until_consent`]'s value.
    pub async fn cap_for(&self, envelope: &NewEnvelope) -> Result<Option<u64>, DeliveryError> {
        if self.vault.alias_username(&envelope.receiver).is_none() {
            return Ok(None);
        }
        let now =
            turn(self.vault.store(), &envelope.receiver, &envelope.sender, envelope.received_at_ms).await?;
        Ok((now == AliasTurn::Hold).then_some(self.cap))
    }

    /// Refuses `envelope`, one more than the cap, and tells its sender in DM3.
    pub async fn refuse(&self, queue: &Queue, envelope: &NewEnvelope) -> DeliveryError {
        let receiver = &envelope.receiver;
        let reason = format!(
            "{receiver} holds {cap} of your messages already, the most this bridge keeps for a Telegram \
             user who has not started its bot; it refuses more until they do",
            cap = self.cap
        );
        let report = Report::ToDm3 {
            from: receiver.to_string(),
            to: envelope.sender.to_string(),
            failed_hash: envelope.message_hash.to_string(),
            reason: reason.clone(),
            at_ms: u64::try_from(envelope.received_at_ms).unwrap_or_default(),
        };
        let key = format!("alias-cap:{receiver}:{}", envelope.message_hash);
        let conversation = format!("{receiver}:{}", envelope.sender);
        let queued = match report_job(&key, &conversation, &report, envelope.received_at_ms, self.report_ttl)
        {
            Ok(job) => queue.enqueue(&job, envelope.received_at_ms).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = queued {
            tracing::warn!(%receiver, %error, "queueing the reply to a message over an alias's cap failed");
        }
        DeliveryError::Backlogged(reason)
    }
}
