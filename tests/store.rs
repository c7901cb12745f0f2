//! The storage suite: every behaviour of the repository layer, run on SQLite and on
//! PostgreSQL. Each scenario is one `async fn(Store)`; `on_both_backends!` turns it into a
//! `sqlite::name` and a `postgres::name` test, each on a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::HashSet;

use dm3::ens::EnsName;
use dm3::message::MessageHash;
use dm3_bridge::store::{
    Acknowledgement, ChallengeId, IncomingLimits, Inserted, NewEnvelope, Store, StoreError, TokenHash,
};
use support::TestDb;

on_both_backends!(
    account_upsert_replaces_profile_but_keeps_creation_time,
    unknown_account_is_none,
    account_existence_is_remembered_and_registrations_elsewhere_count_at_once,
    same_message_for_same_receiver_is_stored_once,
    incoming_is_newest_first_and_only_the_receivers,
    incoming_respects_conversation_and_message_caps,
    acknowledged_envelopes_are_gone_and_others_stay,
    a_long_acknowledgement_list_deletes_exactly_its_envelopes,
    expired_envelopes_are_hidden_then_deleted,
    challenge_is_consumed_exactly_once,
    concurrent_challenge_consumers_only_one_wins,
    a_flood_of_challenges_keeps_only_the_newest_per_name,
    concurrent_inserts_are_batched_and_all_stored,
    acknowledged_writes_survive_reopening,
    close_commits_queued_inserts_and_refuses_new_ones,
    migrations_apply_once,
    sessions_are_found_by_token_hash_and_expire,
    two_stores_on_one_database_both_write,
);

const NOW: i64 = 1_700_000_000_000;

fn name(s: &str) -> EnsName {
    EnsName::from_normalized(s).unwrap()
}

fn hash(n: u64) -> MessageHash {
    format!("0x{n:064x}").parse().unwrap()
}

