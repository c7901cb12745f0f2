//! `dm3_submitMessage`: from the received envelope to the durable, deduplicated insert.
//!
//! [`Relay::accept`] is the whole path in order, one step per line (docs/protocol.md §8):
//! 1. read `params[0]`: the envelope as a JSON string (reference) or, leniently, an object.
//!    The node's own in-process posts ([`crate::protocol::LocalSubmit`]) arrive parsed and
//!    start at step 2, so they pass exactly the checks a remote sender's envelope passes;
//! 2. size per `getEnvelopSize` (canonical bytes, §7.3) against `relay.size_limit`;
//! 3. npm format (P1): `encryptedMessageHash` must be the hash of the `message` string, the
//!    only binding between the signed metadata and that ciphertext a relay can check;
//! 4. open `deliveryInformation` with the node's X25519 key;
//! 5. the receiver (`to`, normalized) must have an account here: "unknown account";
//! 6. authenticate the sender, which the reference never does (P14): `from`'s verified
//!    profile is resolved and the metadata signature must verify with its key. A sender
//!    without a verifiable profile follows `relay.unresolved_sender`;
//! 7. postmark for the receiver: `incommingTimestamp` = now in milliseconds, encrypted to the
//!    receiver's current profile key (resolved now, else the registration copy), so the
//!    receiver can always open it (§8: an undecryptable postmark makes the messenger skip the
//!    message forever). Not for a virtual identity: the engine opens its envelope at once and
//!    no client ever fetches it, so a postmark would be sealed to a key only this node holds,
//!    for nobody to read (and cost an X25519 agreement and a signature per message);
//! 8. store the stored form (plain `deliveryInformation` and the postmark, P9), deduplicated
//!    by (receiver, hash), and answer only once the insert committed; for a virtual identity,
//!    queue it in the bridge's inbox instead, which first refuses a sender the receiver blocked
//!    or a portal suspended (-32012) and a sender or receiver past its rate limit (-32010;
//!    docs/relay.md, "Block and rate limits"): after step 6, so a forged `from` spends nobody's
//!    budget. For a self-custody identity (gateway mode, docs/gateway.md section 5) the
//!    envelope is queued as its sender sealed it, once it is known to fit the receiver's
//!    network (a Matrix event carries at most 48 KiB of envelope): the node holds none of the
//!    keys, so it carries the envelope unopened;
//! 9. a new envelope (not a duplicate) for an account is pushed to the receiver's live sockets
//!    ([`crate::protocol::LiveSink`]), after the commit: a client is never shown an envelope a
//!    crash could still lose, and a replay is never pushed twice. Only while the receiver has
//!    a socket is the stored text copied for it; a socket that connects during the commit gets
//!    the envelope by polling, as every client does after its login.
//!
//! The dedup and acknowledgement key is `metadata.messageHash` (current format). The npm
//! format has none, and the node cannot compute it (it cannot read the message), so there the
//! key is `metadata.encryptedMessageHash`: stable across replays of the same envelope, and the
//! value a client of that format acknowledges with. A duplicate answers `200 OK` like a new
//! envelope: the sender's retry succeeded. Stored envelopes leave only by acknowledgement or
//! TTL (P24, [`crate::expiry`]).
//!
//! Nothing of the envelope reaches a log line; a refusal is logged with its reason label only.

use dm3::canonical;
use dm3::ens::EnsName;
use dm3::envelope::{DeliveryInformation, DeliveryInformationField, Envelope, EnvelopeError, EnvelopeFormat};
use dm3::gateway_envelope::{GatewayEnvelope, GatewayError, MatrixGatewayContent, TelegramGatewayDocument};
use dm3::message::MessageHash;
use dm3::network::Network;
use dm3::postmark::stamp_envelope;
use dm3::profile::UserProfile;
use serde_json::Value;

use super::Relay;
use super::names::parse_name;
use crate::clock::now_ms;
use crate::config::UnresolvedSenderPolicy;
use crate::names::ResolveError;
use crate::names::directory::DirectoryError;
use crate::protocol::{Carriage, DeliveryError, Rejection};
use crate::store::{Inserted, NewEnvelope};
use crate::telemetry::metrics::{ENVELOPES_ACCEPTED, ENVELOPES_DUPLICATE, ENVELOPES_REJECTED};

/// Who an envelope is for.
enum Recipient {
    /// A DM3 user registered here: the envelope is stored for retrieval.
    Account,
    /// One of the node's virtual identities: the envelope goes to the bridge's inbox.
    VirtualIdentity,
    /// A self-custody identity (gateway mode): the envelope goes to the bridge's inbox as its
    /// sender sealed it, to be carried to the network user unopened.
    SelfCustody,
}

