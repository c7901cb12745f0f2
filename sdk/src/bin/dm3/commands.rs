//! The `dm3` subcommands: each reads its input, calls the library, and returns
//! what to print.

use clap::Subcommand;
use serde_json::json;

use dm3::canonical;
use dm3::crypto::eth::parse_address;
use dm3::crypto::kx::KxKeyPair;
use dm3::crypto::signing::{SigningKeyPair, VerifyKey};
use dm3::encoding::b64_decode_array;
use dm3::envelope::{Envelope, OpenError};
use dm3::keys::{ProfileKeys, storage_key_b64, storage_key_from_signature};
use dm3::message::{Message, MessageVerifyError};
use dm3::postmark::{Postmark, PostmarkError};
use dm3::profile::{ProfileVerifyError, SignedUserProfile};

use crate::bridge_payload::{self, BridgePayloadCommand};
use crate::gateway::{self, GatewayCommand};
use crate::io::{Failure, read_json, read_stdin};
use crate::names::{self, NameForArgs, ParseNameArgs};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the canonical serialization of the JSON on stdin.
    Canonical,
    /// Print `0x` + hex SHA-256 of the canonical form of a signed message.
    HashMessage,
    /// Derive DM3 key pairs.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign a message (stdin, without `signature`) with an Ed25519 key.
    SignMessage {
        /// The sender's Ed25519 private key: base64 of 64 bytes (seed ‖ public key).
        #[arg(long)]
        key: String,
    },
    /// Verify a signed message's Ed25519 signature; prints `valid` or exits 1.
    VerifyMessage {
        /// The sender's Ed25519 public key (base64).
        #[arg(long)]
        key: String,
    },
    /// Verify a signed user profile `{profile, signature}` against the wallet address.
    VerifyProfile {
        /// The `0x` address the profile's ENS name resolves to.
        #[arg(long)]
        address: String,
    },
    /// Seal a signed message into an envelope for one recipient at one delivery service.
    Seal {
        /// The sender's Ed25519 private key: base64 of 64 bytes (seed ‖ public key).
        #[arg(long)]
        sender_key: String,
        /// The recipient's X25519 public key (base64).
        #[arg(long)]
        recipient_key: String,
        /// The delivery service's X25519 public key (base64).
        #[arg(long)]
        ds_key: String,
    },
    /// Open an envelope in either format; decrypts the postmark if there is one.
    Open {
        /// The receiver's X25519 private key (base64).
        #[arg(long)]
        key: String,
        /// The delivery service's X25519 private key, to decrypt the delivery information.
        #[arg(long)]
        ds_key: Option<String>,
    },
    /// Encode, decode, validate and find bridge payloads (content already encoded for Matrix or Telegram).
    #[command(subcommand)]
    BridgePayload(BridgePayloadCommand),
    /// Wrap a sealed envelope for Matrix or Telegram (gateway mode), or unwrap it (docs/gateway.md).
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Print the DM3 name a bridge gives a Matrix or Telegram user (docs/names.md).
    NameFor(NameForArgs),
    /// Print the network and user id a bridge's DM3 name stands for (the reverse of name-for).
    ParseName(ParseNameArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// From a base64 32-byte seed (the storage key).
    FromSeed {
        /// base64 of 32 bytes
        seed: String,
    },
    /// From a wallet's `0x` signature of the storage-key creation message.
    FromSignature {
        /// `0x` + 130 hex digits
        signature: String,
    },
}

