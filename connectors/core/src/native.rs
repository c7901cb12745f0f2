//! Content already in a network's own wire format, for the one optional capability that
//! crosses the neutral model on purpose.
//!
//! The neutral vocabulary ([`crate::message`]) is the intersection of what every network can
//! say. A DM3 client that knows the bridge can do better: it attaches the message already
//! encoded for the target network (a *bridge payload*, `docs/bridge-payload.md`), which the
//! bridge forwards verbatim instead of rendering the text. This module carries that content
//! from the engine to the connector without the crate learning any network's format: the
//! network's name for what to send ([`NativeContent::kind`]: a Matrix event type, a Telegram Bot
//! API method) and its JSON body, opaque here.
//!
//! As with edits or media in mautrix bridgev2, it is a capability a connector opts into
//! ([`crate::NativeHandling`], reached through [`crate::Connector::native`]); a connector
//! without it answers [`crate::Unsupported`] through [`crate::deliver`], never silence.
//!
//! The engine has already checked the content against the network's allow-list; the connector
//! still adds what only the bridge knows (where it goes, which message it answers or replaces,
//! and on Telegram the sender's name) and refuses, with a reason, anything it cannot send.
//!
//! The same type carries the other direction: [`crate::InboundEvent::original`] is the content
//! a network event had as received, which the engine attaches to the DM3 message it builds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::NetworkMessageId;

/// Content in a network's own format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeContent {
    /// What to send: the Matrix event type (`m.room.message`) or the Telegram Bot API method
    /// (`sendMessage`).
    pub kind: String,
    /// The network's JSON: the Matrix event content, or the Telegram method's parameters.
    pub body: Map<String, Value>,
}

impl NativeContent {
    pub fn new(kind: impl Into<String>, body: Map<String, Value>) -> Self {
        Self { kind: kind.into(), body }
    }
}

/// Native content to send as one message: new, a reply, or the replacement of an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeMessage {
    pub content: NativeContent,
    /// The message this one answers, on this network (the connector writes the relation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<NetworkMessageId>,
    /// The message this one replaces (an edit), on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<NetworkMessageId>,
}

impl NativeMessage {
    /// A new message of `content`.
    pub fn new(content: NativeContent) -> Self {
        Self { content, reply_to: None, replaces: None }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_without_absent_relations() {
        let body = json!({"msgtype": "m.text", "body": "hi"}).as_object().unwrap().clone();
        let mut message = NativeMessage::new(NativeContent::new("m.room.message", body));
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({"content": {"kind": "m.room.message", "body": {"msgtype": "m.text", "body": "hi"}}})
        );
        message.replaces = Some(NetworkMessageId::new("$old").unwrap());
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["replaces"], "$old");
        assert_eq!(serde_json::from_value::<NativeMessage>(json).unwrap(), message);
    }
}
