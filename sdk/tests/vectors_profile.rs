//! The profile vectors (`users.alice`, `users.bob`, `deliveryService`,
//! `profileLink`), reproduced byte for byte: EIP-191 signatures use RFC 6979
//! nonces, so a profile we sign must equal the reference's to the last byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vectors;

use dm3::crypto::eth::Wallet;
use dm3::crypto::signing::SigningKeyPair;
use dm3::ds_profile::{DeliveryServiceKeys, DeliveryServiceProfile};
use dm3::encoding::{b64_decode, b64_decode_array};
use dm3::hash::sha256_hex;
use dm3::keys::ProfileKeys;
use dm3::profile::{ProfileVerifyError, SignedUserProfile, UserProfile, profile_creation_message};
use dm3::profile_link::{ProfileLink, ProfileLinkError, SignedProfileLink};
use dm3::text_record::{DELIVERY_SERVICE_KEY, Dm3Hash, ProfileRecord, RecordError};
use serde_json::{Value, json};
use vectors::{at, str_at};

fn wallet(who: &str) -> Wallet {
    Wallet::from_hex(str_at(&format!("wallets/{who}/privateKey"))).unwrap()
}

fn inline(record: &str) -> Value {
    match ProfileRecord::parse(record).unwrap() {
        ProfileRecord::Inline(value) => value,
        other => panic!("not inline: {other:?}"),
    }
}

#[test]
fn user_profiles_are_created_signed_and_published_like_the_reference() {
    for who in ["alice", "bob"] {
        let base = format!("users/{who}");
        let wallet = wallet(who);
        let keys = ProfileKeys::from_wallet(&wallet, str_at(&format!("{base}/nonce")));
        let ds = str_at("deliveryService/ensName");
        let profile = UserProfile::from_keys(&keys, [ds]);
        assert_eq!(profile.to_value(), *at(&format!("{base}/profile")), "{who}");
        assert_eq!(profile.canonical(), str_at(&format!("{base}/stringifiedProfile")));
        assert_eq!(
            profile_creation_message(&profile.canonical(), &wallet.address()),
            str_at(&format!("{base}/profileCreationMessage"))
        );

        let signed = profile.sign(&wallet);
        assert_eq!(signed.signature(), str_at(&format!("{base}/signedUserProfile/signature")), "{who}");
        assert_eq!(signed.to_value(), *at(&format!("{base}/signedUserProfile")));
        assert_eq!(signed.canonical(), str_at(&format!("{base}/stringifiedSignedUserProfile")));
        assert_eq!(signed.to_text_record(), str_at(&format!("{base}/textRecord_dataUri")));
        assert_eq!(signed.dm3_hash().to_string(), str_at(&format!("{base}/dm3Hash_of_signedUserProfile")));
    }
}

#[test]
fn published_user_profiles_verify_against_their_address_only() {
    for (who, other) in [("alice", "bob"), ("bob", "alice")] {
        let record = inline(str_at(&format!("users/{who}/textRecord_dataUri")));
        let signed = SignedUserProfile::from_value(record).unwrap();
        assert_eq!(signed.to_value(), *at(&format!("users/{who}/signedUserProfile")));
        assert_eq!(signed.verify_against_address(&wallet(who).address()), Ok(()), "{who}");
        assert_eq!(
            signed.verify_against_address(&wallet(other).address()),
            Err(ProfileVerifyError::NotSignedBy(wallet(other).address()))
        );
        assert_eq!(
            signed.profile().verify_key().unwrap().to_bytes(),
            b64_decode_array::<32>(str_at(&format!("users/{who}/keys/signingKeyPair/publicKey"))).unwrap()
        );
        assert_eq!(
            signed.profile().encryption_key().unwrap(),
            b64_decode_array::<32>(str_at(&format!("users/{who}/keys/encryptionKeyPair/publicKey"))).unwrap()
        );

        // A profile whose delivery services were swapped no longer verifies.
        let mut tampered = signed.to_value();
        tampered["profile"]["deliveryServices"] = json!(["evil.eth"]);
        let tampered = SignedUserProfile::from_value(tampered).unwrap();
        assert_eq!(
            tampered.verify_against_address(&wallet(who).address()),
            Err(ProfileVerifyError::NotSignedBy(wallet(who).address()))
        );
    }
}

#[test]
fn profile_links_check_the_fetched_document_against_dm3_hash() {
    let hash: Dm3Hash = str_at("users/alice/dm3Hash_of_signedUserProfile").parse().unwrap();
    let record = ProfileRecord::parse(&ProfileRecord::link("https://example.org/alice.json", &hash)).unwrap();
    assert_eq!(record.check_fetched(at("users/alice/signedUserProfile")), Ok(()));
    let bob = at("users/bob/signedUserProfile");
    assert_eq!(
        record.check_fetched(bob),
        Err(RecordError::HashMismatch { expected: hash, actual: Dm3Hash::of_json(bob) })
    );
}