pub fn run(command: Command) -> Result<String, Failure> {
    match command {
        Command::Canonical => Ok(canonical::stringify(&read_json()?)),
        Command::HashMessage => {
            let message = Message::from_value(read_json()?).map_err(Failure::malformed)?;
            Ok(message.hash().to_string())
        }
        Command::Keys(KeysCommand::FromSeed { seed }) => {
            let seed: [u8; 32] =
                b64_decode_array(&seed).map_err(|e| Failure::malformed(format!("seed: {e}")))?;
            Ok(ProfileKeys::from_seed(&seed).to_json().to_string())
        }
        Command::Keys(KeysCommand::FromSignature { signature }) => {
            dm3::crypto::eth::EthSignature::parse(&signature)
                .map_err(|e| Failure::malformed(format!("signature: {e}")))?;
            let storage_key = storage_key_from_signature(&signature);
            let mut keys = ProfileKeys::from_seed(&storage_key).to_json();
            keys["storageKey"] = json!(storage_key_b64(&storage_key));
            Ok(keys.to_string())
        }
        Command::SignMessage { key } => {
            let key = SigningKeyPair::from_secret_b64(&key)
                .map_err(|e| Failure::malformed(format!("--key: {e}")))?;
            let message = Message::from_value(read_json()?).map_err(Failure::malformed)?;
            Ok(canonical::stringify(&message.sign(&key).into_value()))
        }
        Command::VerifyMessage { key } => {
            let key = VerifyKey::from_b64(&key).map_err(|e| Failure::malformed(format!("--key: {e}")))?;
            let message = Message::from_value(read_json()?).map_err(Failure::malformed)?;
            // The expected sender is the message's own `from`: this checks the signature alone.
            match message.verify(&key, message.from()) {
                Ok(()) => Ok("valid".to_owned()),
                Err(
                    error @ (MessageVerifyError::MalformedSignature | MessageVerifyError::InvalidName(_)),
                ) => Err(Failure::malformed(error)),
                Err(error) => Err(Failure::check(error)),
            }
        }
        Command::VerifyProfile { address } => {
            let address =
                parse_address(&address).map_err(|e| Failure::malformed(format!("--address: {e}")))?;
            let profile = SignedUserProfile::from_value(read_json()?).map_err(Failure::malformed)?;
            match profile.verify_against_address(&address) {
                Ok(()) => Ok("valid".to_owned()),
                Err(error @ ProfileVerifyError::MalformedSignature) => Err(Failure::malformed(error)),
                Err(error) => Err(Failure::check(error)),
            }
        }
        Command::Seal { sender_key, recipient_key, ds_key } => seal(&sender_key, &recipient_key, &ds_key),
        Command::Open { key, ds_key } => open(&key, ds_key.as_deref()),
        Command::BridgePayload(command) => bridge_payload::run(command),
        Command::Gateway(command) => gateway::run(command),
        Command::NameFor(args) => names::name_for(&args),
        Command::ParseName(args) => names::parse_name(&args),
    }
}

fn seal(sender_key: &str, recipient_key: &str, ds_key: &str) -> Result<String, Failure> {
    let sender = SigningKeyPair::from_secret_b64(sender_key)
        .map_err(|e| Failure::malformed(format!("--sender-key: {e}")))?;
    let recipient = public_key(recipient_key, "--recipient-key")?;
    let ds = public_key(ds_key, "--ds-key")?;
    let message = Message::from_value(read_json()?).map_err(Failure::malformed)?;
    let envelope = Envelope::seal(&message, &sender, &recipient, &ds).map_err(Failure::malformed)?;
    Ok(envelope.to_json())
}

fn open(key: &str, ds_key: Option<&str>) -> Result<String, Failure> {
    let receiver = KxKeyPair::from_secret_b64(key).map_err(|e| Failure::malformed(format!("--key: {e}")))?;
    let ds = ds_key
        .map(|k| KxKeyPair::from_secret_b64(k).map_err(|e| Failure::malformed(format!("--ds-key: {e}"))))
        .transpose()?;
    let envelope = Envelope::parse(&read_stdin()?).map_err(Failure::malformed)?;
    let opened = envelope.open(&receiver).map_err(open_failure)?;
    let mut output = json!({
        "message": opened.message.to_value(),
        "messageHash": opened.message_hash.to_string(),
    });
    // Plain delivery information (a stored envelope, P9) needs no key; an
    // encrypted one is opened only when the DS key is given.
    let delivery = match (ds, envelope.delivery_information_field()) {
        (_, dm3::envelope::DeliveryInformationField::Plain(plain)) => Some(plain.clone()),
        (Some(ds), _) => Some(envelope.delivery_information(&ds).map_err(open_failure)?),
        (None, _) => None,
    };
    if let Some(delivery) = delivery {
        output["deliveryInformation"] = delivery.to_value();
    }
    if envelope.postmark().is_some() {
        let postmark = Postmark::open_envelope(&envelope, &receiver).map_err(postmark_failure)?;
        output["postmark"] = postmark.to_value();
    }
    Ok(canonical::stringify(&output))
}

fn public_key(text: &str, flag: &str) -> Result<[u8; 32], Failure> {
    b64_decode_array(text).map_err(|e| Failure::malformed(format!("{flag}: {e}")))
}

/// Content that decrypts wrongly, or hashes wrongly, fails a check (exit 1);
/// a field that is not even an encrypted payload is malformed (exit 2).
fn open_failure(error: OpenError) -> Failure {
    match error {
        OpenError::MalformedPayload(_) => Failure::malformed(error),
        _ => Failure::check(error),
    }
}

fn postmark_failure(error: PostmarkError) -> Failure {
    match error {
        PostmarkError::MalformedPayload(_) => Failure::malformed(format!("postmark: {error}")),
        _ => Failure::check(format!("postmark: {error}")),
    }
}
