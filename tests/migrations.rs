//! Migrations that rewrite stored data, on SQLite and on PostgreSQL: a database as an earlier
//! version left it, with rows in the old form, is opened by this version, and the rows are
//! read and matched as this version reads and matches them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::borrow::Cow;
use std::str::FromStr;

use dm3::ens::EnsName;
use dm3::message::MessageHash;
use dm3_bridge::config::Backend;
use dm3_bridge::engine::job::{InboxPayload, JobPayload, Report};
use dm3_bridge::store::{Acknowledgement, ClaimedJob, IncomingLimits, Inserted, NewEnvelope, QueueName};
use dm3_bridge_connector::{
    Content, ConversationId, EventKind, Inbound, InboundEvent, Message, NetworkId, NetworkMessageId,
    NetworkUserId, Text,
};
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{AssertSqlSafe, SqlSafeStr as _};
use support::TestDb;

on_both_backends!(
    jobs_queued_before_payloads_named_their_kind_are_claimed_as_that_kind,
    envelopes_stored_under_an_uppercase_hash_are_acknowledged_and_deduplicated,
);

const NOW: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

/// A row of `bridge_jobs` as version 6 wrote it: queue, key, conversation, payload, state.
type OldJob = (&'static str, &'static str, &'static str, String, &'static str);

/// A row of `envelopes` as version 7 wrote it: receiver, sender, message hash as the sender wrote it.
type OldEnvelope = (&'static str, &'static str, String);

async fn jobs_queued_before_payloads_named_their_kind_are_claimed_as_that_kind(db: &TestDb) {
    let envelope = InboxPayload {
        receiver: "tg-1.tg.bridge.eth".into(),
        sender: "alice.eth".into(),
        message_hash: format!("0x{}", "ab".repeat(32)),
        envelope: r#"{"message":"…","metadata":{"version":"v1"}}"#.into(),
    };
    // Text a JSON rewrite could change: escapes, a NUL, non-ASCII, a number near 2^53.
    let event = Inbound::Event(InboundEvent {
        conversation: ConversationId::new("!room:hs").unwrap(),
        sender: NetworkUserId::new("@bob:hs").unwrap(),
        network_event_id: NetworkMessageId::new("$e1").unwrap(),
        timestamp_ms: 9_007_199_254_740_993,
        kind: EventKind::Message(Message::new(Content::Text(Text::plain("\"hé\" \\ \u{0} ✓")))),
        original: None,
    });
    let report = Report::ToDm3 {
        from: "tg-1.tg.bridge.eth".into(),
        to: "alice.eth".into(),
        failed_hash: format!("0x{}", "cd".repeat(32)),
        reason: "blocked".into(),
        at_ms: 42,
    };
    let rows: Vec<OldJob> = vec![
        // The inbox: the envelope's fields, untagged.
        (
            "inbox",
            "k-envelope",
            "tg-1.tg.bridge.eth:alice.eth",
            serde_json::to_string(&envelope).unwrap(),
            "pending",
        ),
        // The outbox: what the connector received, its network only in the conversation...
        ("outbox", "matrix:$e1", "matrix:!room:hs", serde_json::to_string(&event).unwrap(), "pending"),
        // ...and a report, wrapped as `ReportJob::Report` wrote it.
        (
            "outbox",
            "report:k",
            "report:tg-1.tg.bridge.eth:alice.eth",
            json!({"report": report}).to_string(),
            "pending",
        ),
        // A done job keeps no payload.
        ("outbox", "matrix:$e0", "matrix:!other:hs", String::new(), "done"),
    ];
    at_version(db, 6, &rows, &[]).await;

    let store = db.open().await;
    let inbox = store.claim_jobs(QueueName::Inbox, NOW, LEASE, 10).await.unwrap();
    assert_eq!(payloads(&inbox), [JobPayload::Envelope(envelope)]);
    let mut outbox = store.claim_jobs(QueueName::Outbox, NOW, LEASE, 10).await.unwrap();
    outbox.sort_by_key(|job| job.id);
    assert_eq!(
        payloads(&outbox),
        [
            JobPayload::Inbound { network: NetworkId::new("matrix").unwrap(), item: Box::new(event) },
            JobPayload::Report { report },
        ]
    );
    let done = store.get_job(QueueName::Outbox, "matrix:$e0").await.unwrap().unwrap();
    assert_eq!(done.payload, "");
    store.close().await;
}

