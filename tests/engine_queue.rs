//! The engine's queues, portals, message map, worker and inbound sink, on SQLite and on
//! PostgreSQL. Store scenarios pass the clock in and are exact; worker scenarios run the real
//! loop with short intervals and assert what a user would notice: every job ran, once, in
//! its conversation's order, and a slow or failing conversation did not hold up the others.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dm3::ens::EnsName;
use dm3::message::MessageHash;
use dm3_bridge::clock::now_ms;
use dm3_bridge::engine::worker::{self, JobHandler, Outcome, WorkerOptions};
use dm3_bridge::engine::{Backoff, FailureCause, InboundQueue, JobPayload, Queue};
use dm3_bridge::store::{
    BatchKey, ClaimedJob, Consent, Inserted, JobChange, JobFilter, JobRecord, JobState, NewJob, NewMapping,
    NewPortal, PORTAL_READS_REUSED_FOR, PortalState, QueueName, StateFilter, Store,
};
use dm3_bridge_connector::{
    Accepted, BoxFuture, Content, ConversationId, EventKind, IdempotencyKey, Inbound, InboundBatch,
    InboundEvent, InboundSink, Message, NetworkId, NetworkMessageId, NetworkUserId, PortalRequest,
    RemoteIdentity, Text, Unbridgeable,
};
use support::TestDb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    claim_takes_only_the_head_of_each_conversation,
    queues_and_conversations_are_independent,
    duplicate_batch_and_job_keys_are_not_queued_again,
    retried_job_waits_and_holds_back_its_conversation,
    expired_lease_is_claimed_again_and_the_stale_worker_cannot_settle,
    failed_job_lets_its_conversation_move_on,
    prune_removes_only_old_done_jobs,
    a_failed_job_keeps_its_payload_for_a_retry_and_is_pruned_by_age,
    an_admin_retries_a_failed_job_ahead_of_its_conversation_or_drops_it,
    an_inbox_conversation_is_capped_and_a_seen_key_stays_a_duplicate,
    jobs_are_counted_by_queue_and_state,
    portals_are_found_from_both_sides_and_created_once,
    a_portal_another_replica_creates_is_found_at_once,
    a_portal_is_suspended_resumed_rebound_with_its_map_and_unlinked,
    message_map_translates_both_ways_per_network,
    a_bridged_message_is_recorded_with_its_jobs_completion,
    a_completion_claims_the_next_job_of_its_conversation,
    order_is_kept_per_conversation_under_random_retries,
    a_slow_conversation_does_not_hold_up_the_others,
    jobs_run_at_once_without_the_poll,
    retry_honours_the_networks_retry_after,
    crashed_claim_runs_again_after_its_lease,
    renewed_lease_holds_the_job_and_fences_the_old_one,
    a_handler_longer_than_the_lease_runs_once,
    job_past_its_ttl_fails_and_is_reported_once,
    handler_failure_is_reported_and_the_conversation_moves_on,
    stop_lets_the_jobs_in_flight_finish,
    two_replicas_never_run_a_job_twice,
    inbound_batches_become_outbox_jobs_once,
);

const NOW: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

fn job(queue: QueueName, key: &str, conversation: &str) -> NewJob {
    NewJob {
        queue,
        idempotency_key: key.to_owned(),
        conversation: conversation.to_owned(),
        payload: format!(r#"{{"key":"{key}"}}"#),
        expires_at_ms: None,
    }
}

fn outbox(key: &str, conversation: &str) -> NewJob {
    job(QueueName::Outbox, key, conversation)
}

fn keys(jobs: &[ClaimedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.idempotency_key.as_str()).collect()
}

async fn record(store: &Store, key: &str) -> JobRecord {
    store.get_job(QueueName::Outbox, key).await.unwrap().unwrap_or_else(|| panic!("no job {key}"))
}

fn network(s: &str) -> NetworkId {
    NetworkId::new(s).unwrap()
}

fn name(s: &str) -> EnsName {
    EnsName::from_normalized(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The store, with the clock passed in.

async fn claim_takes_only_the_head_of_each_conversation(db: &TestDb) {
    let store = db.open().await;
    for (key, conversation) in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A"), ("b2", "B")] {
        assert_eq!(store.enqueue_job(&outbox(key, conversation), NOW).await.unwrap(), Inserted::New);
    }
    let first = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert_eq!(keys(&first), ["a1", "b1"], "one head per conversation, oldest first");
    assert_eq!(first[0].attempt, 1);
    assert_eq!(first[0].lease_until_ms, NOW + LEASE);
    assert_eq!(first[0].payload, r#"{"key":"a1"}"#);
    // Both heads are running: nothing else may start, whatever the limit.
    assert!(store.claim_jobs(QueueName::Outbox, NOW + 1, LEASE, 10).await.unwrap().is_empty());

    assert!(store.complete_job(first[0].lease(), NOW + 2).await.unwrap());
    let next = store.claim_jobs(QueueName::Outbox, NOW + 3, LEASE, 10).await.unwrap();
    assert_eq!(keys(&next), ["a2"]);
    assert!(store.complete_job(first[1].lease(), NOW + 4).await.unwrap());
    assert!(store.complete_job(next[0].lease(), NOW + 4).await.unwrap());
    // The limit counts heads.
    let limited = store.claim_jobs(QueueName::Outbox, NOW + 5, LEASE, 1).await.unwrap();
    assert_eq!(keys(&limited), ["a3"]);
    assert_eq!(keys(&store.claim_jobs(QueueName::Outbox, NOW + 5, LEASE, 1).await.unwrap()), ["b2"]);

    let done = record(&store, "a1").await;
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.finished_at_ms, Some(NOW + 2));
    assert_eq!(done.lease_until_ms, None);
    assert_eq!(done.payload, "", "a done job keeps its key, not its payload");
    store.close().await;
}

async fn queues_and_conversations_are_independent(db: &TestDb) {
    let store = db.open().await;
    // The same key and conversation in the inbox and the outbox are two jobs in two queues.
    store.enqueue_job(&job(QueueName::Inbox, "k", "C"), NOW).await.unwrap();
    assert_eq!(store.enqueue_job(&outbox("k", "C"), NOW).await.unwrap(), Inserted::New);
    let inbox = store.claim_jobs(QueueName::Inbox, NOW, LEASE, 10).await.unwrap();
    let outbox_jobs = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert_eq!((inbox.len(), outbox_jobs.len()), (1, 1));
    assert_eq!(inbox[0].queue, QueueName::Inbox);
    assert_eq!(outbox_jobs[0].queue, QueueName::Outbox);
    // Keys are checked: empty or control characters would corrupt logs and lookups.
    assert!(store.enqueue_job(&outbox("", "C"), NOW).await.is_err());
    assert!(store.enqueue_job(&outbox("k\n2", "C"), NOW).await.is_err());
    assert!(store.enqueue_job(&outbox("k3", &"c".repeat(2_000)), NOW).await.is_err());
    store.close().await;
}

async fn duplicate_batch_and_job_keys_are_not_queued_again(db: &TestDb) {
    let store = db.open().await;
    let matrix = BatchKey { network: network("matrix"), key: "scope.txn1".to_owned() };
    let jobs = [outbox("matrix:$e1", "matrix:!r"), outbox("matrix:$e2", "matrix:!r")];
    assert_eq!(store.enqueue_jobs(Some(&matrix), &jobs, NOW).await.unwrap(), Inserted::New);
    // The same batch again: nothing is queued, not even a job that would be new.
    let replay = [outbox("matrix:$e1", "matrix:!r"), outbox("matrix:$e9", "matrix:!r")];
    assert_eq!(store.enqueue_jobs(Some(&matrix), &replay, NOW + 1).await.unwrap(), Inserted::Duplicate);
    assert!(store.get_job(QueueName::Outbox, "matrix:$e9").await.unwrap().is_none());
    // The same key on another network is another batch.
    let telegram = BatchKey { network: network("telegram"), key: "scope.txn1".to_owned() };
    assert_eq!(store.enqueue_jobs(Some(&telegram), &[], NOW).await.unwrap(), Inserted::New);
    assert_eq!(store.enqueue_jobs(Some(&telegram), &[], NOW).await.unwrap(), Inserted::Duplicate);
    // A new batch repeating an event queues only what is new.
    let next = BatchKey { network: network("matrix"), key: "scope.txn2".to_owned() };
    assert_eq!(store.enqueue_jobs(Some(&next), &replay, NOW + 2).await.unwrap(), Inserted::New);
    assert_eq!(record(&store, "matrix:$e1").await.created_at_ms, NOW, "the first copy stays");
    assert_eq!(record(&store, "matrix:$e9").await.created_at_ms, NOW + 2);
    // Single jobs and keyless batches: a duplicate when nothing was new.
    assert_eq!(store.enqueue_job(&jobs[1], NOW + 3).await.unwrap(), Inserted::Duplicate);
    assert_eq!(store.enqueue_jobs(None, &replay, NOW + 3).await.unwrap(), Inserted::Duplicate);

    let pending = store.claim_jobs(QueueName::Outbox, NOW + 10, LEASE, 10).await.unwrap();
    assert_eq!(keys(&pending), ["matrix:$e1"], "three jobs in one conversation");
    let counts = store.count_jobs().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 3);
    // A done job still deduplicates its key.
    store.complete_job(pending[0].lease(), NOW + 11).await.unwrap();
    assert_eq!(store.enqueue_job(&jobs[0], NOW + 12).await.unwrap(), Inserted::Duplicate);
    store.close().await;
}

async fn retried_job_waits_and_holds_back_its_conversation(db: &TestDb) {
    let store = db.open().await;
    store.enqueue_job(&outbox("a1", "A"), NOW).await.unwrap();
    store.enqueue_job(&outbox("a2", "A"), NOW).await.unwrap();
    let first = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert!(store.retry_job(first[0].lease(), NOW + 5_000, "429 slow down", NOW + 1).await.unwrap());
    // Not due yet, and a2 must not overtake it.
    assert!(store.claim_jobs(QueueName::Outbox, NOW + 4_999, LEASE, 10).await.unwrap().is_empty());
    let again = store.claim_jobs(QueueName::Outbox, NOW + 5_000, LEASE, 10).await.unwrap();
    assert_eq!(keys(&again), ["a1"]);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("429 slow down"));
    // The lease of the first claim no longer settles anything.
    assert!(!store.complete_job(first[0].lease(), NOW + 5_001).await.unwrap());
    // Reasons from networks are bounded.
    assert!(store.retry_job(again[0].lease(), NOW + 6_000, &"x".repeat(10_000), NOW + 5_001).await.unwrap());
    assert_eq!(record(&store, "a1").await.last_error.unwrap().len(), 1_024);
    store.close().await;
}

