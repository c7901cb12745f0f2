//! The DM3 protocol, byte-compatible with the reference TypeScript libraries.
//!
//! Everything here follows what `@dm3-org/dm3-lib-*` really does on the wire,
//! not only what the specification says; `docs/protocol.md`
//! lists the differences (cited below as P-numbers and §-sections). The crate
//! knows nothing about the bridge: no database, no server, no network.
//!
//! Layers, from the bottom:
//! - [`encoding`], [`hash`], [`canonical`]: bytes, hashes and the canonical JSON
//!   that every signature covers;
//! - [`crypto`]: key exchange, AEAD, Ed25519 and secp256k1;
//! - [`keys`]: deriving a user's DM3 keys from a wallet signature;
//! - [`name`]: ENS name normalization, shared by everything that compares names;
//! - [`data_uri`], [`text_record`]: the ENS text records profiles are published in;
//! - [`profile`], [`ds_profile`], [`profile_link`]: user and delivery-service
//!   profiles and profile links;
//! - [`message`]: the signed plaintext message, its builders and attachments;
//! - [`network`]: the networks a bridge speaks, by their wire names;
//! - [`bridge_names`]: the names a bridge gives people on those networks
//!   (`tg-12345.tg.bridge.example.eth`), computed and read back;
//! - [`bridge_payload`]: content already encoded for Matrix or Telegram,
//!   carried as one attachment, and the allow-list a bridge forwards it by;
//! - [`envelope`], [`postmark`]: sealing and opening per delivery service, and
//!   the delivery service's signed receipt;
//! - [`gateway_envelope`]: a sealed envelope carried as it is inside a Matrix event or a
//!   Telegram document, for gateway mode's clients that hold their own keys;
//! - [`auth`], [`ds_properties`], [`backend_storage`]: the delivery-service and
//!   backend APIs' signed and encrypted bodies;
//! - [`ens`], [`ccip`], [`resolver_api`]: names on chain, the CCIP-read
//!   (EIP-3668) codec and gateway signatures, and the offchain resolver's API.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dm3::crypto::signing::VerifyKey;
//! use dm3::envelope::Envelope;
//! use dm3::keys::ProfileKeys;
//! use dm3::message::MessageBuilder;
//!
//! let alice = ProfileKeys::from_seed(&[1; 32]);
//! let bob = ProfileKeys::from_seed(&[2; 32]);
//! let ds = ProfileKeys::from_seed(&[3; 32]);
//!
//! let message = MessageBuilder::now("bob.eth", "alice.eth").text("hi", None).sign(&alice.signing);
//! let envelope = Envelope::seal(&message, &alice.signing, bob.encryption.public(), ds.encryption.public())?;
//!
//! let opened = envelope.open(&bob.encryption)?; // checks metadata.messageHash
//! opened.message.verify(&VerifyKey::from_bytes(&alice.signing.public())?, "alice.eth")?;
//! assert_eq!(opened.message_hash, message.hash());
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod backend_storage;
pub mod bridge_names;
pub mod bridge_payload;
pub mod canonical;
pub mod ccip;
pub mod crypto;
pub mod data_uri;
pub mod ds_profile;
pub mod ds_properties;
pub mod encoding;
pub mod ens;
pub mod envelope;
pub mod gateway_envelope;
pub mod hash;
pub mod keys;
pub mod message;
pub mod name;
pub mod network;
pub mod postmark;
pub mod profile;
pub mod profile_link;
mod raw_json;
pub mod resolver_api;
pub mod text_record;
