//! `dm3 gateway wrap|unwrap`: a sealed envelope into a Matrix event's content or a Telegram
//! document, and back (`docs/gateway.md` section 1).
//!
//! `unwrap` prints the envelope text exactly as it was carried, so `wrap | unwrap` gives back
//! what the sealing client wrote, byte for byte (but the newline every `dm3` output ends with).
//! Exit codes as everywhere: 2 for input that is not what it should be (no envelope, not a
//! gateway document, an unknown version, too large for the network).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use dm3::canonical;
use dm3::ens::EnsName;
use dm3::gateway_envelope::{GatewayEnvelope, MatrixGatewayContent, TelegramGatewayDocument};
use dm3::network::Network;

use crate::io::{Failure, read_input};
use crate::names::parse_network;

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Wrap an envelope (its JSON text) as Matrix event content or a Telegram document.
    Wrap {
        /// The network to carry it: matrix or telegram.
        #[arg(long, value_parser = parse_network)]
        network: Network,
        /// The ENS name of the delivery service the envelope is sealed for.
        #[arg(long)]
        delivery_service: String,
        /// Read the envelope from this file instead of stdin (`-` is stdin).
        file: Option<PathBuf>,
    },
    /// Print the envelope text carried by Matrix event content or a Telegram document's file.
    Unwrap {
        /// The network that carried it: matrix or telegram.
        #[arg(long, value_parser = parse_network)]
        network: Network,
        /// Print {"deliveryService", "envelope"} instead of the envelope text alone.
        #[arg(long)]
        json: bool,
        /// Read the content or the file from this file instead of stdin (`-` is stdin).
        file: Option<PathBuf>,
    },
}

pub fn run(command: GatewayCommand) -> Result<String, Failure> {
    match command {
        GatewayCommand::Wrap { network, delivery_service, file } => {
            let delivery_service = EnsName::parse(&delivery_service)
                .map_err(|e| Failure::malformed(format!("--delivery-service: {e}")))?;
            let envelope = GatewayEnvelope::new(&read_input(file.as_deref())?, delivery_service)
                .map_err(Failure::malformed)?;
            let wrapped = match network {
                Network::Matrix => {
                    MatrixGatewayContent::encode(envelope).map_err(Failure::malformed)?.to_content()
                }
                Network::Telegram => {
                    let document = TelegramGatewayDocument::encode(envelope).map_err(Failure::malformed)?;
                    json!({
                        "caption": document.caption(),
                        "file": String::from_utf8_lossy(&document.file()),
                        "fileName": document.file_name(),
                        "mimeType": document.mime_type(),
                    })
                }
            };
            Ok(canonical::stringify(&wrapped))
        }
        GatewayCommand::Unwrap { network, json, file } => {
            let input = read_input(file.as_deref())?;
            let envelope = match network {
                Network::Matrix => {
                    let content: Value = serde_json::from_str(&input)
                        .map_err(|e| Failure::malformed(format!("the input is not valid JSON: {e}")))?;
                    MatrixGatewayContent::decode(&content).map_err(Failure::malformed)?.into_envelope()
                }
                Network::Telegram => TelegramGatewayDocument::decode(input.as_bytes())
                    .map_err(Failure::malformed)?
                    .into_envelope(),
            };
            if !json {
                return Ok(envelope.envelope_text().to_owned());
            }
            let output = json!({
                "deliveryService": envelope.delivery_service().as_str(),
                "envelope": envelope.envelope_text(),
            });
            Ok(canonical::stringify(&output))
        }
    }
}