/// Whether the sender was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// The metadata signature verified with the sender's resolved profile key.
    Verified,
    /// The sender has no verifiable profile and `relay.unresolved_sender = "accept"`.
    Unverified,
}

impl Relay {
    /// `dm3_submitMessage`, with its metrics.
    pub(super) async fn submit(&self, params: &[Value]) -> Result<(), DeliveryError> {
        let accepted = match read_envelope(params) {
            Ok(envelope) => {
                // The text as the sender wrote it, which a self-custody identity gets byte for byte.
                let text = params.first().and_then(Value::as_str);
                self.accept(&envelope, text).await
            }
            Err(error) => Err(error),
        };
        counted(accepted)
    }

    /// An envelope this node posts in process (step 1 is the caller's), with its metrics.
    pub(super) async fn submit_parsed(&self, envelope: &Envelope) -> Result<(), DeliveryError> {
        counted(self.accept(envelope, None).await)
    }

    /// The path of one envelope from step 2 (see the module documentation for each step);
    /// `text` is its JSON text as received, when it came as text.
    async fn accept(
        &self,
        envelope: &Envelope,
        text: Option<&str>,
    ) -> Result<(Inserted, Sender), DeliveryError> {
        self.check_size(envelope)?;
        check_encrypted_message_hash(envelope)?;
        let delivery = self.open_delivery_information(envelope)?;
        let receiver = parse_name(delivery.to())?;
        let recipient = self.recipient(&receiver).await?;
        let sender_name = parse_name(delivery.from())?;
        let sender = self.authenticate_sender(envelope, &sender_name).await?;
        let now = now_ms();
        let stored = match &recipient {
            Recipient::Account => {
                let key = self.current_profile(&receiver, None).await?;
                self.postmark(envelope, &delivery, &receiver, &key, now).await?.to_json()
            }
            Recipient::VirtualIdentity => envelope.with_plain_delivery_information(&delivery).to_json(),
            Recipient::SelfCustody => self.sealed_for_network(envelope, text, &receiver)?,
        };
        let stored = NewEnvelope {
            receiver,
            sender: sender_name,
            message_hash: dedup_key(envelope)?,
            envelope: stored,
            received_at_ms: now,
            expires_at_ms: self.expiry(now),
        };
        let inserted = match recipient {
            Recipient::Account => self.store_for_account(stored).await?,
            Recipient::VirtualIdentity => self.queue_for_bridge(&stored, Carriage::Opened).await?,
            Recipient::SelfCustody => self.queue_for_bridge(&stored, Carriage::Sealed).await?,
        };
        Ok((inserted, sender))
    }

    fn check_size(&self, envelope: &Envelope) -> Result<(), DeliveryError> {
        let size = u64::try_from(envelope.size()).unwrap_or(u64::MAX);
        if size > self.relay.size_limit { Err(DeliveryError::TooLarge) } else { Ok(()) }
    }

    /// §8 step 2. The plain form (P9) is refused: it is what a DS stores, not what a sender
    /// sends, and its metadata signature can no longer be checked.
    fn open_delivery_information(&self, envelope: &Envelope) -> Result<DeliveryInformation, DeliveryError> {
        if let DeliveryInformationField::Plain(_) = envelope.delivery_information_field() {
            return Err(DeliveryError::rejected(
                Rejection::Undecryptable,
                "metadata.deliveryInformation must be encrypted to this node's publicEncryptionKey",
            ));
        }
        envelope.delivery_information(&self.encryption).map_err(|e| {
            DeliveryError::rejected(
                Rejection::Undecryptable,
                format!("metadata.deliveryInformation does not open with this node's key: {e}"),
            )
        })
    }

    /// §8 step 3: who the envelope is for. When the node bridges, a name under its parent is
    /// looked up among its enabled virtual identities first (from memory under load): an
    /// account cannot hold such a name, since registering one takes a signature of the
    /// address the node itself publishes for it. Then a registered account.
    async fn recipient(&self, receiver: &EnsName) -> Result<Recipient, DeliveryError> {
        if self.inbox.get().is_some() && self.local_names.is_virtual_identity_name(receiver) {
            match self.local_names.enabled_identity(receiver).await {
                // Its keys are the user's: carried sealed (docs/gateway.md section 5).
                Ok(Some(identity)) if identity.self_custody => {
                    return self.reachable_identity(receiver).map(|_| Recipient::SelfCustody);
                }
                Ok(Some(_)) => return self.reachable_identity(receiver),
                Ok(None) => {}
                Err(error) => {
                    return Err(super::accounts::resolve_failure(receiver, DirectoryError::Resolve(error)));
                }
            }
        }
        if self.store.account_exists(receiver).await? {
            return Ok(Recipient::Account);
        }
        Err(DeliveryError::rejected(Rejection::UnknownAccount, "unknown account"))
    }

