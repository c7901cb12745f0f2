//! The crypto and key-derivation vectors, checked byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::crypto::aead::{self, PADDING_BLOCK};
use dm3::crypto::asymmetric::{self, EncryptedPayload};
use dm3::crypto::eth::{Wallet, checksum, parse_address};
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::{b64_decode, b64_decode_array, b64_encode, hex_decode_array};
use dm3::keys::{DEFAULT_NONCE, ProfileKeys, storage_key_creation_message, storage_key_from_signature};
use vectors::{at, str_at};

fn seed(path: &str) -> [u8; 32] {
    b64_decode_array(str_at(path)).unwrap()
}

#[test]
fn kx_and_sign_key_pairs_from_seed() {
    let kx = KxKeyPair::from_seed(&seed("primitives/seed_base64"));
    assert_eq!(kx.public_b64(), str_at("primitives/kxKeyPairFromSeed/publicKey"));
    assert_eq!(*kx.secret_b64(), str_at("primitives/kxKeyPairFromSeed/privateKey"));
    let sign = SigningKeyPair::from_seed(&seed("primitives/seed_base64"));
    assert_eq!(sign.public_b64(), str_at("primitives/signKeyPairFromSeed/publicKey"));
    assert_eq!(*sign.secret_b64(), str_at("primitives/signKeyPairFromSeed/privateKey"));
    let kx2 = KxKeyPair::from_seed(&seed("primitives/kxKeyPair2/seed_base64"));
    assert_eq!(kx2.public_b64(), str_at("primitives/kxKeyPair2/publicKey"));
    assert_eq!(*kx2.secret_b64(), str_at("primitives/kxKeyPair2/privateKey"));
}

#[test]
fn session_keys_match_libsodium() {
    let kx1 = KxKeyPair::from_seed(&seed("primitives/seed_base64"));
    let kx2 = KxKeyPair::from_seed(&seed("primitives/kxKeyPair2/seed_base64"));
    let client = kx1.client_session_keys(kx2.public()).unwrap();
    assert_eq!(b64_encode(client.rx.as_ref()), str_at("primitives/clientSessionKeys_kx1_to_kx2/sharedRx"));
    assert_eq!(b64_encode(client.tx.as_ref()), str_at("primitives/clientSessionKeys_kx1_to_kx2/sharedTx"));
    let server = kx2.server_session_keys(kx1.public()).unwrap();
    assert_eq!(b64_encode(server.rx.as_ref()), str_at("primitives/serverSessionKeys_kx2_from_kx1/sharedRx"));
    assert_eq!(b64_encode(server.tx.as_ref()), str_at("primitives/serverSessionKeys_kx2_from_kx1/sharedTx"));
}

#[test]
fn symmetric_encryption_with_both_paddings() {
    let key: [u8; 32] = seed("primitives/symmetric/key_base64");
    let nonce: [u8; 12] = hex_decode_array(str_at("primitives/symmetric/nonce_hex")).unwrap();
    let plaintext = str_at("primitives/symmetric/plaintext").as_bytes();
    for (block, path) in [(PADDING_BLOCK, "padding2048"), (1, "padding1")] {
        let expected = str_at(&format!("primitives/symmetric/{path}/ciphertext"));
        assert_eq!(
            str_at(&format!("primitives/symmetric/{path}/nonce")),
            str_at("primitives/symmetric/nonce_hex")
        );
        let sealed = aead::seal(&key, &nonce, plaintext, block);
        assert_eq!(b64_encode(&sealed), expected, "padding {block}");
        assert_eq!(aead::open(&key, &nonce, &b64_decode(expected).unwrap(), block).unwrap(), plaintext);
    }
}

#[test]
fn padding_table() {
    for row in at("primitives/paddingTable_blocksize2048").as_array().unwrap() {
        let plain = row["plaintextBytes"].as_u64().unwrap() as usize;
        let cipher = row["ciphertextBytes"].as_u64().unwrap() as usize;
        assert_eq!(aead::seal(&[1; 32], &[2; 12], &vec![0u8; plain], PADDING_BLOCK).len(), cipher);
    }
}

#[test]
fn ed25519_detached_signature() {
    let pair = SigningKeyPair::from_secret_b64(str_at("primitives/signKeyPairFromSeed/privateKey")).unwrap();
    let message = str_at("primitives/ed25519/message");
    assert_eq!(pair.sign_b64(message), str_at("primitives/ed25519/signature_base64"));
    let key = VerifyKey::from_b64(str_at("primitives/signKeyPairFromSeed/publicKey")).unwrap();
    assert_eq!(key.verify_b64(message, str_at("primitives/ed25519/signature_base64")), Ok(true));
}

