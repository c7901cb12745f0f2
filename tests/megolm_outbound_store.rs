//! The rows behind ghosts' outbound Megolm sessions (migration 0022), on both backends: a step
//! lands whole or not at all, only over the account version it read (so a replica whose lease
//! ran out writes nothing), a new session forgets the old one's shared-with set, and a room key
//! once sent is forgotten as pending.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use dm3_bridge::store::{MegolmOutboundSave, MegolmStep, OlmAccountSave, OlmSessionSave, Store};
use support::TestDb;

on_both_backends!(a_step_lands_whole_only_over_the_version_it_read);

const GHOST: &str = "@_dm3_alice.eth:hs";
const ROOM: &str = "!dm:hs";

fn account(expected: Option<i64>) -> OlmAccountSave {
    OlmAccountSave {
        user_id: GHOST.to_owned(),
        device_id: "DM3DEVICE".to_owned(),
        sealed: b"sealed account".to_vec(),
        device_published: true,
        expected,
        now_ms: 1,
    }
}

fn step(expected: i64, session_id: &str, device: &str, txn: &str) -> MegolmStep {
    MegolmStep {
        account: account(Some(expected)),
        room_id: ROOM.to_owned(),
        session: MegolmOutboundSave {
            session_id: session_id.to_owned(),
            sealed: format!("sealed {session_id}").into_bytes(),
            created_at: 5,
            messages: 1,
        },
        olm_sessions: vec![OlmSessionSave {
            user_id: GHOST.to_owned(),
            sender_key: format!("curve-{device}"),
            session_id: format!("olm-{device}"),
            sealed: b"sealed olm".to_vec(),
        }],
        shared: vec![("@bob:hs".to_owned(), device.to_owned(), format!("curve-{device}"))],
        pending: Some((txn.to_owned(), "{}".to_owned())),
        now_ms: 2,
    }
}

async fn shared_devices(store: &Store) -> Vec<String> {
    let row = store.megolm_outbound(GHOST, ROOM).await.unwrap().unwrap();
    row.shared.into_iter().map(|(_, device, _)| device).collect()
}

async fn a_step_lands_whole_only_over_the_version_it_read(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.save_olm_account(account(None)).await.unwrap(), Some(1));
    assert!(store.megolm_outbound(GHOST, ROOM).await.unwrap().is_none());

    assert!(store.save_megolm_step(step(1, "S1", "PHONE", "t1")).await.unwrap());
    let row = store.megolm_outbound(GHOST, ROOM).await.unwrap().unwrap();
    assert_eq!(
        (row.session_id.as_str(), row.messages, row.sealed.as_slice()),
        ("S1", 1, b"sealed S1".as_slice())
    );
    assert_eq!(shared_devices(&store).await, ["PHONE"]);
    assert_eq!(store.olm_sessions(GHOST, "curve-PHONE").await.unwrap().len(), 1);

    // A stale version (another process stepped the ghost): nothing of the step is written.
    assert!(!store.save_megolm_step(step(1, "S2", "LAPTOP", "t2")).await.unwrap());
    assert_eq!(store.megolm_outbound(GHOST, ROOM).await.unwrap().unwrap().session_id, "S1");
    assert!(store.olm_sessions(GHOST, "curve-LAPTOP").await.unwrap().is_empty());
    let pending: Vec<String> =
        store.megolm_pending(GHOST, ROOM).await.unwrap().into_iter().map(|p| p.0).collect();
    assert_eq!(pending, ["t1"]);

    // The same session shared with one more device keeps both; a new session forgets them.
    assert!(store.save_megolm_step(step(2, "S1", "LAPTOP", "t3")).await.unwrap());
    assert_eq!(shared_devices(&store).await, ["LAPTOP", "PHONE"]);
    assert!(store.save_megolm_step(step(3, "S2", "TABLET", "t4")).await.unwrap());
    assert_eq!(shared_devices(&store).await, ["TABLET"]);

    for txn in ["t1", "t3"] {
        store.megolm_to_device_sent(GHOST, txn).await.unwrap();
    }
    let pending: Vec<String> =
        store.megolm_pending(GHOST, ROOM).await.unwrap().into_iter().map(|p| p.0).collect();
    assert_eq!(pending, ["t4"]);
    store.close().await;
}