async fn expired_lease_is_claimed_again_and_the_stale_worker_cannot_settle(db: &TestDb) {
    let store = db.open().await;
    store.enqueue_job(&outbox("a1", "A"), NOW).await.unwrap();
    let crashed = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert_eq!(crashed.len(), 1);
    // The worker died without an outcome; until its lease runs out, nobody else takes the job.
    assert!(store.claim_jobs(QueueName::Outbox, NOW + LEASE - 1, LEASE, 10).await.unwrap().is_empty());
    let retaken = store.claim_jobs(QueueName::Outbox, NOW + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(keys(&retaken), ["a1"]);
    assert_eq!(retaken[0].attempt, 2, "the crashed run counts as an attempt");
    assert_eq!(retaken[0].lease_until_ms, NOW + 2 * LEASE);
    // The first worker wakes up late: every outcome it tries is refused.
    assert!(!store.complete_job(crashed[0].lease(), NOW + LEASE + 1).await.unwrap());
    assert!(!store.fail_job(crashed[0].lease(), "late", NOW + LEASE + 1).await.unwrap());
    assert!(!store.retry_job(crashed[0].lease(), NOW, "late", NOW + LEASE + 1).await.unwrap());
    assert_eq!(record(&store, "a1").await.state, JobState::Pending);
    assert!(store.complete_job(retaken[0].lease(), NOW + LEASE + 2).await.unwrap());
    assert_eq!(record(&store, "a1").await.state, JobState::Done);
    store.close().await;
}

async fn failed_job_lets_its_conversation_move_on(db: &TestDb) {
    let store = db.open().await;
    store.enqueue_job(&outbox("a1", "A"), NOW).await.unwrap();
    store.enqueue_job(&outbox("a2", "A"), NOW).await.unwrap();
    let head = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert!(store.fail_job(head[0].lease(), "the recipient has no profile", NOW + 1).await.unwrap());
    let failed = record(&store, "a1").await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("the recipient has no profile"));
    assert_eq!(failed.finished_at_ms, Some(NOW + 1));
    assert_eq!(keys(&store.claim_jobs(QueueName::Outbox, NOW + 2, LEASE, 10).await.unwrap()), ["a2"]);
    store.close().await;
}

async fn prune_removes_only_old_done_jobs(db: &TestDb) {
    let store = db.open().await;
    for (key, conversation) in [("old", "A"), ("new", "B"), ("old-failed", "C"), ("pending", "D")] {
        store.enqueue_job(&outbox(key, conversation), NOW).await.unwrap();
    }
    let claimed = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    let lease = |key: &str| claimed.iter().find(|j| j.idempotency_key == key).unwrap().lease();
    store.complete_job(lease("old"), NOW + 100).await.unwrap();
    store.complete_job(lease("new"), NOW + 200).await.unwrap();
    store.fail_job(lease("old-failed"), "gone", NOW + 100).await.unwrap();

    assert_eq!(store.prune_done_jobs(NOW + 100).await.unwrap(), 0, "the cutoff is exclusive");
    assert_eq!(store.prune_done_jobs(NOW + 150).await.unwrap(), 1);
    assert!(store.get_job(QueueName::Outbox, "old").await.unwrap().is_none());
    for key in ["new", "old-failed", "pending"] {
        assert!(store.get_job(QueueName::Outbox, key).await.unwrap().is_some(), "{key} must stay");
    }
    // Once pruned, the key is free again (the TTL has passed, nobody replays that old).
    assert_eq!(store.enqueue_job(&outbox("old", "A"), NOW + 300).await.unwrap(), Inserted::New);

    // Batch keys are pruned by age too.
    let key = |k: &str| BatchKey { network: network("matrix"), key: k.to_owned() };
    store.enqueue_jobs(Some(&key("t1")), &[], NOW).await.unwrap();
    store.enqueue_jobs(Some(&key("t2")), &[], NOW + 500).await.unwrap();
    assert_eq!(store.prune_inbound_batches(NOW + 500).await.unwrap(), 1);
    assert_eq!(store.enqueue_jobs(Some(&key("t1")), &[], NOW + 600).await.unwrap(), Inserted::New);
    assert_eq!(store.enqueue_jobs(Some(&key("t2")), &[], NOW + 600).await.unwrap(), Inserted::Duplicate);
    store.close().await;
}

