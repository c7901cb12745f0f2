//! Inbox step 1: open a stored envelope addressed to a virtual identity and prove who sent it.
//!
//! The relay stored the envelope in its delivery-service form (docs/protocol.md P9): the message
//! still encrypted to the receiver, `metadata.deliveryInformation` already decrypted to
//! `{to, from}`, and a postmark. What the relay checked at submit (the metadata signature,
//! against the sender's profile) covers the *envelope*; nothing yet says that the message
//! inside is the sender's. The reference DS and messenger never check it (P14), and a bridge
//! that injects into another network must (§10.4), so [`open_inbound`]:
//! 1. requires `deliveryInformation.to` to be the identity whose keys it was given;
//! 2. opens `message` with the first key version that opens it (a rotation keeps retired
//!    versions only for envelopes in flight) and checks the envelope's hash field (§5.3, P1);
//! 3. resolves the sender named by `deliveryInformation.from` through the [`Directory`] (a
//!    profile counts only if signed by the address the name resolves to, §4.2) and verifies
//!    the message signature with its signing key, as `checkMessageSignature` does, including
//!    `metadata.from` = the delivery information's `from` after normalization (§5.3);
//! 4. requires `metadata.to` to be the receiver too, so a message signed for someone else
//!    cannot be replayed into this conversation.
//!
//! Errors are [`InboundError`]: retryable only when the name source did not answer; everything
//! else is a property of the message and permanent.

use ::dm3::crypto::kx::KxKeyPair;
use ::dm3::ens::EnsName;
use ::dm3::envelope::{DeliveryInformationField, Envelope, OpenError};
use ::dm3::message::{Attachment, Message, MessageHash, MessageType, MessageVerifyError};
use ::dm3::name::normalize_ens_name;

use super::failure::FailureKind;
use crate::identities::keys::IdentityKeys;
use crate::names::ResolveError;
use crate::names::directory::{Directory, DirectoryError};

/// A message that opened, verified and is consistent with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedMessage {
    /// The sender, as the delivery information names it (normalized).
    pub sender: EnsName,
    /// The receiver: the virtual identity that opened it (normalized).
    pub receiver: EnsName,
    /// `sha256(stringify(message))`, the id everything else refers to (§5.3).
    pub message_hash: MessageHash,
    pub kind: MessageType,
    /// The `message` field: text (maybe Markdown), an emoji for REACTION, absent for
    /// DELETE_REQUEST.
    pub text: Option<String>,
    /// `metadata.referenceMessageHash`, parsed.
    pub reference: Option<MessageHash>,
    /// `attachments`, every entry read without losing fields (P17).
    pub attachments: Vec<Attachment>,
    /// `metadata.timestamp`, milliseconds since the epoch, as the sender stamped it.
    pub timestamp_ms: u64,
    /// The signed message exactly as received.
    pub message: Message,
    /// The key version that opened it.
    pub key_version: u32,
}

/// Why an inbound envelope is not bridged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the stored envelope is malformed: {0}")]
    MalformedEnvelope(String),
    #[error("the envelope's delivery information is still encrypted; only stored envelopes are bridged")]
    NotStored,
    #[error("the envelope is addressed to {addressed}, not to {receiver}")]
    WrongReceiver { receiver: String, addressed: String },
    #[error("{0} has no keys to open envelopes with")]
    NoKeys(String),
    #[error("the message cannot be opened with the keys of {receiver}: {reason}")]
    Undecryptable { receiver: String, reason: String },
    #[error("the sender {sender} cannot be authenticated: {reason}")]
    UnknownSender { sender: String, reason: String },
    #[error("the message signature is not {sender}'s: {reason}")]
    BadSignature { sender: String, reason: String },
    #[error("the message claims to be from {claimed}, but the envelope was sent by {sender}")]
    InconsistentSender { sender: String, claimed: String },
    #[error("the message is addressed to {claimed}, but the envelope to {receiver}")]
    InconsistentReceiver { receiver: String, claimed: String },
    #[error("the message is malformed: {0}")]
    MalformedMessage(String),
    #[error("the name source did not answer while resolving {name}: {detail}")]
    NameSourceUnavailable { name: String, detail: String },
}

impl InboundError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::NameSourceUnavailable { .. } => FailureKind::RETRY,
            _ => FailureKind::Permanent,
        }
    }
}

