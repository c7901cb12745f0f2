//! The rows behind members' device lists and the replay index of room keys (migration 0024),
//! and senders' pinned cross-signing identities (0025), on both backends:
//! - a device list fetched is current until a transaction marks it outdated, and the mark
//!   survives a restart and holds for another replica; an answer to a query that ran while the list was marked is not kept
//!   (no lost update); a user who left is forgotten; lists nobody used are pruned;
//! - the decrypted Megolm message indices stay bounded (by age and per room key), and a
//!   ciphertext at a pruned index is still refused as a replay;
//! - a user's cross-signing keys are kept with their list and outdated with it; their master
//!   key is pinned once, kept across a restart, never overwritten by another, and dropped only
//!   on demand (the admin's accept).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use dm3_bridge::store::{DEVICE_LIST_MAX_AGE_MS, DeviceListSave, DeviceRow, MegolmIndex, Store};
use support::TestDb;

on_both_backends!(
    a_device_list_is_current_until_marked_outdated_and_the_mark_survives_a_restart_and_holds_for_replicas,
    pruned_message_indices_stay_refused_and_the_index_stays_bounded,
    cross_signing_keys_go_with_the_list_and_a_pinned_master_key_stays_until_dropped,
);

const BOB: &str = "@bob:hs";
const NOW: i64 = 1_000_000_000;

fn phone(device: &str) -> DeviceRow {
    DeviceRow {
        device_id: device.to_owned(),
        curve25519: format!("curve of {device}"),
        ed25519: format!("ed of {device}"),
        keys_json: "{}".to_owned(),
    }
}

/// The devices of bob's list if it is current at `now`.
async fn current(store: &Store, now: i64) -> Option<Vec<String>> {
    let lists = store.current_device_lists(&[BOB.to_owned()], now).await.unwrap();
    lists.into_iter().next().map(|(_, devices, _)| devices.into_iter().map(|d| d.device_id).collect())
}

/// Starts a query for bob: the generation it must find unchanged.
async fn fetching(store: &Store) -> i64 {
    store.fetching_device_lists(&[BOB.to_owned()], NOW).await.unwrap()[0].1
}

async fn save(store: &Store, generation: i64, devices: &[&str]) -> u64 {
    let list = DeviceListSave {
        user_id: BOB.to_owned(),
        generation,
        devices: devices.iter().map(|d| phone(d)).collect(),
        identity: None,
    };
    store.save_device_lists(vec![list], NOW).await.unwrap()
}

async fn a_device_list_is_current_until_marked_outdated_and_the_mark_survives_a_restart_and_holds_for_replicas(
    db: &TestDb,
) {
    let store = db.open().await;
    assert_eq!(current(&store, NOW).await, None, "not tracked yet: asked for");
    let first = fetching(&store).await;
    assert_eq!(save(&store, first, &["PHONE"]).await, 1);
    assert_eq!(current(&store, NOW).await, Some(vec!["PHONE".to_owned()]));
    store.close().await;

    // The transaction that announces his laptop, then a restart.
    let store = db.open().await;
    assert_eq!(current(&store, NOW).await, Some(vec!["PHONE".to_owned()]), "kept across a restart");
    store.mark_device_lists(&[BOB.to_owned(), "@untracked:hs".to_owned()], &[], NOW).await.unwrap();
    store.close().await;
    let store = db.open().await;
    assert_eq!(current(&store, NOW).await, None, "the mark survives a restart: asked for again");

    // Two replicas on one database: a mark written through one outdates the list for the other.
    let generation = fetching(&store).await;
    assert_eq!(save(&store, generation, &["PHONE"]).await, 1);
    let replica = db.open().await;
    replica.mark_device_lists(&[BOB.to_owned()], &[], NOW).await.unwrap();
    replica.close().await;
    assert_eq!(current(&store, NOW).await, None, "the other replica's mark holds here");

    // A query that started before another mark: its answer is not kept.
    let racing = fetching(&store).await;
    store.mark_device_lists(&[BOB.to_owned()], &[], NOW).await.unwrap();
    assert_eq!(save(&store, racing, &["PHONE", "LAPTOP"]).await, 0, "an older answer over a newer mark");
    assert_eq!(current(&store, NOW).await, None);
    let fresh = fetching(&store).await;
    assert_eq!(save(&store, fresh, &["PHONE", "LAPTOP", "TABLET"]).await, 1);
    assert_eq!(current(&store, NOW).await.unwrap().len(), 3);
    assert_eq!(current(&store, NOW + DEVICE_LIST_MAX_AGE_MS + 1).await, None, "too old: asked for again");

    // Left: forgotten, and an answer that was on its way is not kept either.
    let on_its_way = fetching(&store).await;
    store.mark_device_lists(&[], &[BOB.to_owned()], NOW).await.unwrap();
    assert_eq!(current(&store, NOW).await, None);
    assert_eq!(save(&store, on_its_way, &["PHONE"]).await, 0);
    assert_eq!(db.execute("UPDATE matrix_devices SET keys_json = keys_json").await, 0, "no device kept");

    // Lists nobody used since are pruned.
    let generation = fetching(&store).await;
    save(&store, generation, &["PHONE"]).await;
    assert_eq!(store.prune_device_lists(NOW - 1).await.unwrap(), 0);
    assert_eq!(store.prune_device_lists(NOW + 1).await.unwrap(), 1);
    assert_eq!(db.execute("UPDATE matrix_devices SET keys_json = keys_json").await, 0);
    store.close().await;
}