/// Issue #20: an admin's retry puts a failed job back where its id says (docs/engine.md, "Admin
/// actions on jobs"): it runs before the jobs of its conversation still pending, which wait for
/// it, and after those delivered meanwhile; its attempts start again. A retry of a job that is
/// not failed, or whose message expired, is refused; a drop deletes a failed job or a pending
/// one that is not running, never a running or done one.
async fn an_admin_retries_a_failed_job_ahead_of_its_conversation_or_drops_it(db: &TestDb) {
    let store = db.open().await;
    for key in ["a1", "a2", "a3"] {
        store.enqueue_job(&outbox(key, "A"), NOW).await.unwrap();
    }
    let a1 = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert_eq!(keys(&a1), ["a1"]);
    assert!(store.fail_job(a1[0].lease(), "blocked", NOW + 1).await.unwrap());
    let a2 = store.claim_jobs(QueueName::Outbox, NOW + 2, LEASE, 10).await.unwrap();
    assert_eq!(keys(&a2), ["a2"]);
    assert!(store.complete_job(a2[0].lease(), NOW + 3).await.unwrap());
    let (failed, done) = (record(&store, "a1").await.id.get(), record(&store, "a2").await.id.get());

    assert!(matches!(store.retry_failed_job(done, NOW + 4).await.unwrap(), JobChange::Refused(_)));
    assert_eq!(store.retry_failed_job(i64::MAX, NOW + 4).await.unwrap(), JobChange::NotFound);
    let JobChange::Changed(retried) = store.retry_failed_job(failed, NOW + 4).await.unwrap() else {
        panic!("not retried")
    };
    assert_eq!(
        (
            retried.state,
            retried.attempts,
            retried.payload.as_str(),
            retried.lease_until_ms,
            retried.finished_at_ms
        ),
        (JobState::Pending, 0, r#"{"key":"a1"}"#, None, None)
    );
    assert!(
        matches!(store.retry_failed_job(failed, NOW + 4).await.unwrap(), JobChange::Refused(_)),
        "a replay"
    );

    // a1 runs next, ahead of a3; while it runs it cannot be dropped.
    let next = store.claim_jobs(QueueName::Outbox, NOW + 5, LEASE, 10).await.unwrap();
    assert_eq!((keys(&next), next[0].attempt), (vec!["a1"], 1));
    assert!(matches!(store.drop_job(failed, NOW + 6).await.unwrap(), JobChange::Refused(_)));
    assert!(store.complete_job(next[0].lease(), NOW + 6).await.unwrap());
    assert_eq!(keys(&store.claim_jobs(QueueName::Outbox, NOW + 7, LEASE, 10).await.unwrap()), ["a3"]);

    // A failed job whose message expired is not retried; it can be dropped, once. A done job
    // stays: its key recognises a replay.
    let mut short = outbox("b1", "B");
    short.expires_at_ms = Some(NOW + 100);
    store.enqueue_job(&short, NOW).await.unwrap();
    let b1 = store.claim_jobs(QueueName::Outbox, NOW + 8, LEASE, 10).await.unwrap();
    assert_eq!(keys(&b1), ["b1"]);
    assert!(store.fail_job(b1[0].lease(), "expired", NOW + 9).await.unwrap());
    let expired = record(&store, "b1").await.id.get();
    assert!(matches!(store.retry_failed_job(expired, NOW + 100).await.unwrap(), JobChange::Refused(_)));
    assert!(matches!(store.drop_job(expired, NOW + 100).await.unwrap(), JobChange::Changed(_)));
    assert_eq!(store.drop_job(expired, NOW + 100).await.unwrap(), JobChange::NotFound);
    assert!(store.get_job(QueueName::Outbox, "b1").await.unwrap().is_none());
    assert!(matches!(store.drop_job(done, NOW + 100).await.unwrap(), JobChange::Refused(_)));

    // Listed by state, in id order, payloads left out.
    let filter =
        JobFilter { queue: Some(QueueName::Outbox), state: Some(StateFilter::Done), after: 0, limit: 10 };
    let listed = store.list_jobs(filter).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.idempotency_key.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    let running = JobFilter { state: Some(StateFilter::Retrying), ..filter };
    assert_eq!(store.list_jobs(running).await.unwrap().len(), 1, "a3 ran once");
    let after = JobFilter { after: failed, ..filter };
    assert_eq!(store.list_jobs(after).await.unwrap().len(), 1);
    store.close().await;
}

/// Issue #16, item 5, and #20: a failed job keeps what tells why it failed (its key,
/// conversation and last error) and its payload, for an admin's retry; and it is pruned by age
/// like a done one, by the expiry task too, which bounds what the payloads take.
async fn a_failed_job_keeps_its_payload_for_a_retry_and_is_pruned_by_age(db: &TestDb) {
    let store = db.open().await;
    // A large event: before, it stayed in full for as long as the failed job was kept.
    let mut big = outbox("big", "A");
    big.payload = format!(r#"{{"event":"{}"}}"#, "x".repeat(4 << 20));
    store.enqueue_job(&big, NOW).await.unwrap();
    store.enqueue_job(&outbox("later", "B"), NOW).await.unwrap();
    store.enqueue_job(&outbox("pending", "C"), NOW).await.unwrap();
    let claimed = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    let lease = |key: &str| claimed.iter().find(|j| j.idempotency_key == key).unwrap().lease();
    assert!(store.fail_job(lease("big"), "Bad Request: message is too long", NOW + 100).await.unwrap());
    assert!(store.fail_job(lease("later"), "blocked", NOW + 200).await.unwrap());

    let failed = record(&store, "big").await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.payload, big.payload, "a failed job keeps its payload until pruned");
    assert_eq!(
        (failed.conversation.as_str(), failed.last_error.as_deref()),
        ("A", Some("Bad Request: message is too long"))
    );

    assert_eq!(store.prune_failed_jobs(NOW + 100).await.unwrap(), 0, "the cutoff is exclusive");
    assert_eq!(store.prune_failed_jobs(NOW + 150).await.unwrap(), 1);
    assert!(store.get_job(QueueName::Outbox, "big").await.unwrap().is_none());
    assert!(store.get_job(QueueName::Outbox, "later").await.unwrap().is_some());

    // The expiry task prunes them once they are older than what is kept.
    let kept = i64::try_from(dm3_bridge::expiry::BRIDGE_KEYS_KEPT.as_millis()).unwrap();
    dm3_bridge::expiry::prune_bridge_keys(&store, NOW + 200 + kept).await;
    assert!(store.get_job(QueueName::Outbox, "later").await.unwrap().is_some(), "kept that long");
    dm3_bridge::expiry::prune_bridge_keys(&store, NOW + 201 + kept).await;
    assert!(store.get_job(QueueName::Outbox, "later").await.unwrap().is_none());
    assert_eq!(record(&store, "pending").await.state, JobState::Pending, "pending jobs stay");
    store.close().await;
}

/// Issue #16, item 5: an inbox conversation takes jobs up to its cap and refuses beyond,
/// without touching what it holds; a key seen before is a duplicate even then; other
/// conversations are apart, and a job done makes room.
async fn an_inbox_conversation_is_capped_and_a_seen_key_stays_a_duplicate(db: &TestDb) {
    use dm3_bridge::store::CappedInsert;
    let store = db.open().await;
    let inbox = |key: &str, conversation: &str| job(QueueName::Inbox, key, conversation);
    let mut pending = Vec::new();
    for key in ["a1", "a2", "a3"] {
        pending.push(store.enqueue_job_capped(&inbox(key, "A"), NOW, 3).await.unwrap());
    }
    let queued = |n| CappedInsert::New { pending: n };
    assert_eq!(pending, [queued(1), queued(2), queued(3)]);
    assert_eq!(store.enqueue_job_capped(&inbox("a4", "A"), NOW, 3).await.unwrap(), CappedInsert::Full);
    assert!(store.get_job(QueueName::Inbox, "a4").await.unwrap().is_none(), "refused, not queued");
    assert_eq!(store.enqueue_job_capped(&inbox("a2", "A"), NOW, 3).await.unwrap(), CappedInsert::Duplicate);
    assert_eq!(store.enqueue_job_capped(&inbox("b1", "B"), NOW, 3).await.unwrap(), queued(1));

    let head = store.claim_jobs(QueueName::Inbox, NOW, LEASE, 10).await.unwrap();
    let a1 = head.iter().find(|j| j.idempotency_key == "a1").unwrap();
    assert!(store.complete_job(a1.lease(), NOW + 1).await.unwrap());
    assert_eq!(store.enqueue_job_capped(&inbox("a4", "A"), NOW + 2, 3).await.unwrap(), queued(3));
    // A done job's key still deduplicates.
    assert_eq!(
        store.enqueue_job_capped(&inbox("a1", "A"), NOW + 2, 3).await.unwrap(),
        CappedInsert::Duplicate
    );
    store.close().await;
}

async fn jobs_are_counted_by_queue_and_state(db: &TestDb) {
    let store = db.open().await;
    for n in 0..3 {
        store.enqueue_job(&outbox(&format!("o{n}"), &format!("C{n}")), NOW).await.unwrap();
    }
    store.enqueue_job(&job(QueueName::Inbox, "i0", "C0"), NOW).await.unwrap();
    let claimed = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 2).await.unwrap();
    store.complete_job(claimed[0].lease(), NOW).await.unwrap();
    store.fail_job(claimed[1].lease(), "no", NOW).await.unwrap();
    let mut counts: Vec<_> =
        store.count_jobs().await.unwrap().into_iter().map(|c| (c.queue, c.state, c.count)).collect();
    counts.sort_by_key(|(q, s, _)| (*q, s.as_str()));
    assert_eq!(
        counts,
        [
            (QueueName::Inbox, JobState::Pending, 1),
            (QueueName::Outbox, JobState::Done, 1),
            (QueueName::Outbox, JobState::Failed, 1),
            (QueueName::Outbox, JobState::Pending, 1),
        ]
    );
    store.close().await;
}