#[test]
fn delivery_service_keys_come_from_seeds_and_env() {
    let seed = |path: &str| b64_decode_array::<32>(str_at(path)).unwrap();
    let keys = DeliveryServiceKeys::from_seeds(
        &seed("deliveryService/encryptionSeed_base64"),
        &seed("deliveryService/signingSeed_base64"),
    );
    let expected = at("deliveryService/keys");
    assert_eq!(keys.encryption.public_b64(), expected["encryptionKeyPair"]["publicKey"]);
    assert_eq!(*keys.encryption.secret_b64(), expected["encryptionKeyPair"]["privateKey"]);
    assert_eq!(keys.signing.public_b64(), expected["signingKeyPair"]["publicKey"]);
    assert_eq!(*keys.signing.secret_b64(), expected["signingKeyPair"]["privateKey"]);

    let env = |name: &str| str_at(&format!("deliveryService/env/{name}"));
    let from_env = DeliveryServiceKeys::from_env(
        env("ENCRYPTION_PUBLIC_KEY"),
        env("ENCRYPTION_PRIVATE_KEY"),
        env("SIGNING_PUBLIC_KEY"),
        env("SIGNING_PRIVATE_KEY"),
    )
    .unwrap();
    assert_eq!(from_env.encryption.public(), keys.encryption.public());
    assert_eq!(from_env.signing.public(), keys.signing.public());

    // §3.2: serverSecret = sha256(base64decode(SIGNING_PRIVATE_KEY)), as 0x-hex.
    assert_eq!(*from_env.jwt_server_secret(), str_at("deliveryService/jwtServerSecret"));
    let decoded = b64_decode(env("SIGNING_PRIVATE_KEY")).unwrap();
    assert_eq!(decoded.len(), 64);
    let independent = SigningKeyPair::from_libsodium_secret(&decoded.try_into().unwrap()).unwrap();
    assert_eq!(independent.public(), keys.signing.public());
    assert_eq!(
        dm3::encoding::hex_encode(&dm3::hash::sha256(&b64_decode(env("SIGNING_PRIVATE_KEY")).unwrap())),
        str_at("deliveryService/jwtServerSecret")
    );
    assert_ne!(sha256_hex(env("SIGNING_PRIVATE_KEY")), str_at("deliveryService/jwtServerSecret"));
}

#[test]
fn delivery_service_profile_is_published_and_read_in_every_form() {
    let seed = |path: &str| b64_decode_array::<32>(str_at(path)).unwrap();
    let keys = DeliveryServiceKeys::from_seeds(
        &seed("deliveryService/encryptionSeed_base64"),
        &seed("deliveryService/signingSeed_base64"),
    );
    let expected = at("deliveryService/profile");
    let profile = keys.profile(expected["url"].as_str().unwrap());
    assert_eq!(profile.to_value(), *expected);
    assert_eq!(profile.to_text_record(), str_at("deliveryService/textRecord_dataUri"));
    assert_eq!(str_at("deliveryService/textRecord_key"), DELIVERY_SERVICE_KEY);

    // The setup helper writes insertion order, the CLI bare JSON (§4.4).
    let (enc, sign, url) = (profile.public_encryption_key(), profile.public_signing_key(), profile.url());
    let shuffled = format!(r#"{{"url":"{url}","publicSigningKey":"{sign}","publicEncryptionKey":"{enc}"}}"#);
    for record in [
        str_at("deliveryService/textRecord_dataUri").to_owned(),
        format!("data:application/json,{shuffled}"),
        shuffled,
    ] {
        let read = DeliveryServiceProfile::from_value(inline(&record)).unwrap();
        assert_eq!(read, profile, "{record}");
        assert_eq!(read.canonical(), profile.canonical());
    }
    assert_eq!(profile.verify_key().unwrap().to_bytes(), keys.signing.public());
    assert_eq!(profile.encryption_key().unwrap(), *keys.encryption.public());
}

#[test]
fn profile_link_is_signed_and_verified_like_the_reference() {
    let link_vector = at("profileLink/link");
    let link = ProfileLink::new(
        link_vector["mainId"].as_str().unwrap(),
        link_vector["linkedProfile"].as_str().unwrap(),
        link_vector["scopeUri"].as_str().unwrap(),
        link_vector["issuedAt"].as_u64().unwrap(),
        None,
        link_vector["nonce"].as_u64().unwrap(),
    );
    assert_eq!(Value::Object(link.as_map().clone()), *link_vector);
    assert!(link.message().starts_with(
        "dm3 Profile Link:\nhttps://app.example wants you to link your local dm3 profile with your Ethereum address.\n\n"
    ));
    assert!(link.message().ends_with("Nonce: 7\nIssued At: 1700000000\nExpiration Time: null"));

    let signed = link.sign_with_wallet(&wallet("alice")).unwrap();
    assert_eq!(signed.signature(), str_at("profileLink/signed/signature"));
    assert_eq!(signed.to_value(), *at("profileLink/signed"));

    let received = SignedProfileLink::from_value(at("profileLink/signed").clone()).unwrap();
    assert_eq!(received.verify(None).is_ok(), at("profileLink/verified").as_bool().unwrap());
    let mut tampered = at("profileLink/signed").clone();
    tampered["profileLink"]["nonce"] = json!(8);
    let tampered = SignedProfileLink::from_value(tampered).unwrap();
    assert_eq!(tampered.verify(None), Err(ProfileLinkError::BadSignature));
}