async fn claim(store: &Store, index: u32, event_id: &str, now: i64) -> bool {
    let claim = MegolmIndex {
        user_id: "@_dm3_alice.eth:hs",
        room_id: "!dm:hs",
        session_id: "SESSION",
        message_index: index,
        event_id,
    };
    store.claim_megolm_index(&claim, now).await.unwrap()
}

async fn pruned_message_indices_stay_refused_and_the_index_stays_bounded(db: &TestDb) {
    let store = db.open().await;
    for index in 0..30 {
        assert!(claim(&store, index, &format!("$e{index}"), NOW).await);
    }
    assert!(claim(&store, 3, "$e3", NOW).await, "the same event again (a job retried) opens");
    assert!(!claim(&store, 3, "$replay", NOW).await, "another event at a kept index is a replay");
    let rows = || db.execute("UPDATE matrix_megolm_indices SET created_at = created_at");

    // Bounded per room key: the 10 highest indices keep their rows.
    assert_eq!(store.prune_megolm_indices(0, 10).await.unwrap(), 20);
    assert_eq!(rows().await, 10);
    assert!(!claim(&store, 5, "$replay", NOW).await, "a replay under the floor is still refused");
    assert!(claim(&store, 25, "$e25", NOW).await, "a kept index still knows its event");
    assert!(!claim(&store, 25, "$replay", NOW).await);

    // Bounded by age: everything before the cut goes, and stays refused.
    assert!(claim(&store, 40, "$later", NOW + 10).await);
    assert_eq!(store.prune_megolm_indices(NOW + 1, 10).await.unwrap(), 10);
    assert_eq!(rows().await, 1, "only the row after the cut");
    for index in [0, 17, 29] {
        assert!(!claim(&store, index, "$replay", NOW + 20).await, "index {index} under the floor");
    }
    assert!(!claim(&store, 40, "$replay", NOW + 20).await);
    assert!(claim(&store, 41, "$next", NOW + 20).await, "what follows opens as before");
    // The floor never comes down: a later pass with nothing old leaves it.
    assert_eq!(store.prune_megolm_indices(0, 1000).await.unwrap(), 0);
    assert!(!claim(&store, 29, "$replay", NOW + 20).await);
    store.close().await;
}

async fn cross_signing_keys_go_with_the_list_and_a_pinned_master_key_stays_until_dropped(db: &TestDb) {
    let store = db.open().await;
    let identity = || async {
        let lists = store.current_device_lists(&[BOB.to_owned()], NOW).await.unwrap();
        lists.into_iter().next().map(|(_, _, identity)| identity)
    };
    let generation = fetching(&store).await;
    let list = DeviceListSave {
        user_id: BOB.to_owned(),
        generation,
        devices: Vec::new(),
        identity: Some(r#"{"master_key":{"keys":{}}}"#.to_owned()),
    };
    assert_eq!(store.save_device_lists(vec![list], NOW).await.unwrap(), 1);
    // A list without devices still carries the keys.
    assert_eq!(identity().await, Some(Some(r#"{"master_key":{"keys":{}}}"#.to_owned())));
    store.mark_device_lists(&[BOB.to_owned()], &[], NOW).await.unwrap();
    assert_eq!(identity().await, None, "a device-list change outdates the keys too");

    assert_eq!(store.pin_cross_signing(BOB, "OLD", NOW).await.unwrap(), "OLD");
    assert_eq!(
        store.pin_cross_signing(BOB, "NEW", NOW + 1).await.unwrap(),
        "OLD",
        "a pin is never overwritten"
    );
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.pin_cross_signing(BOB, "NEW", NOW + 2).await.unwrap(), "OLD", "kept across a restart");
    assert_eq!(store.drop_cross_signing_pin("@nobody:hs").await.unwrap(), None);
    let dropped = store.drop_cross_signing_pin(BOB).await.unwrap().unwrap();
    assert_eq!((dropped.master_key.as_str(), dropped.pinned_at_ms), ("OLD", NOW));
    assert_eq!(store.cross_signing_pin(BOB).await.unwrap(), None);
    assert_eq!(
        store.pin_cross_signing(BOB, "NEW", NOW + 3).await.unwrap(),
        "NEW",
        "the next sight pins anew"
    );
    store.close().await;
}