async fn portals_are_found_from_both_sides_and_created_once(db: &TestDb) {
    let store = db.open().await;
    let matrix = network("matrix");
    let portal = NewPortal {
        network: matrix.clone(),
        conversation: ConversationId::new("!room:hs").unwrap(),
        local_name: name("bob.matrix.bridge.eth"),
        remote_name: name("alice.eth"),
        consent: Consent::Given,
    };
    let (created, inserted) = store.insert_or_get_portal(&portal, NOW).await.unwrap();
    assert_eq!(inserted, Inserted::New);
    assert_eq!((created.conversation.as_str(), created.created_at_ms), ("!room:hs", NOW));

    // The other direction opened it at the same time: it gets the same portal.
    let (again, inserted) = store.insert_or_get_portal(&portal, NOW + 1).await.unwrap();
    assert_eq!((again.clone(), inserted), (created.clone(), Inserted::Duplicate));
    // Another room for the same pair: the existing portal is returned, nothing is stored.
    let mut other_room = portal.clone();
    other_room.conversation = ConversationId::new("!other:hs").unwrap();
    let (existing, inserted) = store.insert_or_get_portal(&other_room, NOW + 2).await.unwrap();
    assert_eq!((existing.id, inserted), (created.id, Inserted::Duplicate));
    assert!(store.portal_by_conversation(&matrix, &other_room.conversation).await.unwrap().is_none());

    assert_eq!(
        store.portal_by_conversation(&matrix, &portal.conversation).await.unwrap().as_ref(),
        Some(&created)
    );
    assert_eq!(
        store.portal_by_names(&matrix, &portal.local_name, &portal.remote_name).await.unwrap().as_ref(),
        Some(&created)
    );
    assert!(
        store
            .portal_by_names(&network("telegram"), &portal.local_name, &portal.remote_name)
            .await
            .unwrap()
            .is_none(),
        "portals are per network"
    );

    let mut on_telegram = portal.clone();
    on_telegram.network = network("telegram");
    store.insert_or_get_portal(&on_telegram, NOW).await.unwrap();
    let mut second = portal.clone();
    second.conversation = ConversationId::new("!two:hs").unwrap();
    second.remote_name = name("carol.eth");
    store.insert_or_get_portal(&second, NOW).await.unwrap();

    let all = store.list_portals(None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    let on_matrix = store.list_portals(Some(&matrix), 0, 10).await.unwrap();
    assert_eq!(
        on_matrix.iter().map(|p| p.remote_name.as_str()).collect::<Vec<_>>(),
        ["alice.eth", "carol.eth"]
    );
    let page = store.list_portals(Some(&matrix), 0, 1).await.unwrap();
    let rest = store.list_portals(Some(&matrix), page[0].id, 10).await.unwrap();
    assert_eq!((page.len(), rest.len()), (1, 1));
    assert_eq!(rest[0].remote_name, name("carol.eth"));
    store.close().await;
}

/// A replica that looked a portal up before another replica created it finds it at once, from
/// either side (only found portals are reused, never an absence).
async fn a_portal_another_replica_creates_is_found_at_once(db: &TestDb) {
    let (one, other) = (db.open().await, db.open().await);
    let matrix = network("matrix");
    let portal = NewPortal {
        network: matrix.clone(),
        conversation: ConversationId::new("!room:hs").unwrap(),
        local_name: name("bob.matrix.bridge.eth"),
        remote_name: name("alice.eth"),
        consent: Consent::Given,
    };
    assert!(one.portal_by_conversation(&matrix, &portal.conversation).await.unwrap().is_none());
    assert!(one.portal_by_names(&matrix, &portal.local_name, &portal.remote_name).await.unwrap().is_none());
    let (created, _) = other.insert_or_get_portal(&portal, NOW).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            one.portal_by_conversation(&matrix, &portal.conversation).await.unwrap(),
            Some(created.clone())
        );
        let by_names = one.portal_by_names(&matrix, &portal.local_name, &portal.remote_name).await.unwrap();
        assert_eq!(by_names, Some(created.clone()));
    }
    one.close().await;
    other.close().await;
}

/// A portal's state and conversation change in place: a suspension is seen at once by the
/// store that wrote it and within a second by another (which reused its earlier read until
/// then), and a re-bound portal keeps its id, its pair and its message map.
async fn a_portal_is_suspended_resumed_rebound_with_its_map_and_unlinked(db: &TestDb) {
    let (one, other) = (db.open().await, db.open().await);
    let matrix = network("matrix");
    let portal = NewPortal {
        network: matrix.clone(),
        conversation: ConversationId::new("!old:hs").unwrap(),
        local_name: name("bob.matrix.bridge.eth"),
        remote_name: name("alice.eth"),
        consent: Consent::Given,
    };
    let (created, _) = one.insert_or_get_portal(&portal, NOW).await.unwrap();
    assert_eq!((created.state.clone(), created.updated_at_ms), (PortalState::Live, 0));
    let mine = || one.portal_by_names(&matrix, &portal.local_name, &portal.remote_name);
    let by_names = || other.portal_by_names(&matrix, &portal.local_name, &portal.remote_name);
    assert_eq!(mine().await.unwrap().unwrap().state, PortalState::Live);
    assert_eq!(by_names().await.unwrap().unwrap().state, PortalState::Live, "read, and reused for a moment");

    let suspended = PortalState::Suspended { reason: "@eve:hs joined".to_owned() };
    assert!(one.set_portal_state(created.id, &suspended, NOW + 1).await.unwrap());
    let seen = mine().await.unwrap().unwrap();
    assert_eq!((seen.state, seen.updated_at_ms), (suspended.clone(), NOW + 1), "the writer sees it at once");
    tokio::time::sleep(PORTAL_READS_REUSED_FOR).await;
    assert_eq!(by_names().await.unwrap().unwrap().state, suspended, "another store within the second");
    assert!(one.set_portal_state(created.id, &PortalState::Live, NOW + 2).await.unwrap());
    assert_eq!(mine().await.unwrap().unwrap().state, PortalState::Live);
    assert!(!one.set_portal_state(created.id + 1000, &suspended, NOW).await.unwrap(), "no such portal");

    // Messages carried in the old room; one of another portal's room stays where it is.
    let mapping = |n: u64, room: &str| NewMapping {
        network: matrix.clone(),
        dm3_hash: format!("0x{n:064x}").parse().unwrap(),
        network_message_id: NetworkMessageId::new(format!("$event{n}")).unwrap(),
        conversation: ConversationId::new(room).unwrap(),
    };
    one.record_message(&mapping(1, "!old:hs"), NOW).await.unwrap();
    one.record_message(&mapping(2, "!elsewhere:hs"), NOW).await.unwrap();
    one.set_portal_state(created.id, &suspended, NOW + 3).await.unwrap();
    let new_room = ConversationId::new("!new:hs").unwrap();
    assert!(other.rebind_portal(created.id, &new_room, NOW + 4).await.unwrap());
    let moved = one.portal_by_conversation(&matrix, &new_room).await.unwrap().unwrap();
    assert_eq!(
        (moved.id, moved.state.clone(), moved.updated_at_ms),
        (created.id, PortalState::Live, NOW + 4)
    );
    assert_eq!(
        (moved.local_name, moved.remote_name),
        (portal.local_name.clone(), portal.remote_name.clone())
    );
    assert!(one.portal_by_conversation(&matrix, &portal.conversation).await.unwrap().is_none());
    let carried = one.message_by_dm3_hash(&matrix, &mapping(1, "!x:hs").dm3_hash).await.unwrap().unwrap();
    assert_eq!(carried.conversation, new_room, "the message map moved with the portal");
    let untouched = one.message_by_dm3_hash(&matrix, &mapping(2, "!x:hs").dm3_hash).await.unwrap().unwrap();
    assert_eq!(untouched.conversation.as_str(), "!elsewhere:hs");
    // Re-binding to the room it is in only makes it live.
    one.set_portal_state(created.id, &suspended, NOW + 5).await.unwrap();
    assert!(one.rebind_portal(created.id, &new_room, NOW + 6).await.unwrap());
    assert_eq!(one.portal(created.id).await.unwrap().unwrap().state, PortalState::Live);
    // Ciphertext only (migration 0018) reads back as such, not as a plain suspension with the
    // same reason; a plain suspension clears it, and so does a re-binding.
    let encrypted = PortalState::CiphertextOnly { reason: "@eve:hs joined".to_owned() };
    one.set_portal_state(created.id, &encrypted, NOW + 6).await.unwrap();
    assert_eq!(one.portal(created.id).await.unwrap().unwrap().state, encrypted);
    one.set_portal_state(created.id, &suspended, NOW + 6).await.unwrap();
    assert_eq!(one.portal(created.id).await.unwrap().unwrap().state, suspended);
    one.set_portal_state(created.id, &encrypted, NOW + 6).await.unwrap();
    assert!(one.rebind_portal(created.id, &new_room, NOW + 6).await.unwrap());
    assert_eq!(one.portal(created.id).await.unwrap().unwrap().state, PortalState::Live);
    // Another portal's room cannot be taken.
    let mut second = portal.clone();
    second.conversation = ConversationId::new("!second:hs").unwrap();
    second.remote_name = name("carol.eth");
    let (second, _) = one.insert_or_get_portal(&second, NOW).await.unwrap();
    assert!(one.rebind_portal(second.id, &new_room, NOW + 7).await.is_err());

    // Unlinked: gone from both sides; the pair can have a new portal.
    assert!(one.delete_portal(created.id).await.unwrap());
    assert!(!one.delete_portal(created.id).await.unwrap());
    assert!(by_names().await.unwrap().is_none());
    assert!(other.portal(created.id).await.unwrap().is_none());
    let (fresh, inserted) = one.insert_or_get_portal(&portal, NOW + 8).await.unwrap();
    assert_eq!(inserted, Inserted::New);
    assert_ne!(fresh.id, created.id);
    one.close().await;
    other.close().await;
}

