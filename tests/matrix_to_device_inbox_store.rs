//! The rows behind the ghost devices' to-device inbox (migration 0023), on both backends: a
//! message is kept once whether the push or the catch-up brings it, handed out per device in
//! arrival order, kept with the catch-up's since token, and pruned only once settled (a pending
//! message is never forgotten, and one pruned is new again if it ever comes back).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use dm3_bridge::store::{Store, ToDeviceKeep};
use support::TestDb;

on_both_backends!(to_device_messages_are_kept_once_in_order_and_pruned_only_once_settled);

const GHOST: &str = "@dm3_alice:hs";
const DEVICE: &str = "DM3DEVICE";
const NOW: i64 = 1_000_000_000;

fn message(digest: &str, via: &'static str) -> ToDeviceKeep {
    ToDeviceKeep {
        user_id: GHOST.to_owned(),
        device_id: DEVICE.to_owned(),
        digest: digest.to_owned(),
        sender: "@bob:hs".to_owned(),
        event_type: "m.room.encrypted".to_owned(),
        content: format!(r#"{{"ciphertext":"{digest}"}}"#),
        via,
    }
}

/// The contents of the device's pending messages, in the order the opener gets them.
async fn pending(store: &Store) -> Vec<String> {
    store.to_device_pending(GHOST, DEVICE, 100).await.unwrap().into_iter().map(|row| row.content).collect()
}

fn contents(digests: &[&str]) -> Vec<String> {
    digests.iter().map(|d| format!(r#"{{"ciphertext":"{d}"}}"#)).collect()
}

async fn to_device_messages_are_kept_once_in_order_and_pruned_only_once_settled(db: &TestDb) {
    let store = db.open().await;

    // The push brings three; the catch-up brings the first again and one more, with its token.
    let pushed = vec![message("first", "push"), message("second", "push"), message("third", "push")];
    assert_eq!(store.keep_to_device(pushed, NOW).await.unwrap(), 3);
    let caught_up = vec![message("first", "catch_up"), message("fourth", "catch_up")];
    assert_eq!(
        store.keep_caught_up(GHOST, DEVICE, caught_up, "s42", NOW).await.unwrap(),
        1,
        "first kept once"
    );
    assert_eq!(store.to_device_since(GHOST, DEVICE).await.unwrap().as_deref(), Some("s42"));
    assert_eq!(pending(&store).await, contents(&["first", "second", "third", "fourth"]), "arrival order");
    assert_eq!(
        store.to_device_pending_devices(10).await.unwrap(),
        vec![(GHOST.to_owned(), DEVICE.to_owned())]
    );

    // One tried and waiting, one given up.
    let rows = store.to_device_pending(GHOST, DEVICE, 100).await.unwrap();
    store.settle_to_device(rows[0].seq, false).await.unwrap();
    store.settle_to_device(rows[1].seq, true).await.unwrap();
    let after = store.to_device_pending(GHOST, DEVICE, 100).await.unwrap();
    assert_eq!(after[0].attempts, 1, "a retry counts its try and stays pending");
    assert_eq!(pending(&store).await, contents(&["first", "third", "fourth"]));

    // Pruning forgets only what is settled and older than the cut.
    assert_eq!(store.prune_to_device(NOW).await.unwrap(), 0, "nothing older than its own arrival");
    assert_eq!(store.prune_to_device(NOW + 1).await.unwrap(), 1, "only the given-up one");
    assert_eq!(pending(&store).await, contents(&["first", "third", "fourth"]), "pending ones never pruned");
    assert_eq!(store.keep_to_device(vec![message("second", "catch_up")], NOW + 2).await.unwrap(), 1);
    assert_eq!(store.keep_to_device(vec![message("third", "catch_up")], NOW + 2).await.unwrap(), 0);
}