#[test]
fn wallets_have_their_addresses() {
    for who in ["alice", "bob", "ccipGatewaySigner"] {
        let wallet = Wallet::from_hex(str_at(&format!("wallets/{who}/privateKey"))).unwrap();
        assert_eq!(checksum(&wallet.address()), str_at(&format!("wallets/{who}/address")), "{who}");
    }
}

#[test]
fn user_key_derivation_matches_for_every_user_and_nonce() {
    for (user, wallet) in [("alice", "alice"), ("bob", "bob"), ("alice_with_widget_nonce_0x123", "alice")] {
        let base = format!("users/{user}");
        let wallet = Wallet::from_hex(str_at(&format!("wallets/{wallet}/privateKey"))).unwrap();
        let nonce = str_at(&format!("{base}/nonce"));
        let message = storage_key_creation_message(&wallet.address(), nonce);
        assert_eq!(message, str_at(&format!("{base}/storageKeyCreationMessage")), "{user}");
        let signature = wallet.personal_sign(message.as_bytes()).to_hex();
        assert_eq!(signature, str_at(&format!("{base}/storageKeySignature")), "{user}");
        let storage_key = storage_key_from_signature(&signature);
        assert_eq!(b64_encode(storage_key.as_ref()), str_at(&format!("{base}/storageKey_base64")));
        let keys = ProfileKeys::from_wallet(&wallet, nonce);
        let expected = at(&format!("{base}/keys"));
        assert_eq!(keys.encryption.public_b64(), expected["encryptionKeyPair"]["publicKey"]);
        assert_eq!(*keys.encryption.secret_b64(), expected["encryptionKeyPair"]["privateKey"]);
        assert_eq!(keys.signing.public_b64(), expected["signingKeyPair"]["publicKey"]);
        assert_eq!(*keys.signing.secret_b64(), expected["signingKeyPair"]["privateKey"]);
        assert_eq!(expected["storageEncryptionKey"], str_at(&format!("{base}/storageKey_base64")));
        assert_eq!(expected["storageEncryptionNonce"], nonce);
    }
    assert_eq!(str_at("users/alice/nonce"), DEFAULT_NONCE);
}

#[test]
fn envelope_encryption_steps_are_reproduced_byte_for_byte() {
    for format in ["npm_1_7_1_format", "repo_tag_1_7_1_format"] {
        for step in at(&format!("envelopes/{format}/encryptionSteps")).as_array().unwrap() {
            let ephemeral =
                KxKeyPair::from_seed(&b64_decode_array(step["ephemeralSeed"].as_str().unwrap()).unwrap());
            assert_eq!(ephemeral.public_b64(), step["ephemeralKeyPair"]["publicKey"]);
            assert_eq!(*ephemeral.secret_b64(), step["ephemeralKeyPair"]["privateKey"]);
            let receiver: [u8; 32] = b64_decode_array(step["receiverPublicKey"].as_str().unwrap()).unwrap();
            let keys = ephemeral.client_session_keys(&receiver).unwrap();
            assert_eq!(b64_encode(keys.tx.as_ref()), step["sharedTx_senderSide"]);
            assert_eq!(b64_encode(keys.rx.as_ref()), step["sharedRx_senderSide"]);
            let nonce: [u8; 12] = hex_decode_array(step["nonce"].as_str().unwrap()).unwrap();
            let plaintext = step["plaintext"].as_str().unwrap();
            assert_eq!(plaintext.len() as u64, step["plaintextUtf8Bytes"].as_u64().unwrap());
            assert_eq!(
                aead::pad(plaintext.as_bytes(), PADDING_BLOCK).len() as u64,
                step["paddedBytes"].as_u64().unwrap()
            );
            let payload =
                asymmetric::encrypt_with(&receiver, &ephemeral, &nonce, plaintext.as_bytes()).unwrap();
            let again = EncryptedPayload::parse(&payload.to_canonical_string()).unwrap();
            assert_eq!(again, payload);
        }
    }
}

#[test]
fn address_parsing_accepts_vector_addresses() {
    let address = parse_address(str_at("wallets/alice/address")).unwrap();
    assert_eq!(checksum(&address), str_at("wallets/alice/address"));
}