async fn message_map_translates_both_ways_per_network(db: &TestDb) {
    let store = db.open().await;
    let hash = |n: u64| format!("0x{n:064x}").parse::<MessageHash>().unwrap();
    let mapping = NewMapping {
        network: network("matrix"),
        dm3_hash: hash(1),
        network_message_id: NetworkMessageId::new("$event1").unwrap(),
        conversation: ConversationId::new("!room:hs").unwrap(),
    };
    assert_eq!(store.record_message(&mapping, NOW).await.unwrap(), Inserted::New);
    // A handler that ran twice records the same pair again.
    assert_eq!(store.record_message(&mapping, NOW + 1).await.unwrap(), Inserted::Duplicate);
    // Either side already mapped: the first mapping stays.
    let mut other_event = mapping.clone();
    other_event.network_message_id = NetworkMessageId::new("$event2").unwrap();
    assert_eq!(store.record_message(&other_event, NOW + 2).await.unwrap(), Inserted::Duplicate);

    let matrix = network("matrix");
    let by_hash = store.message_by_dm3_hash(&matrix, &hash(1)).await.unwrap().unwrap();
    assert_eq!(by_hash.network_message_id.as_str(), "$event1");
    assert_eq!(by_hash.conversation.as_str(), "!room:hs");
    assert_eq!(by_hash.created_at_ms, NOW);
    let by_id = store.message_by_network_id(&matrix, &mapping.network_message_id).await.unwrap().unwrap();
    assert_eq!(by_id.dm3_hash, hash(1));
    assert!(store.message_by_network_id(&matrix, &other_event.network_message_id).await.unwrap().is_none());
    assert!(store.message_by_dm3_hash(&matrix, &hash(2)).await.unwrap().is_none());

    // The same ids on another network are another mapping.
    let mut telegram = mapping.clone();
    telegram.network = network("telegram");
    telegram.dm3_hash = hash(2);
    assert_eq!(store.record_message(&telegram, NOW).await.unwrap(), Inserted::New);
    assert!(store.message_by_dm3_hash(&network("telegram"), &hash(1)).await.unwrap().is_none());
    store.close().await;
}

async fn a_bridged_message_is_recorded_with_its_jobs_completion(db: &TestDb) {
    let store = db.open().await;
    let mapping = |n: u64| NewMapping {
        network: network("matrix"),
        dm3_hash: format!("0x{n:064x}").parse().unwrap(),
        network_message_id: NetworkMessageId::new(format!("$event{n}")).unwrap(),
        conversation: ConversationId::new("!room:hs").unwrap(),
    };
    let matrix = network("matrix");
    store.enqueue_job(&outbox("a1", "A"), NOW).await.unwrap();
    let first = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    assert!(store.complete_job_recording(first[0].lease(), &mapping(1), NOW + 1).await.unwrap());
    assert_eq!(record(&store, "a1").await.state, JobState::Done);
    let mapped = store.message_by_dm3_hash(&matrix, &mapping(1).dm3_hash).await.unwrap().unwrap();
    assert_eq!((mapped.network_message_id.as_str(), mapped.created_at_ms), ("$event1", NOW + 1));

    // A run that lost its lease settles nothing, but what it delivered is still recorded: the
    // message is on the other side either way.
    store.enqueue_job(&outbox("a2", "A"), NOW).await.unwrap();
    let stale = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    let retaken = store.claim_jobs(QueueName::Outbox, NOW + LEASE, LEASE, 10).await.unwrap();
    assert!(!store.complete_job_recording(stale[0].lease(), &mapping(2), NOW + LEASE + 1).await.unwrap());
    assert_eq!(record(&store, "a2").await.state, JobState::Pending);
    assert!(store.message_by_dm3_hash(&matrix, &mapping(2).dm3_hash).await.unwrap().is_some());
    // The run that holds the lease records the same message again: a duplicate, no error.
    assert!(store.complete_job_recording(retaken[0].lease(), &mapping(2), NOW + LEASE + 2).await.unwrap());
    assert_eq!(record(&store, "a2").await.state, JobState::Done);
    store.close().await;
}

async fn a_completion_claims_the_next_job_of_its_conversation(db: &TestDb) {
    let store = db.open().await;
    for (key, conversation) in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A")] {
        store.enqueue_job(&outbox(key, conversation), NOW).await.unwrap();
    }
    let first = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 1).await.unwrap();
    assert_eq!(keys(&first), ["a1"]);

    // a1 done: a2 is claimed in the same commit, never another conversation's job.
    let completed = store.complete_job_and_claim_next(&first[0], None, NOW + 1, Some(LEASE)).await.unwrap();
    assert!(completed.settled);
    let a2 = completed.next.expect("the conversation's next job");
    assert_eq!((a2.idempotency_key.as_str(), a2.attempt, a2.lease_until_ms), ("a2", 1, NOW + 1 + LEASE));
    assert_eq!(record(&store, "a1").await.state, JobState::Done);
    // It is leased: a claim does not hand it out again, only b1.
    let b1 = store.claim_jobs(QueueName::Outbox, NOW + 2, LEASE, 10).await.unwrap();
    assert_eq!(keys(&b1), ["b1"]);
    assert!(store.complete_job(b1[0].lease(), NOW + 2).await.unwrap());

    // a2 is retried later: a3 stays behind it, and a2 is not claimed before it is due.
    assert!(store.retry_job(a2.lease(), NOW + 5_000, "429", NOW + 3).await.unwrap());
    let retried = store.claim_jobs(QueueName::Outbox, NOW + 5_000, LEASE, 10).await.unwrap();
    assert_eq!(keys(&retried), ["a2"]);
    assert_eq!(retried[0].attempt, 2);

    // A run that lost its lease settles nothing and claims nothing.
    let retaken = store.claim_jobs(QueueName::Outbox, NOW + 5_000 + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(keys(&retaken), ["a2"]);
    let stale =
        store.complete_job_and_claim_next(&retried[0], None, NOW + 5_001 + LEASE, Some(LEASE)).await.unwrap();
    assert_eq!((stale.settled, stale.next), (false, None));
    assert_eq!(record(&store, "a3").await.attempts, 0);

    // The last job of a conversation claims nothing; its mapping is recorded with it.
    let mapping = NewMapping {
        network: network("matrix"),
        dm3_hash: format!("0x{:064x}", 2).parse().unwrap(),
        network_message_id: NetworkMessageId::new("$event2").unwrap(),
        conversation: ConversationId::new("!room:hs").unwrap(),
    };
    let now = NOW + 5_002 + LEASE;
    let completed =
        store.complete_job_and_claim_next(&retaken[0], Some(&mapping), now, Some(LEASE)).await.unwrap();
    let a3 = completed.next.expect("a3 after a2");
    assert_eq!(a3.idempotency_key, "a3");
    assert!(store.message_by_dm3_hash(&network("matrix"), &mapping.dm3_hash).await.unwrap().is_some());
    let last = store.complete_job_and_claim_next(&a3, None, now + 1, Some(LEASE)).await.unwrap();
    assert_eq!((last.settled, last.next), (true, None));

    // Without a lease for the next job (the worker has no free slot), nothing is claimed.
    for key in ["a4", "a5"] {
        store.enqueue_job(&outbox(key, "A"), now).await.unwrap();
    }
    let a4 = store.claim_jobs(QueueName::Outbox, now + 2, LEASE, 10).await.unwrap();
    assert_eq!(keys(&a4), ["a4"]);
    let alone = store.complete_job_and_claim_next(&a4[0], None, now + 3, None).await.unwrap();
    assert_eq!((alone.settled, alone.next), (true, None));
    assert_eq!(record(&store, "a5").await.attempts, 0);

    // A run whose job was taken over and finished by the other run claims nothing either,
    // though the conversation's next job is free to claim.
    let a5 = store.claim_jobs(QueueName::Outbox, now + 4, LEASE, 10).await.unwrap();
    assert_eq!(keys(&a5), ["a5"]);
    store.enqueue_job(&outbox("a6", "A"), now + 4).await.unwrap();
    let taken_over = store.claim_jobs(QueueName::Outbox, now + 4 + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(keys(&taken_over), ["a5"]);
    assert!(store.complete_job(taken_over[0].lease(), now + 5 + LEASE).await.unwrap());
    let late = store.complete_job_and_claim_next(&a5[0], None, now + 6 + LEASE, Some(LEASE)).await.unwrap();
    assert_eq!((late.settled, late.next), (false, None));
    assert_eq!(record(&store, "a6").await.attempts, 0);
    store.close().await;
}

// ---------------------------------------------------------------------------------------------
// The worker, on the real clock.

/// A handler made of a closure, with a count of the failures it was asked to report.
struct TestHandler<F> {
    run: F,
    reported: Arc<Mutex<Vec<(String, String)>>>,
}

impl<F> TestHandler<F>
where
    F: Fn(ClaimedJob) -> BoxFuture<'static, Outcome> + Send + Sync + 'static,
{
    fn new(run: F) -> Arc<Self> {
        Arc::new(Self { run, reported: Arc::default() })
    }

    fn reported(&self) -> Vec<(String, String)> {
        self.reported.lock().unwrap().clone()
    }
}

impl<F> JobHandler for TestHandler<F>
where
    F: Fn(ClaimedJob) -> BoxFuture<'static, Outcome> + Send + Sync + 'static,
{
    fn handle(&self, job: ClaimedJob) -> BoxFuture<'_, Outcome> {
        (self.run)(job)
    }

    fn on_failed<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, Result<(), String>> {
        self.reported.lock().unwrap().push((job.idempotency_key.clone(), reason.to_owned()));
        Box::pin(async { Ok(()) })
    }
}

