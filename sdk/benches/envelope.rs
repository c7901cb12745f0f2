//! Seal and open, the two operations a relay and a bridge do per envelope,
//! measured on the same message as `interop/bench.js` measures the reference.
//! `scripts/bench-sdk.sh` runs both and prints the ratio.
//!
//! - seal: encrypt the message to the recipient, encrypt `{to, from}` to the
//!   DS, hash the message, sign the metadata (Ed25519).
//! - open: decrypt the delivery information (DS key), decrypt the message
//!   (recipient key), verify the sender's message signature.
//! - the per-core floor of open: two X25519 scalar multiplications and one
//!   Ed25519 verification, measured alone.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dm3::canonical;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::envelope::Envelope;
use dm3::message::Message;
use serde_json::json;

const TEXT: &str = "Hello Bob! This is a benchmark message of about two hundred bytes, sent over DM3 with \
    end-to-end encryption. Umlauts: äöü, an emoji 👋 and a second sentence to fill it up nicely.. Regards, Alice.";

struct Setup {
    sender: SigningKeyPair,
    sender_key: VerifyKey,
    receiver: KxKeyPair,
    ds: KxKeyPair,
    message: Message,
}

fn setup() -> Setup {
    let sender = SigningKeyPair::from_seed(&[1; 32]);
    let receiver = KxKeyPair::from_seed(&[2; 32]);
    let ds = KxKeyPair::from_seed(&[3; 32]);
    let mut message = json!({
        "message": TEXT,
        "metadata": {"to": "bob.eth", "from": "alice.eth", "timestamp": 1_764_000_000_000u64, "type": "NEW"},
    });
    message["signature"] = json!(sender.sign_b64(&canonical::stringify(&message)));
    let sender_key = VerifyKey::from_bytes(&sender.public()).unwrap();
    Setup { sender, sender_key, receiver, ds, message: Message::from_value(message).unwrap() }
}

fn open(setup: &Setup, envelope: &Envelope) -> Message {
    let delivery = envelope.delivery_information(&setup.ds).unwrap();
    let opened = envelope.open(&setup.receiver).unwrap();
    let mut unsigned = opened.message.as_map().clone();
    let signature = unsigned.remove("signature").unwrap();
    assert_eq!(delivery.from(), opened.message.from());
    let valid = setup
        .sender_key
        .verify_b64(&canonical::stringify_object(&unsigned), signature.as_str().unwrap())
        .unwrap();
    assert!(valid);
    opened.message
}

fn benches(c: &mut Criterion) {
    let setup = setup();
    let envelope =
        Envelope::seal(&setup.message, &setup.sender, setup.receiver.public(), setup.ds.public()).unwrap();
    assert_eq!(open(&setup, &envelope), setup.message, "open returns the sealed message");

    c.bench_function("seal", |b| {
        b.iter(|| {
            Envelope::seal(
                black_box(&setup.message),
                &setup.sender,
                setup.receiver.public(),
                setup.ds.public(),
            )
            .unwrap()
        })
    });
    c.bench_function("open", |b| b.iter(|| open(&setup, black_box(&envelope))));

    let peer = KxKeyPair::from_seed(&[4; 32]);
    c.bench_function("floor/x25519", |b| {
        b.iter(|| setup.receiver.server_session_keys(black_box(peer.public())).unwrap())
    });
    let signature = setup.sender.sign(TEXT.as_bytes());
    c.bench_function("floor/ed25519_verify", |b| {
        b.iter(|| setup.sender_key.verify(black_box(TEXT.as_bytes()), &signature))
    });
}

criterion_group! {
    name = envelope;
    config = Criterion::default().sample_size(60).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(envelope);