    /// A virtual identity is a recipient only while its network runs on this node (an identity
    /// made for Telegram users on a node without `[telegram]` reaches nobody).
    fn reachable_identity(&self, receiver: &EnsName) -> Result<Recipient, DeliveryError> {
        let served = match (self.local_names.network_of(receiver), self.inbox.get()) {
            (Some(network), Some(inbox)) => inbox.serves(network).then_some(()).ok_or(network),
            // Only names the scheme parses as identities are enabled identities.
            _ => Ok(()),
        };
        match served {
            Ok(()) => Ok(Recipient::VirtualIdentity),
            Err(network) => Err(DeliveryError::rejected(
                Rejection::UnknownAccount,
                format!("{receiver} stands for a {network} user, and this node does not bridge {network}"),
            )),
        }
    }

    /// Steps 8 and 9 for an account: the durable insert, then the push to its live sockets.
    async fn store_for_account(&self, stored: NewEnvelope) -> Result<Inserted, DeliveryError> {
        let live = self.live.get().filter(|live| live.listening(&stored.receiver));
        let push = live.map(|live| (live, stored.receiver.clone(), stored.envelope.clone()));
        let inserted = self.store.insert_envelope(stored).await?;
        if let (Inserted::New, Some((live, receiver, envelope))) = (inserted, push) {
            live.stored(&receiver, &envelope);
        }
        Ok(inserted)
    }

    /// Hands an envelope for a virtual identity to the bridge's inbox, keyed like the stored
    /// envelopes (receiver, hash). Durable when this returns.
    async fn queue_for_bridge(
        &self,
        envelope: &NewEnvelope,
        carriage: Carriage,
    ) -> Result<Inserted, DeliveryError> {
        let Some(inbox) = self.inbox.get() else {
            return Err(DeliveryError::Internal("no bridge inbox for a virtual identity".to_owned()));
        };
        inbox.queue_envelope(envelope, self.local_names.network_of(&envelope.receiver), carriage).await
    }

    /// The text of the envelope for a self-custody identity, as its sender wrote it (or as the
    /// reference writes it, for the node's own posts), once it is known to
    /// fit the receiver's network (docs/gateway.md 1.2, 1.3): a Matrix event carries at most
    /// 48 KiB of envelope. Refused here rather than accepted and failed later, since the node
    /// cannot write a failure report as an identity whose keys it does not hold.
    fn sealed_for_network(
        &self,
        envelope: &Envelope,
        text: Option<&str>,
        receiver: &EnsName,
    ) -> Result<String, DeliveryError> {
        let node = EnsName::parse(&self.node_name)
            .map_err(|e| DeliveryError::Internal(format!("the node's name is not a name: {e}")))?;
        // The reference's answer to an envelope too large (413), as for `relay.size_limit`.
        let too_large = |e: GatewayError| match e {
            GatewayError::TooLarge { .. } => DeliveryError::TooLarge,
            other => DeliveryError::InvalidRequest(format!(
                "not an envelope a gateway carries to {receiver}: {other}"
            )),
        };
        let document = match text {
            Some(text) => GatewayEnvelope::new(text, node),
            None => GatewayEnvelope::from_envelope(envelope, node),
        }
        .map_err(too_large)?;
        let sealed = document.envelope_text().to_owned();
        match self.local_names.network_of(receiver) {
            Some(Network::Matrix) => MatrixGatewayContent::encode(document).map(|_| ()),
            Some(Network::Telegram) => TelegramGatewayDocument::encode(document).map(|_| ()),
            None => Ok(()),
        }
        .map_err(too_large)?;
        Ok(sealed)
    }