fn fast_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 8,
        claim_batch: 4,
        lease: Duration::from_secs(10),
        handler_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(25),
        depth_interval: Duration::from_millis(200),
        backoff: Backoff {
            base: Duration::from_millis(2),
            max: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(5),
        },
    }
}

fn start(
    queue: &Queue,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
    stop: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(worker::run(queue.clone(), QueueName::Outbox, handler, options, stop.clone()))
}

/// Polls `condition` until it holds; fails the test after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_settled(store: &Store, keys: &[String]) -> bool {
    for key in keys {
        match store.get_job(QueueName::Outbox, key).await.unwrap() {
            Some(job) if job.state != JobState::Pending => {}
            _ => return false,
        }
    }
    true
}

/// Payload `{"conversation": c, "seq": n}`, so the handler knows the expected order.
fn sequenced(conversation: usize, seq: usize) -> NewJob {
    NewJob {
        queue: QueueName::Outbox,
        idempotency_key: format!("c{conversation}-{seq}"),
        conversation: format!("c{conversation}"),
        payload: format!(r#"{{"conversation":{conversation},"seq":{seq}}}"#),
        expires_at_ms: None,
    }
}

fn seq_of(job: &ClaimedJob) -> (usize, usize) {
    let value: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
    (value["conversation"].as_u64().unwrap() as usize, value["seq"].as_u64().unwrap() as usize)
}

/// What a handler saw, shared with the test: the order of completions per conversation and
/// any conversation that ran two jobs at once.
#[derive(Default)]
struct Observed {
    completed: Mutex<HashMap<usize, Vec<usize>>>,
    running: Mutex<HashSet<usize>>,
    overlaps: AtomicUsize,
    runs: Mutex<HashMap<String, usize>>,
}

impl Observed {
    fn enter(&self, job: &ClaimedJob) -> (usize, usize) {
        let (conversation, seq) = seq_of(job);
        if !self.running.lock().unwrap().insert(conversation) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        *self.runs.lock().unwrap().entry(job.idempotency_key.clone()).or_default() += 1;
        (conversation, seq)
    }

    fn leave(&self, conversation: usize, seq: usize, done: bool) {
        if done {
            self.completed.lock().unwrap().entry(conversation).or_default().push(seq);
        }
        self.running.lock().unwrap().remove(&conversation);
    }
}

async fn order_is_kept_per_conversation_under_random_retries(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let (conversations, per_conversation) = (8, 12);
    let mut all_keys = Vec::new();
    // Interleaved, as messages from many chats arrive.
    for seq in 0..per_conversation {
        for conversation in 0..conversations {
            let job = sequenced(conversation, seq);
            all_keys.push(job.idempotency_key.clone());
            queue.enqueue(&job, now_ms()).await.unwrap();
        }
    }
    let observed = Arc::new(Observed::default());
    let seen = observed.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        let seen = seen.clone();
        Box::pin(async move {
            let (conversation, seq) = seen.enter(&job);
            let random = getrandom::u32().unwrap();
            tokio::time::sleep(Duration::from_millis(u64::from(random % 4))).await;
            // About a third of the runs fail for a while; every job succeeds by its fourth run.
            let retry = random.is_multiple_of(3) && job.attempt < 4;
            seen.leave(conversation, seq, !retry);
            if retry {
                Outcome::Retry { after: Some(Duration::from_millis(1)), reason: "flaky network".to_owned() }
            } else {
                Outcome::Done
            }
        })
    });
    let stop = CancellationToken::new();
    // Three workers on one queue, like three replicas of one node.
    let workers: Vec<_> = (0..3).map(|_| start(&queue, handler.clone(), fast_options(), &stop)).collect();
    eventually(Duration::from_secs(60), "every job done", || all_settled(&store, &all_keys)).await;
    stop.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0, "a conversation ran two jobs at once");
    let completed = observed.completed.lock().unwrap().clone();
    for conversation in 0..conversations {
        assert_eq!(
            completed[&conversation],
            (0..per_conversation).collect::<Vec<_>>(),
            "conversation {conversation} out of order"
        );
    }
    for key in &all_keys {
        assert_eq!(record(&store, key).await.state, JobState::Done);
    }
    store.close().await;
}

/// A handler that finishes every job at once, except those `held` picks: each of those waits
/// for a `notify_one` of the returned `Notify`.
fn holding_handler(held: fn(&ClaimedJob) -> bool) -> (Arc<tokio::sync::Notify>, Arc<dyn JobHandler>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        let gate = gate.clone();
        Box::pin(async move {
            if held(&job) {
                gate.notified().await;
            }
            Outcome::Done
        })
    });
    (release, handler)
}

