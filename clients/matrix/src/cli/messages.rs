//! `rooms`, `join`, `claim`, `send` and `read`: the commands that act as the gateway user, each resuming the
//! stored session with the key file's keys.

use std::io::Write;
use std::time::Duration;

use dm3::crypto::eth::checksum;
use dm3::ens::EnsName;
use dm3::message::MessageBuilder;
use serde_json::{Value, json};

use super::{Cli, Failure, output};
use crate::gateway::envelopes::ReadEnvelope;
use crate::gateway::node::NodeClient;
use crate::gateway::{Dm3Keys, GatewayUser};
use crate::ids;
use crate::session::StoredSession;
use crate::wait::wait_for;

/// The gateway user of the key and session files, and the homeserver to store back.
async fn gateway_user(cli: &Cli) -> Result<(GatewayUser, String), Failure> {
    let keys = Dm3Keys::load(&cli.keys)?;
    let stored = StoredSession::load(&cli.session)?;
    let homeserver = stored.homeserver.clone();
    Ok((GatewayUser::new(stored.resume().await?, keys), homeserver))
}

/// Writes the session back with the device's crypto state as the command left it, whether
/// the command succeeded or not (a room key received before a failure is still the device's);
/// then answers the command's result.
async fn keep_session(
    cli: &Cli,
    homeserver: &str,
    user: &GatewayUser,
    result: Result<(), Failure>,
) -> Result<(), Failure> {
    StoredSession::of(homeserver, user.matrix()).await?.save(&cli.session)?;
    result
}

fn name(text: &str) -> Result<EnsName, Failure> {
    EnsName::parse(text).map_err(|e| Failure::Malformed(format!("{text:?} is not a DM3 name: {e}")))
}

pub async fn rooms(cli: &Cli, stdout: &mut dyn Write) -> Result<(), Failure> {
    let (user, homeserver) = gateway_user(cli).await?;
    let result = rooms_of(&user, stdout).await;
    keep_session(cli, &homeserver, &user, result).await
}

async fn rooms_of(user: &GatewayUser, stdout: &mut dyn Write) -> Result<(), Failure> {
    for room in user.matrix().rooms().await? {
        let line = json!({"roomId": room.room_id.as_str(), "membership": room.membership, "name": room.name,
            "encrypted": room.encrypted});
        output::line(stdout, &line)?;
    }
    Ok(())
}

pub async fn join(cli: &Cli, room: &str, stdout: &mut dyn Write) -> Result<(), Failure> {
    let room = ids::room_id(room)?;
    let (user, homeserver) = gateway_user(cli).await?;
    let result = match user.matrix().join(&room).await {
        Ok(()) => output::line(stdout, &json!({"roomId": room.as_str(), "membership": "joined"})),
        Err(error) => Err(error.into()),
    };
    keep_session(cli, &homeserver, &user, result).await
}

pub async fn claim(
    cli: &Cli,
    room: &str,
    node: &str,
    timeout_secs: u64,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let room = ids::room_id(room)?;
    let node = NodeClient::new(node).map_err(|e| Failure::Malformed(e.to_string()))?;
    let (user, homeserver) = gateway_user(cli).await?;
    let result = claim_as(&user, &room, &node, Duration::from_secs(timeout_secs), stdout).await;
    keep_session(cli, &homeserver, &user, result).await
}

async fn claim_as(
    user: &GatewayUser,
    room: &ids::RoomId,
    node: &NodeClient,
    timeout: Duration,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let outcome = user.claim(room, timeout).await?;
    // The bot's words are for people; what counts is that the node now serves the profile
    // signed here for the name (within a second on every replica, docs/gateway.md section 4).
    let name = outcome.challenge.name.clone();
    let wanted = outcome.profile.canonical();
    let served = wait_for(Duration::from_secs(5), "the node to serve the claimed profile", || async {
        Ok(node.profile(&name).await.ok().filter(|served| served.canonical() == wanted))
    })
    .await;
    if served.is_err() {
        return Err(Failure::Failed(format!(
            "the claim of {name} did not take; the bot answered: {}",
            outcome.reply
        )));
    }
    output::line(
        stdout,
        &json!({
            "name": name.as_str(),
            "node": outcome.challenge.node.as_str(),
            "address": checksum(&user.keys().wallet().address()),
            "reply": outcome.reply,
        }),
    )
}

pub async fn send(
    cli: &Cli,
    to: &str,
    room: &str,
    node: &str,
    from: Option<&str>,
    text: &str,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let (to, room) = (name(to)?, ids::room_id(room)?);
    let from = from.map(name).transpose()?;
    let node = NodeClient::new(node).map_err(|e| Failure::Malformed(e.to_string()))?;
    let (user, homeserver) = gateway_user(cli).await?;
    let result = send_as(&user, &to, &room, &node, from, text, stdout).await;
    keep_session(cli, &homeserver, &user, result).await
}

async fn send_as(
    user: &GatewayUser,
    to: &EnsName,
    room: &ids::RoomId,
    node: &NodeClient,
    from: Option<EnsName>,
    text: &str,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let from = match from {
        Some(from) => from,
        None => name(&node.lookup("matrix", user.matrix().user_id()?.as_str()).await?.name)?,
    };
    let recipient = node.recipient(to).await?;
    let message = MessageBuilder::now(to.as_str(), from.as_str())
        .text(text, None)
        .sign(&user.keys().profile_keys().signing);
    let sent = user.send_message(room, &recipient, &message).await?;
    let event_ids: Vec<&str> = sent.iter().map(|id| id.as_str()).collect();
    output::line(
        stdout,
        &json!({"eventIds": event_ids, "messageHash": message.hash().to_string(), "from": from.as_str(), "to": to.as_str()}),
    )
}

pub async fn read(cli: &Cli, room: &str, node: Option<&str>, stdout: &mut dyn Write) -> Result<(), Failure> {
    let room = ids::room_id(room)?;
    let node = node.map(NodeClient::new).transpose().map_err(|e| Failure::Malformed(e.to_string()))?;
    let (user, homeserver) = gateway_user(cli).await?;
    let result = read_as(&user, &room, node.as_ref(), stdout).await;
    keep_session(cli, &homeserver, &user, result).await
}

async fn read_as(
    user: &GatewayUser,
    room: &ids::RoomId,
    node: Option<&NodeClient>,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    for envelope in user.read_envelopes(room).await? {
        output::line(stdout, &describe(&envelope, node).await)?;
    }
    Ok(())
}

/// One envelope as a JSON line: the opened message, or why it could not be opened.
/// `verified` is whether the message's signature matches its sender's profile as the node
/// serves it, `null` without a node or for a sender the node does not serve.
async fn describe(envelope: &ReadEnvelope, node: Option<&NodeClient>) -> Value {
    let mut line = json!({
        "eventId": envelope.event_id.as_ref().map(|id| id.as_str()),
        "sender": envelope.sender.as_ref().map(|id| id.as_str()),
    });
    match &envelope.opened {
        Ok(opened) => {
            let mut verified = Value::Null;
            if let (Some(node), Ok(from)) = (node, EnsName::parse(opened.message.from()))
                && let Ok(profile) = node.profile(&from).await
            {
                verified = Value::Bool(opened.verify(&profile).is_ok());
            }
            line["deliveryService"] = json!(opened.delivery_service.as_str());
            line["messageHash"] = json!(opened.hash.to_string());
            line["message"] = opened.message.to_value();
            line["verified"] = verified;
        }
        Err(reason) => line["error"] = json!(reason),
    }
    line
}