    /// The sender authentication the reference DS does not do (P14, §10.4 step 4).
    async fn authenticate_sender(
        &self,
        envelope: &Envelope,
        sender: &EnsName,
    ) -> Result<Sender, DeliveryError> {
        let policy = self.relay.unresolved_sender;
        let why = match self.directory.user_profile(sender).await {
            Ok(Some(verified)) => match verified.verify_key() {
                Ok(key) => {
                    return envelope.verify_metadata(&key).map(|()| Sender::Verified).map_err(|e| {
                        DeliveryError::rejected(
                            Rejection::BadSignature,
                            format!("bad signature: {e} (the signing key of {sender}'s profile)"),
                        )
                    });
                }
                Err(e) => format!("its profile has no usable signing key ({e})"),
            },
            Ok(None) => "it has no DM3 profile".to_owned(),
            Err(DirectoryError::Resolve(ResolveError::Unavailable(detail)))
                if policy == UnresolvedSenderPolicy::Reject =>
            {
                // Not the sender's fault, and a retry may succeed: 503, not a refusal.
                tracing::warn!(%detail, "name source unavailable while authenticating a sender");
                return Err(DeliveryError::Unavailable);
            }
            Err(e) => e.to_string(),
        };
        match policy {
            UnresolvedSenderPolicy::Reject => Err(DeliveryError::rejected(
                Rejection::UnresolvedSender,
                format!(
                    "unknown sender: {sender} cannot be authenticated, {why}; this node accepts only \
                     senders with a verifiable DM3 profile"
                ),
            )),
            UnresolvedSenderPolicy::Accept => Ok(Sender::Unverified),
        }
    }

    /// §8 step 7 and the stored form of step 8.
    async fn postmark(
        &self,
        envelope: &Envelope,
        delivery: &DeliveryInformation,
        receiver: &EnsName,
        profile: &UserProfile,
        now: i64,
    ) -> Result<Envelope, DeliveryError> {
        let key = profile.encryption_key().map_err(|e| {
            DeliveryError::Internal(format!("the profile of {receiver} has no usable encryption key: {e}"))
        })?;
        let timestamp = u64::try_from(now).unwrap_or_default();
        stamp_envelope(envelope, delivery, &key, &self.signing, timestamp)
            .map_err(|e| DeliveryError::Internal(format!("postmarking for {receiver} failed: {e}")))
    }

    /// `expires_at` of an envelope received `now`; `None` keeps it until acknowledged.
    fn expiry(&self, now: i64) -> Option<i64> {
        let ttl = i64::try_from(self.relay.message_ttl_ms()).unwrap_or(i64::MAX);
        (ttl > 0).then(|| now.saturating_add(ttl))
    }
}

/// The outcome of a submit, counted once for both entries.
fn counted(accepted: Result<(Inserted, Sender), DeliveryError>) -> Result<(), DeliveryError> {
    match accepted {
        Ok((Inserted::New, sender)) => {
            let label = if sender == Sender::Verified { "verified" } else { "unverified" };
            metrics::counter!(ENVELOPES_ACCEPTED, "sender" => label).increment(1);
            Ok(())
        }
        Ok((Inserted::Duplicate, _)) => {
            metrics::counter!(ENVELOPES_DUPLICATE).increment(1);
            Ok(())
        }
        Err(error) => {
            metrics::counter!(ENVELOPES_REJECTED, "reason" => error.label()).increment(1);
            tracing::debug!(reason = error.label(), "envelope refused");
            Err(error)
        }
    }
}

/// `params[0]` as an envelope (§9.1), with the reference's words for the common failures.
fn read_envelope(params: &[Value]) -> Result<Envelope, DeliveryError> {
    let param = params.first().ok_or_else(|| DeliveryError::InvalidRequest("Envelop missing".to_owned()))?;
    Envelope::from_rpc_param(param).map_err(|e| {
        DeliveryError::InvalidRequest(match e {
            EnvelopeError::NotJson => "Error parsing envelop".to_owned(),
            other => format!("invalid schema: {other}"),
        })
    })
}

/// npm format only: `encryptedMessageHash = sha256(stringify(message))` (P1, P3).
fn check_encrypted_message_hash(envelope: &Envelope) -> Result<(), DeliveryError> {
    if envelope.format() != EnvelopeFormat::EncryptedMessageHash {
        return Ok(());
    }
    let computed = MessageHash::of_canonical(&canonical::stringify_str(envelope.message()));
    if envelope.encrypted_message_hash() == Some(computed) {
        Ok(())
    } else {
        Err(DeliveryError::rejected(
            Rejection::HashMismatch,
            "metadata.encryptedMessageHash does not match the message: the envelope was altered",
        ))
    }
}

/// The hash the receiver dedups and acknowledges by, the one the sender wrote (see the module
/// documentation for the npm format); `Envelope` has checked that it is one, in either case.
fn dedup_key(envelope: &Envelope) -> Result<MessageHash, DeliveryError> {
    let field = envelope.format().hash_field();
    let text = envelope.metadata().get(field).and_then(Value::as_str).unwrap_or_default();
    text.parse().map_err(|e| DeliveryError::InvalidRequest(format!("metadata.{field}: {e}")))
}