async fn envelopes_stored_under_an_uppercase_hash_are_acknowledged_and_deduplicated(db: &TestDb) {
    let hash_of = |digits: &str| format!("0x{}", digits.repeat(32));
    let rows: Vec<OldEnvelope> = vec![
        ("bob.eth", "alice.eth", hash_of("AB")),
        // The receiver holds this envelope under both spellings: the lowercase one stays the key.
        ("bob.eth", "dave.eth", hash_of("CD")),
        ("bob.eth", "dave.eth", hash_of("cd")),
    ];
    at_version(db, 7, &[], &rows).await;

    let store = db.open().await;
    let bob = EnsName::from_normalized("bob.eth").unwrap();
    let alice = EnsName::from_normalized("alice.eth").unwrap();
    let alices: MessageHash = hash_of("AB").parse().unwrap();
    // A replay of alice's envelope is the envelope already stored.
    let replay = NewEnvelope {
        receiver: bob.clone(),
        sender: alice.clone(),
        message_hash: alices,
        envelope: "{}".to_owned(),
        received_at_ms: NOW,
        expires_at_ms: None,
    };
    assert_eq!(store.insert_envelope(replay).await.unwrap(), Inserted::Duplicate);
    assert_eq!(store.list_incoming(&bob, NOW, IncomingLimits::REFERENCE).await.unwrap().len(), 3);
    // Bob acknowledges it with the hash as his client read it from the envelope.
    let ack = Acknowledgement::from_client(alice, &hash_of("AB")).unwrap().unwrap();
    assert_eq!(store.delete_acknowledged(&bob, &[ack]).await.unwrap(), 1);
    let left = store.list_incoming(&bob, NOW, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e.sender.as_str() == "dave.eth"));
    store.close().await;
}

fn payloads(jobs: &[ClaimedJob]) -> Vec<JobPayload> {
    jobs.iter().map(|job| JobPayload::of(job).unwrap_or_else(|e| panic!("{}: {e}", job.payload))).collect()
}

/// Applies migrations 1 to `last` of the backend's folder, then inserts `jobs` and
/// `envelopes` as that version wrote them.
async fn at_version(db: &TestDb, last: i64, jobs: &[OldJob], envelopes: &[OldEnvelope]) {
    const JOB: &str = "INSERT INTO bridge_jobs (queue, idempotency_key, conversation, payload, state, \
         attempts, next_attempt_at, created_at, updated_at, finished_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $6, CASE WHEN $5 = 'done' THEN $6 END)";
    const ENVELOPE: &str = "INSERT INTO envelopes (receiver, sender, message_hash, envelope, received_at) \
         VALUES ($1, $2, $3, '{}', $4)";
    let backend = db.url.backend().unwrap();
    let migrator = migrations_up_to(backend, last);
    macro_rules! fill {
        ($pool:expr) => {{
            let pool = $pool;
            migrator.run(&pool).await.unwrap();
            for (queue, key, conversation, payload, state) in jobs {
                sqlx::query(JOB)
                    .bind(*queue)
                    .bind(*key)
                    .bind(*conversation)
                    .bind(payload.as_str())
                    .bind(*state)
                    .bind(NOW)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for (receiver, sender, hash) in envelopes {
                sqlx::query(ENVELOPE)
                    .bind(*receiver)
                    .bind(*sender)
                    .bind(hash.as_str())
                    .bind(NOW)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }};
    }
    match backend {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(db.url.expose()).unwrap().create_if_missing(true);
            fill!(SqlitePool::connect_with(options).await.unwrap())
        }
        Backend::Postgres => fill!(PgPool::connect(db.url.expose()).await.unwrap()),
    }
}

/// The migrations of `migrations/<backend>/` numbered up to `last`, as the node embeds them.
fn migrations_up_to(backend: Backend, last: i64) -> Migrator {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(folder);
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let (version, description) = stem.split_once('_').unwrap();
        let version: i64 = version.parse().unwrap();
        if version <= last {
            let sql = std::fs::read_to_string(&path).unwrap();
            migrations.push(Migration::new(
                version,
                Cow::Owned(description.to_owned()),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            ));
        }
    }
    assert_eq!(
        migrations.len(),
        usize::try_from(last).unwrap(),
        "migrations 1 to {last} in {}",
        dir.display()
    );
    Migrator::with_migrations(migrations)
}