fn envelope(receiver: &str, sender: &str, n: u64, at: i64) -> NewEnvelope {
    NewEnvelope {
        receiver: name(receiver),
        sender: name(sender),
        message_hash: hash(n),
        envelope: format!(r#"{{"n":{n},"from":"{sender}"}}"#),
        received_at_ms: at,
        expires_at_ms: None,
    }
}

async fn account_upsert_replaces_profile_but_keeps_creation_time(db: &TestDb) {
    let store = db.open().await;
    let alice = name("alice.eth");
    store.upsert_account(&alice, "0xaaa", r#"{"v":1}"#, NOW).await.unwrap();
    store.upsert_account(&alice, "0xbbb", r#"{"v":2}"#, NOW + 5).await.unwrap();
    let account = store.get_account(&alice).await.unwrap().unwrap();
    assert_eq!(account.address, "0xbbb");
    assert_eq!(account.profile, r#"{"v":2}"#);
    assert_eq!(account.created_at_ms, NOW);
    assert_eq!(account.updated_at_ms, NOW + 5);
    store.close().await;
}

async fn unknown_account_is_none(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.get_account(&name("nobody.eth")).await.unwrap(), None);
    store.close().await;
}

/// The submit path asks `account_exists` from memory once a name was seen; a name not seen
/// yet, registered through another store on the same database (another replica), must count
/// at once, so a "no" is never remembered.
async fn account_existence_is_remembered_and_registrations_elsewhere_count_at_once(db: &TestDb) {
    let store = db.open().await;
    let replica = db.open().await;
    let (alice, bob) = (name("alice.eth"), name("bob.eth"));
    assert!(!store.account_exists(&alice).await.unwrap());
    store.upsert_account(&alice, "0xaaa", r#"{"v":1}"#, NOW).await.unwrap();
    assert!(store.account_exists(&alice).await.unwrap());
    assert!(!store.account_exists(&bob).await.unwrap());
    replica.upsert_account(&bob, "0xbbb", r#"{"v":1}"#, NOW).await.unwrap();
    assert!(store.account_exists(&bob).await.unwrap(), "a registration through a replica counts at once");
    assert!(replica.account_exists(&alice).await.unwrap());
    replica.close().await;
    store.close().await;
}

async fn same_message_for_same_receiver_is_stored_once(db: &TestDb) {
    let store = db.open().await;
    let first = envelope("bob.eth", "alice.eth", 1, NOW);
    assert_eq!(store.insert_envelope(first.clone()).await.unwrap(), Inserted::New);
    // A second copy (another DS's ciphertext, same message) is a duplicate.
    let mut again = first.clone();
    again.envelope = r#"{"other":"ciphertext"}"#.to_owned();
    assert_eq!(store.insert_envelope(again).await.unwrap(), Inserted::Duplicate);
    // The same hash for another receiver is another envelope.
    let other = envelope("carol.eth", "alice.eth", 1, NOW);
    assert_eq!(store.insert_envelope(other).await.unwrap(), Inserted::New);
    assert_eq!(store.count_envelopes().await.unwrap(), 2);
    let listed = store.list_incoming(&name("bob.eth"), NOW, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].envelope, first.envelope, "the first copy is kept");
    store.close().await;
}

async fn incoming_is_newest_first_and_only_the_receivers(db: &TestDb) {
    let store = db.open().await;
    store.insert_envelope(envelope("bob.eth", "alice.eth", 1, NOW)).await.unwrap();
    store.insert_envelope(envelope("bob.eth", "carol.eth", 2, NOW + 2)).await.unwrap();
    store.insert_envelope(envelope("bob.eth", "alice.eth", 3, NOW + 1)).await.unwrap();
    store.insert_envelope(envelope("dave.eth", "alice.eth", 4, NOW + 3)).await.unwrap();
    let listed = store.list_incoming(&name("bob.eth"), NOW + 10, IncomingLimits::REFERENCE).await.unwrap();
    let hashes: Vec<_> = listed.iter().map(|e| e.message_hash).collect();
    assert_eq!(hashes, vec![hash(2), hash(3), hash(1)]);
    assert_eq!(listed[0].sender, name("carol.eth"));
    assert_eq!(listed[0].received_at_ms, NOW + 2);
    assert!(
        store.list_incoming(&name("nobody.eth"), NOW, IncomingLimits::REFERENCE).await.unwrap().is_empty()
    );
    store.close().await;
}

async fn incoming_respects_conversation_and_message_caps(db: &TestDb) {
    let store = db.open().await;
    // Three conversations; the one with the oldest activity is cut first.
    let mut n = 0;
    for (sender, base) in [("old.eth", NOW), ("mid.eth", NOW + 100), ("new.eth", NOW + 200)] {
        for i in 0..5 {
            n += 1;
            store.insert_envelope(envelope("bob.eth", sender, n, base + i)).await.unwrap();
        }
    }
    let limits = IncomingLimits { conversations: 2, per_conversation: 3 };
    let listed = store.list_incoming(&name("bob.eth"), NOW + 1_000, limits).await.unwrap();
    assert_eq!(listed.len(), 6);
    let senders: HashSet<_> = listed.iter().map(|e| e.sender.as_str().to_owned()).collect();
    assert_eq!(senders, HashSet::from(["new.eth".to_owned(), "mid.eth".to_owned()]));
    // Each conversation contributes its newest three, and the whole list is newest first.
    let times: Vec<_> = listed.iter().map(|e| e.received_at_ms).collect();
    assert_eq!(times, vec![NOW + 204, NOW + 203, NOW + 202, NOW + 104, NOW + 103, NOW + 102]);
    store.close().await;
}

async fn acknowledged_envelopes_are_gone_and_others_stay(db: &TestDb) {
    let store = db.open().await;
    for n in 1..=3 {
        store.insert_envelope(envelope("bob.eth", "alice.eth", n, NOW + n as i64)).await.unwrap();
    }
    let bob = name("bob.eth");
    let acks = [
        Acknowledgement { sender: name("alice.eth"), message_hash: hash(1) },
        // The wrong sender for this hash: nothing happens.
        Acknowledgement { sender: name("mallory.eth"), message_hash: hash(2) },
        // Unknown hash: not an error.
        Acknowledgement { sender: name("alice.eth"), message_hash: hash(99) },
    ];
    assert_eq!(store.delete_acknowledged(&bob, &acks).await.unwrap(), 1);
    // Acknowledging again is harmless.
    assert_eq!(store.delete_acknowledged(&bob, &acks).await.unwrap(), 0);
    let left: Vec<_> = store
        .list_incoming(&bob, NOW, IncomingLimits::REFERENCE)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message_hash)
        .collect();
    assert_eq!(left, vec![hash(3), hash(2)]);
    // Once acknowledged, the same message may arrive again (a new delivery).
    assert_eq!(
        store.insert_envelope(envelope("bob.eth", "alice.eth", 1, NOW + 9)).await.unwrap(),
        Inserted::New
    );
    store.close().await;
}

/// More acknowledgements than one statement takes, wrong senders and unknown hashes among
/// them: exactly the envelopes acknowledged with their own sender go.
async fn a_long_acknowledgement_list_deletes_exactly_its_envelopes(db: &TestDb) {
    let store = db.open().await;
    for n in 0..300u64 {
        let sender = if n % 2 == 0 { "alice.eth" } else { "carol.eth" };
        store.insert_envelope(envelope("bob.eth", sender, n, NOW + n as i64)).await.unwrap();
    }
    store.insert_envelope(envelope("dave.eth", "alice.eth", 4, NOW)).await.unwrap();
    let bob = name("bob.eth");
    let acks: Vec<Acknowledgement> = (0..400u64)
        .map(|n| Acknowledgement {
            // Even hashes are alice's: those go (up to 298). Odd ones claim alice too, but are carol's.
            sender: name("alice.eth"),
            message_hash: hash(n),
        })
        .collect();
    assert_eq!(store.delete_acknowledged(&bob, &acks).await.unwrap(), 150);
    let left = store.list_incoming(&bob, NOW, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(left.len(), 150);
    assert!(left.iter().all(|e| e.sender.as_str() == "carol.eth"));
    // Another receiver's envelope with an acknowledged hash stays.
    assert_eq!(
        store.list_incoming(&name("dave.eth"), NOW, IncomingLimits::REFERENCE).await.unwrap().len(),
        1
    );
    store.close().await;
}

async fn expired_envelopes_are_hidden_then_deleted(db: &TestDb) {
    let store = db.open().await;
    let bob = name("bob.eth");
    let mut short = envelope("bob.eth", "alice.eth", 1, NOW);
    short.expires_at_ms = Some(NOW + 1_000);
    let forever = envelope("bob.eth", "alice.eth", 2, NOW);
    store.insert_envelope(short).await.unwrap();
    store.insert_envelope(forever).await.unwrap();

    let before = store.list_incoming(&bob, NOW + 999, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(before.len(), 2);
    let after = store.list_incoming(&bob, NOW + 1_000, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].message_hash, hash(2));

    assert_eq!(store.delete_expired(NOW + 999).await.unwrap().envelopes, 0);
    assert_eq!(store.delete_expired(NOW + 1_000).await.unwrap().envelopes, 1);
    assert_eq!(store.count_envelopes().await.unwrap(), 1);
    store.close().await;
}

async fn challenge_is_consumed_exactly_once(db: &TestDb) {
    let store = db.open().await;
    let alice = name("alice.eth");
    let challenge = store.create_challenge(&alice, NOW, 900_000).await.unwrap();
    assert_eq!(challenge.expires_at_ms, NOW + 900_000);
    assert_eq!(store.get_challenge(&challenge.id).await.unwrap().unwrap().name, alice);
    // Another name cannot use it.
    assert!(!store.consume_challenge(&challenge.id, &name("bob.eth"), NOW + 1).await.unwrap());
    assert!(store.consume_challenge(&challenge.id, &alice, NOW + 1).await.unwrap());
    assert!(!store.consume_challenge(&challenge.id, &alice, NOW + 2).await.unwrap());

    // An expired challenge cannot be used, and cleanup removes it.
    let late = store.create_challenge(&alice, NOW, 1_000).await.unwrap();
    assert!(!store.consume_challenge(&late.id, &alice, NOW + 1_000).await.unwrap());
    let unknown = ChallengeId::from_client(&"0".repeat(32)).unwrap();
    assert!(!store.consume_challenge(&unknown, &alice, NOW).await.unwrap());
    assert_eq!(store.delete_expired(NOW + 1_000_000).await.unwrap().challenges, 2);
    store.close().await;
}

/// `GET /auth` needs no credential, so a flood of challenges for one name must not grow the
/// table: each name keeps its newest `MAX_LIVE_CHALLENGES` unused ones, and the newest work.
async fn a_flood_of_challenges_keeps_only_the_newest_per_name(db: &TestDb) {
    use dm3_bridge::store::MAX_LIVE_CHALLENGES;
    let store = db.open().await;
    let (alice, bob) = (name("alice.eth"), name("bob.eth"));
    let bobs = store.create_challenge(&bob, NOW, 60_000).await.unwrap();
    let mut issued = Vec::new();
    for i in 0..100 {
        issued.push(store.create_challenge(&alice, NOW + i, 60_000).await.unwrap());
    }
    let live = MAX_LIVE_CHALLENGES as usize;
    let mut kept = 0;
    for challenge in &issued {
        if store.get_challenge(&challenge.id).await.unwrap().is_some() {
            kept += 1;
        }
    }
    assert_eq!(kept, live, "only the newest are kept");
    for old in &issued[..issued.len() - live] {
        assert!(!store.consume_challenge(&old.id, &alice, NOW + 200).await.unwrap());
    }
    for new in &issued[issued.len() - live..] {
        assert!(store.consume_challenge(&new.id, &alice, NOW + 200).await.unwrap());
    }
    // Another name's challenge is not touched by alice's flood.
    assert!(store.consume_challenge(&bobs.id, &bob, NOW + 200).await.unwrap());
    store.close().await;
}

async fn concurrent_challenge_consumers_only_one_wins(db: &TestDb) {
    let store = db.open().await;
    let alice = name("alice.eth");
    let challenge = store.create_challenge(&alice, NOW, 60_000).await.unwrap();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let id = challenge.id.clone();
            let alice = alice.clone();
            tokio::spawn(async move { store.consume_challenge(&id, &alice, NOW + 1).await })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        if attempt.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    store.close().await;
}

async fn concurrent_inserts_are_batched_and_all_stored(db: &TestDb) {
    let store = db.open().await;
    let count = 600u64;
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let store = store.clone();
            // A few duplicates in the mix: every tenth hash is submitted twice.
            let h = if n % 10 == 9 { n - 1 } else { n };
            tokio::spawn(async move {
                store.insert_envelope(envelope("bob.eth", "alice.eth", h, NOW + n as i64)).await
            })
        })
        .collect();
    let mut new = 0;
    let mut duplicate = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Inserted::New => new += 1,
            Inserted::Duplicate => duplicate += 1,
        }
    }
    assert_eq!((new, duplicate), (540, 60));
    assert_eq!(store.count_envelopes().await.unwrap(), 540);
    let stats = store.writer_stats();
    assert_eq!(stats.envelopes, count);
    assert!(
        stats.commits < count,
        "600 concurrent inserts should share transactions, got {} commits",
        stats.commits
    );
    store.close().await;
}