/// Opens and authenticates `envelope_json`, a stored envelope for `receiver`, with the
/// receiver's key versions (`IdentityVault::opening_keys`, newest first).
pub async fn open_inbound(
    envelope_json: &str,
    receiver: &EnsName,
    keys: &[IdentityKeys],
    directory: &Directory,
) -> Result<OpenedMessage, InboundError> {
    let envelope =
        Envelope::parse(envelope_json).map_err(|e| InboundError::MalformedEnvelope(e.to_string()))?;
    let (addressed, sender) = delivery_names(&envelope)?;
    if &addressed != receiver {
        return Err(InboundError::WrongReceiver {
            receiver: receiver.to_string(),
            addressed: addressed.to_string(),
        });
    }
    let versions = keys.iter().map(|k| (k.version(), &k.profile_keys().encryption));
    let (opened, key_version) = open_with_any(&envelope, receiver, versions)?;
    let message = opened.message;
    verify_sender(&message, &sender, directory).await?;
    check_receiver(&message, receiver)?;
    read(message, opened.message_hash, sender, receiver.clone(), key_version)
}

/// `deliveryInformation` `{to, from}` of the stored form, both normalized.
fn delivery_names(envelope: &Envelope) -> Result<(EnsName, EnsName), InboundError> {
    let DeliveryInformationField::Plain(delivery) = envelope.delivery_information_field() else {
        return Err(InboundError::NotStored);
    };
    let parse = |name: &str| {
        EnsName::parse(name)
            .map_err(|e| InboundError::MalformedEnvelope(format!("`{name}` is not a name: {e}")))
    };
    Ok((parse(delivery.to())?, parse(delivery.from())?))
}

/// Tries each key version in turn; only "not encrypted to this key" moves on to the next.
fn open_with_any<'k>(
    envelope: &Envelope,
    receiver: &EnsName,
    versions: impl Iterator<Item = (u32, &'k KxKeyPair)>,
) -> Result<(::dm3::envelope::OpenedEnvelope, u32), InboundError> {
    let undecryptable =
        |reason: String| InboundError::Undecryptable { receiver: receiver.to_string(), reason };
    let mut tried = 0;
    for (version, key) in versions {
        tried += 1;
        match envelope.open(key) {
            Ok(opened) => return Ok((opened, version)),
            Err(OpenError::WrongKey) => continue,
            Err(other) => return Err(undecryptable(other.to_string())),
        }
    }
    if tried == 0 {
        return Err(InboundError::NoKeys(receiver.to_string()));
    }
    Err(undecryptable(format!("none of its {tried} key version(s) opens it")))
}

/// §10.4 steps 4 and 5: the signature is the sender's, and the message says it is from them.
async fn verify_sender(
    message: &Message,
    sender: &EnsName,
    directory: &Directory,
) -> Result<(), InboundError> {
    let unknown = |reason: String| InboundError::UnknownSender { sender: sender.to_string(), reason };
    let profile = match directory.user_profile(sender).await {
        Ok(Some(verified)) => verified,
        Ok(None) => return Err(unknown("the name has no DM3 profile".to_owned())),
        Err(DirectoryError::Resolve(ResolveError::Unavailable(detail))) => {
            return Err(InboundError::NameSourceUnavailable { name: sender.to_string(), detail });
        }
        Err(other) => return Err(unknown(other.to_string())),
    };
    let key =
        profile.verify_key().map_err(|e| unknown(format!("its profile has no usable signing key ({e})")))?;
    message.verify(&key, sender.as_str()).map_err(|e| match e {
        MessageVerifyError::WrongSender { actual, .. } => {
            InboundError::InconsistentSender { sender: sender.to_string(), claimed: actual }
        }
        other => InboundError::BadSignature { sender: sender.to_string(), reason: other.to_string() },
    })
}

/// `metadata.to` names the receiver (normalized as the reference compares names, §2.2).
fn check_receiver(message: &Message, receiver: &EnsName) -> Result<(), InboundError> {
    let inconsistent = || InboundError::InconsistentReceiver {
        receiver: receiver.to_string(),
        claimed: message.to().to_owned(),
    };
    let claimed = normalize_ens_name(message.to()).map_err(|_| inconsistent())?;
    let expected = normalize_ens_name(receiver.as_str()).map_err(|_| inconsistent())?;
    if claimed == expected { Ok(()) } else { Err(inconsistent()) }
}

