//! `kill -9` of the bridge while alice's messages go into bob's encrypted DM: nothing lost,
//! nothing twice, and every message decrypts on bob's own client (matrix-sdk).
//!
//! The bridge runs as its own process (`tests/support/matrix_process.rs`) with
//! `[matrix] encryption = "on"`. bob switches his DM with alice's ghost to encrypted and logs in
//! with matrix-sdk; alice (DM3, her client is the SDK) sends [`COUNT`] messages while the test
//! SIGKILLs the bridge twice and starts it again on the same data directory and database. What
//! a kill can leave half done, and must not show: a Megolm session saved but its room key not
//! yet sent (the next attempt sends the saved room key first, with its txn id), an event
//! encrypted and saved but not sent or not acknowledged (the job runs again, encrypts at the
//! next index and sends under the same txn id as the ghost's device, which Synapse answers with
//! the first event if it had arrived).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/anvil.rs"]
mod anvil;
#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/dm3_world.rs"]
mod dm3_world;
#[path = "support/matrix_process.rs"]
mod matrix_process;
mod support;
#[path = "support/synapse.rs"]
mod synapse;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dm3_bridge::config::DatabaseUrl;
use dm3_matrix_client::{Credentials, Decryption, ids};
use matrix_process::ProcessBridged;
use serde_json::json;
use support::TestDb;
use support::crash::{LONG_WAIT, assert_exactly_once_in_order, pending_jobs, settled};

/// Messages from alice.
const COUNT: usize = 30;
const PACE: Duration = Duration::from_millis(15);
/// The kills happen once this many of alice's messages were accepted by the bridge.
const KILL_AT: [usize; 2] = [COUNT / 3, 2 * COUNT / 3];
const DOWN_FOR: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_in_an_encrypted_dm_loses_duplicates_and_garbles_nothing_on_sqlite() {
    crash_scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_in_an_encrypted_dm_loses_duplicates_and_garbles_nothing_on_postgres() {
    let db = TestDb::postgres().await;
    crash_scenario(Some(db.url.clone())).await;
}

async fn crash_scenario(database: Option<DatabaseUrl>) {
    let ProcessBridged { world, mut bridge, synapse, store, bob, bob_password, room, ghost, bob_name, route } =
        ProcessBridged::start(database, &[]).await;
    let path = format!("/_matrix/client/v3/rooms/{}/state/m.room.encryption/", synapse::encode(&room));
    bob.call(reqwest::Method::PUT, &path, Some(json!({"algorithm": "m.megolm.v1.aes-sha2"}))).await.unwrap();
    let credentials =
        Credentials { homeserver: synapse.url().to_owned(), user: "bob".to_owned(), password: bob_password };
    let phone = credentials.login("bob's phone").await.unwrap_or_else(|e| panic!("{e}"));
    let bob_room = ids::room_id(&room).unwrap();
    settled(&store, || bridge.log_tail(40)).await;

    let from_alice: Vec<String> = (0..COUNT).map(|i| format!("sealed-{i:03}")).collect();
    let accepted = AtomicUsize::new(0);
    let alice_stream = async {
        world
            .alice
            .send_each_until_accepted(&route, &bob_name, &from_alice, PACE, LONG_WAIT, &accepted)
            .await;
    };
    let kills = async {
        for kill_at in KILL_AT {
            let deadline = Instant::now() + LONG_WAIT;
            while accepted.load(Ordering::SeqCst) < kill_at {
                assert!(
                    Instant::now() < deadline,
                    "the bridge did not accept {kill_at}\n{}",
                    bridge.log_tail(40)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            bridge.kill();
            eprintln!("killed with {:?} jobs pending", pending_jobs(&store).await);
            assert!(accepted.load(Ordering::SeqCst) < COUNT, "alice's stream had ended before the kill");
            tokio::time::sleep(DOWN_FOR).await;
            bridge.start().await;
        }
    };
    tokio::join!(alice_stream, kills);

    // bob's own client: every message of alice's, decrypted, once, in order.
    let seen = phone
        .sync_until(LONG_WAIT, "alice's messages, decrypted on bob's phone", || async {
            let events = phone.messages(&bob_room).await?;
            let from_ghost: Vec<_> = events
                .into_iter()
                .filter(|e| e.sender.as_ref().is_some_and(|s| s.as_str() == ghost))
                .collect();
            let done = from_ghost.iter().filter(|e| e.is_message()).count() >= COUNT
                || from_ghost.iter().any(|e| matches!(e.decryption, Decryption::Undecryptable { .. }));
            Ok(done.then_some(from_ghost))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", bridge.log_tail(60)));
    for event in &seen {
        assert_eq!(event.decryption, Decryption::Decrypted, "every message of the ghost decrypts: {event:?}");
    }
    settled(&store, || bridge.log_tail(40)).await;
    let bodies: Vec<String> = phone
        .messages(&bob_room)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.sender.as_ref().is_some_and(|s| s.as_str() == ghost) && e.is_message())
        .filter_map(|e| e.body().map(str::to_owned))
        .collect();
    assert_exactly_once_in_order("alice → bob's phone (decrypted)", &bodies, &from_alice);
    let stored = synapse.stored_events(&room).await.unwrap();
    for text in &from_alice {
        assert!(stored.iter().all(|json| !json.contains(text.as_str())), "{text} in Synapse's database");
    }
    bridge.terminate().await;
    store.close().await;
}