async fn acknowledged_writes_survive_reopening(db: &TestDb) {
    let store = db.open().await;
    store.upsert_account(&name("bob.eth"), "0xb", "{}", NOW).await.unwrap();
    store.insert_envelope(envelope("bob.eth", "alice.eth", 7, NOW)).await.unwrap();
    store.close().await;
    drop(store);

    let reopened = db.open().await;
    assert!(reopened.get_account(&name("bob.eth")).await.unwrap().is_some());
    let listed = reopened.list_incoming(&name("bob.eth"), NOW, IncomingLimits::REFERENCE).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].message_hash, hash(7));
    reopened.close().await;
}

async fn close_commits_queued_inserts_and_refuses_new_ones(db: &TestDb) {
    let store = db.open().await;
    let tasks: Vec<_> = (0..200u64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_envelope(envelope("bob.eth", "alice.eth", n, NOW)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await;
    let mut acknowledged = 0u64;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Inserted::New) => acknowledged += 1,
            Ok(Inserted::Duplicate) => panic!("no duplicates were submitted"),
            Err(StoreError::ShuttingDown) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert!(matches!(
        store.insert_envelope(envelope("bob.eth", "alice.eth", 999, NOW)).await,
        Err(StoreError::ShuttingDown)
    ));
    drop(store);
    // Every insert that was answered Ok is there, and nothing else.
    let reopened = db.open().await;
    assert_eq!(reopened.count_envelopes().await.unwrap(), acknowledged);
    reopened.close().await;
}

async fn migrations_apply_once(db: &TestDb) {
    let first = db.open().await;
    first.insert_envelope(envelope("bob.eth", "alice.eth", 1, NOW)).await.unwrap();
    first.close().await;
    // Opening again finds the migrations applied and leaves the data alone.
    let second: Store = db.open().await;
    assert_eq!(second.count_envelopes().await.unwrap(), 1);
    second.close().await;
}

async fn sessions_are_found_by_token_hash_and_expire(db: &TestDb) {
    let store = db.open().await;
    let alice = name("alice.eth");
    let token = TokenHash::from_bytes([7; 32]);
    store.create_session(&token, &alice, NOW, NOW + 3_600_000).await.unwrap();
    let session = store.get_session(&token).await.unwrap().unwrap();
    assert_eq!((session.name, session.expires_at_ms), (alice.clone(), NOW + 3_600_000));
    assert_eq!(store.get_session(&TokenHash::from_bytes([8; 32])).await.unwrap(), None);
    // The same token twice is a bug in the generator, never a silent overwrite.
    assert!(store.create_session(&token, &name("bob.eth"), NOW, NOW + 1).await.is_err());

    assert_eq!(store.delete_expired(NOW + 3_599_999).await.unwrap().sessions, 0);
    assert_eq!(store.delete_expired(NOW + 3_600_000).await.unwrap().sessions, 1);
    assert_eq!(store.get_session(&token).await.unwrap(), None);
    store.close().await;
}

/// The admin CLI opens the database a running node has open: both must be able to write,
/// whichever wrote last (on SQLite each has its own write connection).
async fn two_stores_on_one_database_both_write(db: &TestDb) {
    let node = db.open().await;
    let cli = db.open().await;
    for round in 0..3 {
        let who = name(&format!("n{round}.eth"));
        node.upsert_account(&who, "0xaaa", "{}", NOW).await.unwrap();
        let challenge = cli.create_challenge(&who, NOW, 60_000).await.unwrap();
        assert!(node.consume_challenge(&challenge.id, &who, NOW + 1).await.unwrap());
        cli.upsert_account(&who, "0xbbb", "{}", NOW + 2).await.unwrap();
        assert_eq!(node.get_account(&who).await.unwrap().unwrap().address, "0xbbb");
    }
    cli.close().await;
    node.close().await;
}