/// Wake-ups, not the poll, start every job: one queued behind a running job of its
/// conversation (which wakes nobody) runs as soon as that job ends, and one of another
/// conversation at once.
async fn jobs_run_at_once_without_the_poll(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let (release, handler) = holding_handler(|job| job.idempotency_key == "x1");
    let stop = CancellationToken::new();
    let options = WorkerOptions { poll_interval: Duration::from_secs(3600), ..fast_options() };
    let worker = start(&queue, handler, options, &stop);
    // Past the worker's first claim, which it makes at start whatever it was told.
    tokio::time::sleep(Duration::from_millis(100)).await;
    queue.enqueue(&outbox("x1", "X"), now_ms()).await.unwrap();
    eventually(Duration::from_secs(5), "x1 running", || async {
        record(&store, "x1").await.lease_until_ms.is_some()
    })
    .await;
    queue.enqueue(&outbox("x2", "X"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("y1", "Y"), now_ms()).await.unwrap();
    let y = ["y1".to_owned()];
    eventually(Duration::from_secs(5), "y1 done while x1 runs", || all_settled(&store, &y)).await;
    assert_eq!(record(&store, "x2").await.state, JobState::Pending, "waits behind x1");
    release.notify_one();
    let x = ["x1".to_owned(), "x2".to_owned()];
    eventually(Duration::from_secs(5), "x1 and x2 done", || all_settled(&store, &x)).await;
    stop.cancel();
    worker.await.unwrap();
    store.close().await;
}

async fn a_slow_conversation_does_not_hold_up_the_others(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let (release, handler) = holding_handler(|job| job.conversation == "slow");
    let stop = CancellationToken::new();
    let worker = start(&queue, handler, fast_options(), &stop);
    queue.enqueue(&outbox("slow-1", "slow"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("slow-2", "slow"), now_ms()).await.unwrap();
    let mut fast = Vec::new();
    for conversation in 0..5 {
        for n in 0..3 {
            let key = format!("fast-{conversation}-{n}");
            queue.enqueue(&outbox(&key, &format!("fast{conversation}")), now_ms()).await.unwrap();
            fast.push(key);
        }
    }
    eventually(Duration::from_secs(20), "the fast conversations done", || all_settled(&store, &fast)).await;
    assert_eq!(record(&store, "slow-1").await.state, JobState::Pending, "still running");
    assert_eq!(record(&store, "slow-2").await.state, JobState::Pending, "waits behind slow-1");
    let slow = ["slow-1".to_owned(), "slow-2".to_owned()];
    release.notify_one();
    eventually(Duration::from_secs(20), "slow-1 done", || all_settled(&store, &slow[..1])).await;
    release.notify_one();
    eventually(Duration::from_secs(20), "slow-2 done", || all_settled(&store, &slow[1..])).await;
    stop.cancel();
    worker.await.unwrap();
    store.close().await;
}

async fn retry_honours_the_networks_retry_after(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let runs = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = runs.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        seen.lock().unwrap().push(Instant::now());
        Box::pin(async move {
            if job.attempt == 1 {
                Outcome::Retry { after: Some(Duration::from_millis(400)), reason: "429".to_owned() }
            } else {
                Outcome::Done
            }
        })
    });
    let stop = CancellationToken::new();
    let worker = start(&queue, handler, fast_options(), &stop);
    queue.enqueue(&outbox("limited", "A"), now_ms()).await.unwrap();
    let limited = ["limited".to_owned()];
    eventually(Duration::from_secs(20), "done", || all_settled(&store, &limited)).await;
    stop.cancel();
    worker.await.unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2);
    let gap = runs[1] - runs[0];
    // The backoff alone would be 1–2 ms; the network asked for 400 ms.
    // (Less one millisecond: the store's clock counts whole milliseconds.)
    assert!(gap >= Duration::from_millis(399), "retried after {gap:?}");
    let done = record(&store, "limited").await;
    assert_eq!((done.state, done.attempts), (JobState::Done, 2));
    assert_eq!(done.last_error.as_deref(), Some("429"));
    store.close().await;
}

async fn crashed_claim_runs_again_after_its_lease(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    queue.enqueue(&outbox("orphan", "A"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("next", "A"), now_ms()).await.unwrap();
    // A worker claims with a short lease and dies before settling.
    let lease = Duration::from_millis(500);
    let claimed_at = Instant::now();
    let crashed = store.claim_jobs(QueueName::Outbox, now_ms(), lease.as_millis() as i64, 1).await.unwrap();
    assert_eq!(keys(&crashed), ["orphan"]);

    let runs = Arc::new(Mutex::new(Vec::<(String, u32, Duration)>::new()));
    let seen = runs.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        seen.lock().unwrap().push((job.idempotency_key.clone(), job.attempt, claimed_at.elapsed()));
        Box::pin(async { Outcome::Done })
    });
    let stop = CancellationToken::new();
    let worker = start(&queue, handler, fast_options(), &stop);
    let both = ["orphan".to_owned(), "next".to_owned()];
    eventually(Duration::from_secs(20), "both done", || all_settled(&store, &both)).await;
    stop.cancel();
    worker.await.unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].0.as_str(), runs[0].1), ("orphan", 2), "the orphan runs again, first");
    // (Less one millisecond: the store's clock counts whole milliseconds.)
    let earliest = lease - Duration::from_millis(1);
    assert!(runs[0].2 >= earliest, "not before its lease ran out ({:?})", runs[0].2);
    assert_eq!(runs[1].0, "next");
    // The crashed worker's lease settles nothing.
    assert!(!store.complete_job(crashed[0].lease(), now_ms()).await.unwrap());
    store.close().await;
}

async fn renewed_lease_holds_the_job_and_fences_the_old_one(db: &TestDb) {
    let store = db.open().await;
    store.enqueue_job(&outbox("a1", "A"), NOW).await.unwrap();
    let claimed = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    let first = claimed[0].lease();
    // Half-way, the running worker renews: the job stays its own past the first lease.
    let renewed = store.renew_lease(first, NOW + LEASE / 2 + LEASE).await.unwrap().unwrap();
    assert_eq!(renewed.until_ms, NOW + LEASE / 2 + LEASE);
    assert!(store.claim_jobs(QueueName::Outbox, NOW + LEASE + 1, LEASE, 10).await.unwrap().is_empty());
    // The old lease no longer settles or renews anything; a renewal never shortens a lease.
    assert!(!store.complete_job(first, NOW + 2).await.unwrap());
    assert!(store.renew_lease(first, NOW + 3 * LEASE).await.unwrap().is_none());
    let again = store.renew_lease(renewed, NOW).await.unwrap().unwrap();
    assert_eq!(again.until_ms, renewed.until_ms + 1);
    // Once it runs out unrenewed, another worker takes the job over and the renewal is refused.
    let taken = store.claim_jobs(QueueName::Outbox, again.until_ms, LEASE, 10).await.unwrap();
    assert_eq!(keys(&taken), ["a1"]);
    assert!(store.renew_lease(again, again.until_ms + LEASE).await.unwrap().is_none());
    assert!(store.complete_job(taken[0].lease(), again.until_ms + 1).await.unwrap());
    assert!(store.renew_lease(taken[0].lease(), again.until_ms + LEASE).await.unwrap().is_none(), "done");
    store.close().await;
}

/// A short lease (what makes a killed process's jobs run again soon) does not make a slow send
/// run twice: the worker renews it while the handler runs, even with a second replica polling.
async fn a_handler_longer_than_the_lease_runs_once(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    queue.enqueue(&outbox("slow", "A"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("next", "A"), now_ms()).await.unwrap();
    let runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = runs.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        seen.lock().unwrap().push(job.idempotency_key.clone());
        let slow = job.idempotency_key == "slow";
        Box::pin(async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
            }
            Outcome::Done
        })
    });
    let options = WorkerOptions { lease: Duration::from_millis(300), ..fast_options() };
    let stop = CancellationToken::new();
    let replicas = [
        start(&queue, handler.clone(), options.clone(), &stop),
        start(&queue, handler.clone(), options, &stop),
    ];
    let both = ["slow".to_owned(), "next".to_owned()];
    eventually(Duration::from_secs(20), "both done", || all_settled(&store, &both)).await;
    stop.cancel();
    for replica in replicas {
        replica.await.unwrap();
    }
    assert_eq!(*runs.lock().unwrap(), ["slow", "next"], "each ran once, in order");
    let slow = record(&store, "slow").await;
    assert_eq!((slow.state, slow.attempts), (JobState::Done, 1));
    store.close().await;
}

async fn job_past_its_ttl_fails_and_is_reported_once(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let runs = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let counted = runs.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        *counted.lock().unwrap().entry(job.idempotency_key).or_default() += 1;
        Box::pin(async {
            Outcome::Retry { after: Some(Duration::from_millis(50)), reason: "bot blocked".to_owned() }
        })
    });
    let now = now_ms();
    // One job expired before it could start (the node was down), one expires while retrying.
    let mut late = outbox("late", "A");
    late.expires_at_ms = Some(now - 1);
    let mut retrying = outbox("retrying", "B");
    retrying.expires_at_ms = Some(now + 400);
    queue.enqueue(&late, now).await.unwrap();
    queue.enqueue(&retrying, now).await.unwrap();
    let stop = CancellationToken::new();
    let worker = start(&queue, handler.clone(), fast_options(), &stop);
    let both = ["late".to_owned(), "retrying".to_owned()];
    eventually(Duration::from_secs(20), "both settled", || all_settled(&store, &both)).await;
    stop.cancel();
    worker.await.unwrap();

    let late = record(&store, "late").await;
    assert_eq!(late.state, JobState::Failed);
    assert!(late.last_error.unwrap().contains("expired before it could be delivered"));
    // Whether the TTL is noticed when a retry is planned or at the next claim, the reason
    // names it and the last error.
    let retrying = record(&store, "retrying").await;
    assert_eq!(retrying.state, JobState::Failed);
    let reason = retrying.last_error.unwrap();
    assert!(reason.contains("expired") && reason.contains("bot blocked"), "{reason}");
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.get("late"), None, "an expired job is not run");
    assert!(runs["retrying"] >= 2, "it was retried until the TTL");
    let mut reported: Vec<_> = handler.reported().into_iter().map(|(key, _)| key).collect();
    reported.sort();
    assert_eq!(reported, ["late", "retrying"], "each failure reported once");
    store.close().await;
}

