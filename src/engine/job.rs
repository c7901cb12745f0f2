//! What a job carries: one enum, [`JobPayload`], tagged with its kind in the stored JSON.
//!
//! Four kinds of job share `bridge_jobs` (docs/engine.md, "Job payloads"): an envelope for a
//! custodial virtual identity and a sealed one for a self-custody identity (the inbox), an item
//! a connector received (the outbox), and a failure report the engine queued (the outbox too).
//! Each payload names its kind (`"kind": "envelope" | "sealed" | "inbound" | "report"`), and an
//! item names the network it came from, so a
//! handler reads a job by its tag: never by trying one shape and then another, and never by
//! the prefix of the job's conversation. The conversation only orders jobs.
//!
//! The store keeps the payload as text and never reads it ([`crate::store::jobs`]); this module
//! is the one place that writes and reads it. Migration 0007 rewrote the jobs queued before the
//! tag existed into this form.

use dm3_bridge_connector::{ConversationId, Inbound, NetworkId, RemoteIdentity};
use serde::{Deserialize, Serialize};

use crate::store::ClaimedJob;

/// The payload of a job, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPayload {
    /// Inbox: an envelope the relay accepted for a virtual identity.
    Envelope(InboxPayload),
    /// Inbox: an envelope the relay accepted for a self-custody identity, kept as its sender
    /// sealed it (`envelope` is the text as received): the node carries it without opening it
    /// (docs/gateway.md section 5).
    Sealed(InboxPayload),
    /// Outbox: what the connector of `network` received.
    Inbound { network: NetworkId, item: Box<Inbound> },
    /// Outbox: a failure report, to the sender of a job that failed.
    Report { report: Report },
    /// Outbox: an admin unlinked the portal of `conversation`: `remote`'s stand-in says so and
    /// leaves it ([`super::portals::unlink`]).
    Unlinked { network: NetworkId, conversation: ConversationId, remote: RemoteIdentity },
}

impl JobPayload {
    /// The stored form.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The payload of `job`, as [`to_json`](Self::to_json) wrote it.
    pub fn of(job: &ClaimedJob) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&job.payload)
    }
}

/// What an inbox job carries: the stored form of the envelope and the names it was checked
/// against at submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPayload {
    pub receiver: String,
    pub sender: String,
    pub message_hash: String,
    /// For an `envelope` job, the envelope with its delivery information decrypted (P9),
    /// without a postmark: nobody fetches it. For a `sealed` job, the envelope as its sender
    /// sealed it.
    pub envelope: String,
}

/// A failure report, queued in the outbox when a job ends failed (never dropped in silence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// To a DM3 user, as a DM3 message from the virtual identity they wrote to.
    ToDm3 { from: String, to: String, failed_hash: String, reason: String, at_ms: u64 },
    /// To a DM3 user whose message went out, but not as they prepared it (its bridge payload
    /// could not be used, so its text was sent): a DM3 reply to `about_hash` saying why.
    ToDm3Warning { from: String, to: String, about_hash: String, warning: String, at_ms: u64 },
    /// To a network user, as a notice in the conversation, from the DM3 user's stand-in.
    ToNetwork { network: NetworkId, conversation: ConversationId, remote: RemoteIdentity, reason: String },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use dm3_bridge_connector::{NetworkMessageId, NetworkUserId, Unbridgeable};
    use serde_json::{Value, json};

    use super::*;

    fn round_trip(payload: &JobPayload) -> Value {
        let text = payload.to_json().unwrap();
        assert_eq!(&serde_json::from_str::<JobPayload>(&text).unwrap(), payload);
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_payload_names_its_kind() {
        let envelope = JobPayload::Envelope(InboxPayload {
            receiver: "tg-1.tg.bridge.eth".into(),
            sender: "alice.eth".into(),
            message_hash: format!("0x{}", "ab".repeat(32)),
            envelope: "{}".into(),
        });
        let stored = round_trip(&envelope);
        assert_eq!(
            (&stored["kind"], &stored["receiver"]),
            (&json!("envelope"), &json!("tg-1.tg.bridge.eth"))
        );

        let item = Inbound::Unbridgeable(Unbridgeable {
            conversation: ConversationId::new("!room:hs").unwrap(),
            sender: NetworkUserId::new("@bob:hs").unwrap(),
            network_event_id: NetworkMessageId::new("$e").unwrap(),
            reason: "stickers are not bridged".into(),
        });
        let inbound =
            JobPayload::Inbound { network: NetworkId::new("matrix").unwrap(), item: Box::new(item.clone()) };
        let stored = round_trip(&inbound);
        assert_eq!((&stored["kind"], &stored["network"]), (&json!("inbound"), &json!("matrix")));
        assert_eq!(stored["item"], serde_json::to_value(&item).unwrap());

        let sealed = JobPayload::Sealed(InboxPayload {
            receiver: "tg-1.tg.bridge.eth".into(),
            sender: "alice.eth".into(),
            message_hash: format!("0x{}", "ab".repeat(32)),
            envelope: "{}".into(),
        });
        assert_eq!(round_trip(&sealed)["kind"], "sealed");

        let report = JobPayload::Report {
            report: Report::ToNetwork {
                network: NetworkId::new("telegram").unwrap(),
                conversation: ConversationId::new("42/alice.eth").unwrap(),
                remote: RemoteIdentity::new("alice.eth").unwrap(),
                reason: "blocked".into(),
            },
        };
        assert_eq!(round_trip(&report)["kind"], "report");
    }

    #[test]
    fn a_payload_without_its_kind_is_refused() {
        let untagged = json!({"receiver": "a.eth", "sender": "b.eth", "message_hash": "0x", "envelope": ""});
        assert!(serde_json::from_value::<JobPayload>(untagged).is_err());
        assert!(serde_json::from_value::<JobPayload>(json!({"kind": "other"})).is_err());
    }
}
