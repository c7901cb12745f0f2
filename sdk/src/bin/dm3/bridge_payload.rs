//! `dm3 bridge-payload …`: write, read, check and find bridge payloads
//! (`docs/bridge-payload.md`).
//!
//! `encode` checks the allow-list by default, because a client author wants
//! to hear "the bridge will refuse this" before sending, not after;
//! `--unchecked` writes content no allow-list covers, such as the original
//! Matrix event content the bridge attaches in the other direction.
//! Exit codes as everywhere: 1 when the allow-list refuses, 2 when the input
//! is not a payload at all.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use dm3::bridge_payload::{self, BridgePayload, FindError, Network};
use dm3::canonical;
use dm3::message::Message;

use crate::io::{Failure, read_input, read_json, read_stdin};

#[derive(Subcommand, Debug)]
pub enum BridgePayloadCommand {
    /// Encode content for a network as a bridge-payload attachment `{name, data}`.
    ///
    /// The input is `{"type", "content"}` (Matrix) or `{"method", "parameters"}`
    /// (Telegram) with `--network`, or a whole payload document as `decode` prints it.
    Encode {
        /// The target network: matrix or telegram.
        #[arg(long, value_parser = parse_network)]
        network: Option<Network>,
        /// Mark the content as encrypted (a Matrix `m.room.encrypted` event a client prepared).
        #[arg(long)]
        encrypted: bool,
        /// Skip the allow-list, e.g. to write content the bridge only ever receives.
        #[arg(long)]
        unchecked: bool,
        /// Read the JSON from this file instead of stdin (`-` is stdin).
        file: Option<PathBuf>,
    },
    /// Print the payload document of an attachment: a data: URI, a JSON string, or `{data, …}`.
    Decode,
    /// Decode an attachment and check it against the allow-list; prints `valid` or exits 1 with the reason.
    Validate,
    /// Print the bridge payload for a network among a DM3 message's attachments, or `null`.
    Find {
        /// The network whose payload to find: matrix or telegram.
        #[arg(long, value_parser = parse_network)]
        network: Network,
    },
}

fn parse_network(text: &str) -> Result<Network, String> {
    text.parse().map_err(|_| format!("`{text}` is not matrix or telegram"))
}

pub fn run(command: BridgePayloadCommand) -> Result<String, Failure> {
    match command {
        BridgePayloadCommand::Encode { network, encrypted, unchecked, file } => {
            let text = read_input(file.as_deref())?;
            let input: Value = serde_json::from_str(&text)
                .map_err(|error| Failure::malformed(format!("the input is not valid JSON: {error}")))?;
            let payload = payload_from_input(input, network, encrypted)?;
            if !unchecked {
                bridge_payload::validate(&payload).map_err(Failure::check)?;
            }
            let attachment = bridge_payload::attachment(&payload).map_err(Failure::malformed)?;
            Ok(canonical::stringify(&attachment.to_value()))
        }
        BridgePayloadCommand::Decode => Ok(read_attachment()?.to_json().to_string()),
        BridgePayloadCommand::Validate => {
            bridge_payload::validate(&read_attachment()?).map_err(Failure::check)?;
            Ok("valid".to_owned())
        }
        BridgePayloadCommand::Find { network } => {
            let message = Message::from_value(read_json()?).map_err(Failure::malformed)?;
            match bridge_payload::find(&message, network) {
                Ok(found) => Ok(found.map_or(Value::Null, |payload| payload.to_json()).to_string()),
                Err(error @ FindError::Decode { .. }) => Err(Failure::malformed(error)),
                Err(error @ FindError::MoreThanOne(_)) => Err(Failure::check(error)),
            }
        }
    }
}

/// Network content plus flags, or a whole document (which then names its own network).
fn payload_from_input(
    input: Value,
    network: Option<Network>,
    encrypted: bool,
) -> Result<BridgePayload, Failure> {
    let Value::Object(mut document) = input else {
        return Err(Failure::malformed("the input must be a JSON object"));
    };
    if document.contains_key("network") {
        if network.is_some() || encrypted {
            return Err(Failure::malformed(
                "the input is a whole payload document; it names its own network and encryption",
            ));
        }
    } else {
        let network =
            network.ok_or_else(|| Failure::malformed("--network is required for network content"))?;
        if document.contains_key("version") || document.contains_key("encrypted") {
            return Err(Failure::malformed("network content must not carry `version` or `encrypted`"));
        }
        document.insert("version".into(), json!(bridge_payload::VERSION));
        document.insert("network".into(), json!(network.as_str()));
        if encrypted {
            document.insert("encrypted".into(), json!(true));
        }
    }
    BridgePayload::from_json(Value::Object(document)).map_err(Failure::malformed)
}

/// An attachment on stdin: the bare URI, a JSON string, or an attachment object.
fn read_attachment() -> Result<BridgePayload, Failure> {
    let text = read_stdin()?;
    let text = text.trim();
    let uri = if text.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:")) {
        text.to_owned()
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::String(uri)) => uri,
            Ok(Value::Object(mut object)) => match object.remove("data") {
                Some(Value::String(uri)) => uri,
                _ => return Err(Failure::malformed("the attachment object has no string `data`")),
            },
            _ => {
                return Err(Failure::malformed(
                    "expected a data: URI, a JSON string or an attachment object",
                ));
            }
        }
    };
    bridge_payload::decode(&uri).map_err(Failure::malformed)
}
