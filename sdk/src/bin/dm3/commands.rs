//! The `dm3` subcommands: each reads its input, calls the library, and returns
//! what to print.

use clap::Subcommand;
use serde_json::json;

use dm3::canonical;
use dm3::encoding::b64_decode_array;
use dm3::keys::{ProfileKeys, storage_key_b64, storage_key_from_signature};
use dm3::message::Message;

use crate::io::{Failure, read_json};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the canonical serialization of the JSON on stdin.
    Canonical,
    /// Print `0x` + hex SHA-256 of the canonical form of a signed message.
    HashMessage,
    /// Derive DM3 key pairs.
    #[command(subcommand)]
    Keys(KeysCommand),
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
            let seed: [u8; 32] = b64_decode_array(&seed).map_err(|e| Failure::malformed(format!("seed: {e}")))?;
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
    }
}