/// The typed view of a verified message.
fn read(
    message: Message,
    message_hash: MessageHash,
    sender: EnsName,
    receiver: EnsName,
    key_version: u32,
) -> Result<OpenedMessage, InboundError> {
    let malformed = |what: String| InboundError::MalformedMessage(what);
    let reference = message
        .reference_message_hash()
        .map(|text| text.parse::<MessageHash>().map_err(|e| malformed(format!("referenceMessageHash: {e}"))))
        .transpose()?;
    let attachments = message
        .parsed_attachments()
        .into_iter()
        .enumerate()
        .map(|(index, parsed)| parsed.map_err(|e| malformed(format!("attachment {index}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OpenedMessage {
        sender,
        receiver,
        message_hash,
        kind: message.kind(),
        text: message.text().map(str::to_owned),
        reference,
        attachments,
        timestamp_ms: timestamp_ms(message.timestamp()),
        message,
        key_version,
    })
}

/// A JS number of milliseconds as `u64`: negative, fractional or absurd values are clamped
/// (the timestamp is informative; the postmark orders messages, §8).
fn timestamp_ms(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        // `as` saturates at u64::MAX for floats out of range.
        value as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::Arc;

    use ::dm3::envelope::DeliveryInformation;
    use ::dm3::message::MessageBuilder;
    use serde_json::json;

    use super::*;
    use crate::engine::dm3::testkit::{self, Unreachable, User};
    use crate::names::directory::NoLinks;

    struct World {
        alice: User,
        bob: User,
        mallory: User,
        directory: Directory,
    }

    fn world() -> World {
        let (alice, bob, mallory) =
            (User::new("alice.eth"), User::new("tg-1.bridge.eth"), User::new("mallory.eth"));
        let directory = testkit::directory(testkit::resolver(&[&alice, &mallory], &[]));
        World { alice, bob, mallory, directory }
    }

    async fn open(world: &World, stored: &str) -> Result<OpenedMessage, InboundError> {
        open_inbound(stored, &world.bob.name, std::slice::from_ref(&world.bob.keys), &world.directory).await
    }

    #[tokio::test]
    async fn a_genuine_message_opens_with_its_sender_and_fields() {
        let w = world();
        let target = w.alice.sign(w.alice.builder_to(&w.bob, 1).text("first", None));
        let message = w.alice.sign(w.alice.builder_to(&w.bob, 1_700_000_000_123).reply(
            "**hi** bob",
            &target.hash(),
            Some(vec![Attachment::named("a.txt", "data:text/plain,hey")]),
        ));
        let opened = open(&w, &testkit::stored_for(&message, &w.alice, &w.bob)).await.unwrap();
        assert_eq!(opened.sender, w.alice.name);
        assert_eq!(opened.receiver, w.bob.name);
        assert_eq!(opened.message_hash, message.hash());
        assert_eq!(opened.kind, MessageType::Reply);
        assert_eq!(opened.text.as_deref(), Some("**hi** bob"));
        assert_eq!(opened.reference, Some(target.hash()));
        assert_eq!(opened.attachments, vec![Attachment::named("a.txt", "data:text/plain,hey")]);
        assert_eq!(opened.timestamp_ms, 1_700_000_000_123);
        assert_eq!(opened.message, message);
        assert_eq!(opened.key_version, 1);
    }

    #[tokio::test]
    async fn a_retired_key_version_still_opens_envelopes_sealed_to_it() {
        let w = world();
        let retired = User::with_version("tg-1.bridge.eth", 1);
        let current = User::with_version("tg-1.bridge.eth", 2);
        let message = w.alice.sign(w.alice.builder_to(&w.bob, 5).text("in flight", None));
        let stored = testkit::stored_for(&message, &w.alice, &retired);
        let keys = [current.keys, retired.keys];
        let opened = open_inbound(&stored, &w.bob.name, &keys, &w.directory).await.unwrap();
        assert_eq!(opened.key_version, 1);
        let error = open_inbound(&stored, &w.bob.name, &keys[..1], &w.directory).await.unwrap_err();
        assert!(matches!(error, InboundError::Undecryptable { .. }), "{error}");
        assert_eq!(error.kind(), FailureKind::Permanent);
        let error = open_inbound(&stored, &w.bob.name, &[], &w.directory).await.unwrap_err();
        assert_eq!(error, InboundError::NoKeys("tg-1.bridge.eth".into()));
    }

    #[tokio::test]
    async fn a_signature_by_anyone_but_the_sender_is_refused() {
        let w = world();
        // Mallory signs a message that claims to be Alice's and sends it as Alice.
        let forged = w.mallory.sign(w.alice.builder_to(&w.bob, 5).text("send me money", None));
        let error = open(&w, &testkit::stored_for(&forged, &w.alice, &w.bob)).await.unwrap_err();
        assert!(
            matches!(&error, InboundError::BadSignature { sender, .. } if sender == "alice.eth"),
            "{error}"
        );
        assert_eq!(error.kind(), FailureKind::Permanent);

        // Alice's genuine message with its text changed after signing.
        let genuine = w.alice.sign(w.alice.builder_to(&w.bob, 5).text("hello", None));
        let mut value = genuine.to_value();
        value["message"] = json!("hello, send me money");
        let tampered = Message::from_value(value).unwrap();
        let error = open(&w, &testkit::stored_for(&tampered, &w.alice, &w.bob)).await.unwrap_err();
        assert!(matches!(error, InboundError::BadSignature { .. }), "{error}");

        // No signature at all.
        let unsigned = w.alice.builder_to(&w.bob, 5).text("hello", None);
        let mut value = unsigned.to_value();
        value["signature"] = json!("AAAA");
        let malformed = Message::from_value(value).unwrap();
        let error = open(&w, &testkit::stored_for(&malformed, &w.alice, &w.bob)).await.unwrap_err();
        assert!(matches!(error, InboundError::BadSignature { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_message_from_someone_else_than_the_envelope_sender_is_refused() {
        let w = world();
        // Mallory signs with her own key a message claiming to be from Alice, and sends it in
        // her own envelope: the signature is hers, the claim is not.
        let claimed = w.mallory.sign(w.alice.builder_to(&w.bob, 5).text("it's alice", None));
        let delivery = DeliveryInformation::new(w.bob.name.as_str(), w.mallory.name.as_str());
        let stored = testkit::stored(&claimed, &w.mallory, w.bob.encryption().public(), &delivery);
        assert_eq!(
            open(&w, &stored).await.unwrap_err(),
            InboundError::InconsistentSender { sender: "mallory.eth".into(), claimed: "alice.eth".into() }
        );
        // Names compare normalized, as the reference compares them.
        let shouting = w.alice.sign(MessageBuilder::new("TG-1.Bridge.eth", "Alice.ETH", 5).text("hi", None));
        let opened = open(&w, &testkit::stored_for(&shouting, &w.alice, &w.bob)).await.unwrap();
        assert_eq!(opened.sender, w.alice.name);
    }

    #[tokio::test]
    async fn a_message_for_someone_else_is_not_replayed_here() {
        let w = world();
        let carol = User::new("carol.eth");
        // Alice's genuine message to Carol, re-sealed to Bob.
        let to_carol = w.alice.sign(w.alice.builder_to(&carol, 5).text("for carol", None));
        let delivery = DeliveryInformation::new(w.bob.name.as_str(), w.alice.name.as_str());
        let stored = testkit::stored(&to_carol, &w.alice, w.bob.encryption().public(), &delivery);
        assert_eq!(
            open(&w, &stored).await.unwrap_err(),
            InboundError::InconsistentReceiver {
                receiver: "tg-1.bridge.eth".into(),
                claimed: "carol.eth".into()
            }
        );
        // An envelope delivered to Carol handed to Bob's inbox.
        let to_carol_stored = testkit::stored_for(&to_carol, &w.alice, &carol);
        assert_eq!(
            open(&w, &to_carol_stored).await.unwrap_err(),
            InboundError::WrongReceiver { receiver: "tg-1.bridge.eth".into(), addressed: "carol.eth".into() }
        );
    }

    #[tokio::test]
    async fn senders_without_a_profile_fail_and_an_unreachable_name_source_is_retried() {
        let w = world();
        let stranger = User::new("stranger.eth");
        let message = stranger.sign(stranger.builder_to(&w.bob, 5).text("hi", None));
        let stored = testkit::stored_for(&message, &stranger, &w.bob);
        let error = open(&w, &stored).await.unwrap_err();
        assert!(matches!(error, InboundError::UnknownSender { .. }), "{error}");
        assert_eq!(error.kind(), FailureKind::Permanent);

        let offline = Directory::new(Arc::new(Unreachable), Arc::new(NoLinks));
        let error = open_inbound(&stored, &w.bob.name, std::slice::from_ref(&w.bob.keys), &offline)
            .await
            .unwrap_err();
        assert!(matches!(error, InboundError::NameSourceUnavailable { .. }), "{error}");
        assert!(error.kind().is_retryable());
    }

    #[tokio::test]
    async fn only_well_formed_stored_envelopes_are_opened() {
        let w = world();
        let message = w.alice.sign(w.alice.builder_to(&w.bob, 5).text("hi", None));
        let ds = KxKeyPair::generate();
        let sealed = Envelope::seal(
            &message,
            &w.alice.keys.profile_keys().signing,
            w.bob.encryption().public(),
            ds.public(),
        )
        .unwrap();
        assert_eq!(open(&w, &sealed.to_value().to_string()).await.unwrap_err(), InboundError::NotStored);
        assert!(matches!(open(&w, "{}").await.unwrap_err(), InboundError::MalformedEnvelope(_)));

        let mut value = w.alice.builder_to(&w.bob, 5).text("hi", None).to_value();
        value["metadata"]["referenceMessageHash"] = json!("0x1234");
        let bad_reference = w.alice.sign(Message::from_value(value).unwrap());
        let error = open(&w, &testkit::stored_for(&bad_reference, &w.alice, &w.bob)).await.unwrap_err();
        assert!(matches!(error, InboundError::MalformedMessage(_)), "{error}");
    }

    #[test]
    fn timestamps_are_clamped() {
        assert_eq!(timestamp_ms(1.5e12), 1_500_000_000_000);
        assert_eq!(timestamp_ms(-5.0), 0);
        assert_eq!(timestamp_ms(f64::NAN), 0);
        assert_eq!(timestamp_ms(1e300), u64::MAX);
    }
}