async fn handler_failure_is_reported_and_the_conversation_moves_on(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            match job.idempotency_key.as_str() {
                "bad" => Outcome::Failed {
                    reason: "the recipient has no DM3 profile".to_owned(),
                    cause: FailureCause::Dm3,
                },
                "panics" => panic!("a bug in a handler"),
                _ => Outcome::Done,
            }
        })
    });
    queue.enqueue(&outbox("bad", "A"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("good", "A"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("panics", "B"), now_ms()).await.unwrap();
    let stop = CancellationToken::new();
    let worker = start(&queue, handler.clone(), fast_options(), &stop);
    let both = ["bad".to_owned(), "good".to_owned()];
    eventually(Duration::from_secs(20), "A settled", || all_settled(&store, &both)).await;
    // A panicking handler is retried, not lost and not fatal to the worker.
    eventually(Duration::from_secs(20), "the panicking job retried", || {
        let store = store.clone();
        async move { record(&store, "panics").await.attempts >= 2 }
    })
    .await;
    stop.cancel();
    worker.await.unwrap();
    let bad = record(&store, "bad").await;
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(bad.last_error.as_deref(), Some("the recipient has no DM3 profile"));
    assert_eq!(record(&store, "good").await.state, JobState::Done);
    assert_eq!(handler.reported(), [("bad".to_owned(), "the recipient has no DM3 profile".to_owned())]);
    let panicked = record(&store, "panics").await;
    assert_eq!(panicked.state, JobState::Pending);
    assert_eq!(panicked.last_error.as_deref(), Some("the handler panicked"));
    store.close().await;
}

async fn stop_lets_the_jobs_in_flight_finish(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let handler = TestHandler::new(move |_job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        let signal = signal.clone();
        Box::pin(async move {
            signal.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
            Outcome::Done
        })
    });
    queue.enqueue(&outbox("in-flight", "A"), now_ms()).await.unwrap();
    queue.enqueue(&outbox("queued", "A"), now_ms()).await.unwrap();
    let stop = CancellationToken::new();
    let worker = start(&queue, handler, fast_options(), &stop);
    started.notified().await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker).await.unwrap().unwrap();
    assert_eq!(
        record(&store, "in-flight").await.state,
        JobState::Done,
        "finished before the worker returned"
    );
    let queued = record(&store, "queued").await;
    assert_eq!((queued.state, queued.attempts), (JobState::Pending, 0), "nothing new was started");
    store.close().await;
}

async fn two_replicas_never_run_a_job_twice(db: &TestDb) {
    // Two stores on one database: two connection pools, as two replicas have.
    let (first, second) = (db.open().await, db.open().await);
    let queues = [Queue::new(first.clone()), Queue::new(second.clone())];
    let (conversations, per_conversation) = (20, 10);
    let mut all_keys = Vec::new();
    for seq in 0..per_conversation {
        for conversation in 0..conversations {
            let job = sequenced(conversation, seq);
            all_keys.push(job.idempotency_key.clone());
            queues[seq % 2].enqueue(&job, now_ms()).await.unwrap();
        }
    }
    let observed = Arc::new(Observed::default());
    let seen = observed.clone();
    let handler = TestHandler::new(move |job: ClaimedJob| -> BoxFuture<'static, Outcome> {
        let seen = seen.clone();
        Box::pin(async move {
            let (conversation, seq) = seen.enter(&job);
            tokio::time::sleep(Duration::from_millis(2)).await;
            seen.leave(conversation, seq, true);
            Outcome::Done
        })
    });
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for queue in &queues {
        for _ in 0..2 {
            let options = WorkerOptions { poll_interval: Duration::from_millis(5), ..fast_options() };
            workers.push(start(queue, handler.clone(), options, &stop));
        }
    }
    eventually(Duration::from_secs(60), "every job done", || all_settled(&first, &all_keys)).await;
    stop.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    let runs = observed.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), all_keys.len());
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert_eq!(observed.overlaps.load(Ordering::SeqCst), 0);
    let completed = observed.completed.lock().unwrap().clone();
    for conversation in 0..conversations {
        assert_eq!(completed[&conversation], (0..per_conversation).collect::<Vec<_>>());
    }
    first.close().await;
    second.close().await;
}

async fn inbound_batches_become_outbox_jobs_once(db: &TestDb) {
    let store = db.open().await;
    let queue = Queue::new(store.clone());
    let sink = InboundQueue::new(queue.clone()).with_ttl(Duration::from_secs(3_600));
    let room = ConversationId::new("!room:hs").unwrap();
    let bob = NetworkUserId::new("@bob:hs").unwrap();
    let event = |id: &str, text: &str| {
        Inbound::Event(InboundEvent {
            conversation: room.clone(),
            sender: bob.clone(),
            network_event_id: NetworkMessageId::new(id).unwrap(),
            timestamp_ms: 1,
            kind: EventKind::Message(Message::new(Content::Text(Text::plain(text)))),
            original: None,
        })
    };
    let request = Inbound::PortalRequest(PortalRequest {
        conversation: ConversationId::new("!dm:hs").unwrap(),
        requester: bob.clone(),
        remote: RemoteIdentity::new("alice.eth").unwrap(),
        timestamp_ms: 1,
        network_event_id: None,
    });
    let sticker = Inbound::Unbridgeable(Unbridgeable {
        conversation: room.clone(),
        sender: bob.clone(),
        network_event_id: NetworkMessageId::new("$e3").unwrap(),
        reason: "stickers are not bridged".to_owned(),
    });
    let batch = InboundBatch {
        network: network("matrix"),
        key: IdempotencyKey::new("scope.txn1").unwrap(),
        items: vec![event("$e1", "hello"), request.clone(), event("$e2", "again"), sticker.clone()],
    };
    let now = now_ms();
    assert_eq!(sink.accept_at(batch.clone(), now).await.unwrap(), Accepted::New);
    // Matrix retries the transaction: nothing new.
    assert_eq!(sink.accept(batch.clone()).await.unwrap(), Accepted::Duplicate);

    let hello = record(&store, "matrix:$e1").await;
    assert_eq!(hello.conversation, "matrix:!room:hs");
    assert_eq!(hello.expires_at_ms, Some(now + 3_600_000));
    let item_of = |payload: &str| match serde_json::from_str::<JobPayload>(payload).unwrap() {
        JobPayload::Inbound { network: from, item } => {
            assert_eq!(from, network("matrix"));
            *item
        }
        other => panic!("not an inbound item: {other:?}"),
    };
    assert_eq!(item_of(&hello.payload), batch.items[0]);
    let portal = record(&store, "matrix:portal:!dm:hs:@bob:hs").await;
    assert_eq!(portal.conversation, "matrix:!dm:hs");
    assert_eq!(item_of(&portal.payload), request);
    let unbridgeable = record(&store, "matrix:$e3:unbridgeable").await;
    assert_eq!(item_of(&unbridgeable.payload), sticker);

    // The same event in a later transaction is not queued twice; the new one is.
    let later = InboundBatch {
        network: network("matrix"),
        key: IdempotencyKey::new("scope.txn2").unwrap(),
        items: vec![event("$e2", "again"), event("$e4", "new")],
    };
    assert_eq!(sink.accept(later).await.unwrap(), Accepted::New);
    let pending: u64 = store
        .count_jobs()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.queue == QueueName::Outbox && c.state == JobState::Pending)
        .map(|c| c.count)
        .sum();
    assert_eq!(pending, 5);
    // The room's events come out in the network's order.
    let mut order = Vec::new();
    loop {
        let heads = store.claim_jobs(QueueName::Outbox, now_ms(), LEASE, 10).await.unwrap();
        let Some(head) = heads.iter().find(|j| j.conversation == "matrix:!room:hs") else { break };
        order.push(head.idempotency_key.clone());
        for job in &heads {
            store.complete_job(job.lease(), now_ms()).await.unwrap();
        }
    }
    assert_eq!(order, ["matrix:$e1", "matrix:$e2", "matrix:$e3:unbridgeable", "matrix:$e4"]);

    // Synapse on SQLite numbers its transactions from 1 again after a restart: a known key
    // with other items is a new batch, not a replay of the old one.
    let renumbered = InboundBatch {
        network: network("matrix"),
        key: IdempotencyKey::new("scope.txn1").unwrap(),
        items: vec![event("$e5", "after a homeserver restart")],
    };
    assert_eq!(sink.accept(renumbered.clone()).await.unwrap(), Accepted::New);
    assert_eq!(sink.accept(renumbered).await.unwrap(), Accepted::Duplicate);
    assert_eq!(record(&store, "matrix:$e5").await.state, JobState::Pending);
    store.close().await;
}
