//! Envelopes that are numbers: bob.eth's envelope `n` has the hash `n`, so a test that writes
//! them and counts what the store kept (`tests/durability.rs`, `tests/fault_sqlite_disk.rs`)
//! compares sets of numbers, not of envelopes.

use dm3::ens::EnsName;
use dm3_bridge::store::{IncomingLimits, NewEnvelope, Store};

/// Envelope `n` from alice.eth to bob.eth, padded with `pad` bytes.
pub fn envelope(n: u64, pad: usize) -> NewEnvelope {
    NewEnvelope {
        receiver: EnsName::from_normalized("bob.eth").unwrap(),
        sender: EnsName::from_normalized("alice.eth").unwrap(),
        message_hash: format!("0x{n:064x}").parse().unwrap(),
        envelope: format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(pad)),
        received_at_ms: 1,
        expires_at_ms: None,
    }
}

/// The numbers of the envelopes the store keeps for bob.eth, once each as stored (a number
/// twice is an envelope stored twice).
pub async fn stored(store: &Store) -> Vec<u64> {
    store
        .list_incoming(
            &EnsName::from_normalized("bob.eth").unwrap(),
            0,
            IncomingLimits { conversations: 1, per_conversation: u32::MAX },
        )
        .await
        .unwrap()
        .iter()
        .map(|e| u64::from_str_radix(e.message_hash.to_string().trim_start_matches("0x"), 16).unwrap())
        .collect()
}
