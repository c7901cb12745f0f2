//! The backend-storage vectors: the deterministic contact-name encryption and
//! the message-id hashing of the history API (§11.2, P21).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::backend_storage::{
    CONTACT_NAME_PADDING, MessageState, StorageError, account_nonce, decrypt_contact_name, decrypt_sync,
    encrypt_contact_name, encrypt_sync, open_envelope_container, seal_envelope_container, storage_message_id,
};
use dm3::crypto::kx::KxKeyPair;
use dm3::encoding::hex_encode;
use vectors::{at, str_at};

/// The key the vector names: Alice's X25519 secret, used directly as the AEAD key.
fn owner_key() -> KxKeyPair {
    let note = str_at("backendStorage/key");
    let path = note.split_whitespace().next().unwrap().replace('.', "/");
    assert_eq!(path, "users/alice/keys/encryptionKeyPair/privateKey");
    KxKeyPair::from_secret_b64(str_at(&path)).unwrap()
}

#[test]
fn contact_names_are_encrypted_as_the_reference_does() {
    let owner = str_at("backendStorage/ownerEnsName");
    let contact = str_at("backendStorage/contactName");
    assert_eq!(hex_encode(&account_nonce(owner)), str_at("backendStorage/nonce_hex"));
    assert_eq!(at("backendStorage/padding_blocksize").as_u64(), Some(CONTACT_NAME_PADDING as u64));
    let payload = encrypt_sync(&owner_key(), owner, contact);
    assert_eq!(&payload, at("backendStorage/encryptedPayload"));
    assert_eq!(decrypt_sync(&owner_key(), &payload).unwrap(), contact);
    let encrypted = encrypt_contact_name(&owner_key(), owner, contact);
    assert_eq!(encrypted, str_at("backendStorage/encryptedContactName_btoa_of_stringify"));
    assert_eq!(decrypt_contact_name(&owner_key(), &encrypted).unwrap(), contact);
    let bob = KxKeyPair::from_secret_b64(str_at("users/bob/keys/encryptionKeyPair/privateKey")).unwrap();
    assert_eq!(decrypt_contact_name(&bob, &encrypted), Err(StorageError::WrongKey));
}

#[test]
fn storage_message_ids_hash_owner_and_message_hash() {
    let message_id = str_at("messages/NEW/messageHash_sha256_of_stringify_message");
    assert_eq!(
        storage_message_id(str_at("backendStorage/ownerEnsName"), message_id),
        str_at("backendStorage/uniqueMessageId_for_messageId_hNew")
    );
}

#[test]
fn stored_envelopes_round_trip_through_the_container() {
    let envelope = at("postmark/storedEnvelope_as_returned_by_GET_incoming");
    let sealed = seal_envelope_container(&owner_key(), envelope, MessageState::Read).unwrap();
    assert_eq!(
        open_envelope_container(&owner_key(), &sealed).unwrap(),
        (envelope.clone(), MessageState::Read)
    );
}
