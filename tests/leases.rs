//! Leases in the store (`node_leases`, migration 0014): work with one owner among the node
//! processes sharing a database (docs/scaling.md). Two owners stand for two replicas; the
//! times are the database's own, so no clock of the caller's enters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use support::TestDb;

on_both_backends!(one_owner_at_a_time_until_the_lease_runs_out, a_released_lease_is_taken_at_once,);

const WORK: &str = "telegram-polling";

async fn one_owner_at_a_time_until_the_lease_runs_out(db: &TestDb) {
    let store = db.open().await;
    let held_for = Duration::from_millis(400);
    assert!(store.take_lease(WORK, "replica-a", held_for).await.unwrap(), "a free lease is taken");
    assert!(!store.take_lease(WORK, "replica-b", held_for).await.unwrap(), "a live lease is not taken");
    assert!(store.take_lease(WORK, "replica-a", held_for).await.unwrap(), "its owner renews it");
    assert_eq!(store.lease_holder(WORK).await.unwrap().as_deref(), Some("replica-a"));
    assert!(store.take_lease("expiry", "replica-b", held_for).await.unwrap(), "each work has its own lease");

    // replica-a stops renewing (killed): once the lease ran out, replica-b takes it, and
    // replica-a, were it only paused, finds it gone at its next renewal.
    tokio::time::sleep(held_for + Duration::from_millis(200)).await;
    assert_eq!(store.lease_holder(WORK).await.unwrap(), None, "a lease that ran out has no holder");
    assert!(store.take_lease(WORK, "replica-b", held_for).await.unwrap(), "a lease that ran out is taken");
    assert!(!store.take_lease(WORK, "replica-a", held_for).await.unwrap(), "the old owner lost it");
    assert_eq!(store.lease_holder(WORK).await.unwrap().as_deref(), Some("replica-b"));
    store.close().await;
}

async fn a_released_lease_is_taken_at_once(db: &TestDb) {
    let store = db.open().await;
    let held_for = Duration::from_secs(60);
    assert!(store.take_lease(WORK, "replica-a", held_for).await.unwrap());
    store.release_lease(WORK, "replica-b").await.unwrap();
    assert!(!store.take_lease(WORK, "replica-b", held_for).await.unwrap(), "only the owner releases it");
    store.release_lease(WORK, "replica-a").await.unwrap();
    assert_eq!(store.lease_holder(WORK).await.unwrap(), None);
    assert!(store.take_lease(WORK, "replica-b", held_for).await.unwrap(), "released: taken at once");
    store.close().await;
}
