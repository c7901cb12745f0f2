//! The one place an outbound event is gated on capabilities and routed to a connector trait.
//!
//! The engine calls [`deliver`] for every outbound event. It asks the connector what the
//! conversation can carry, refuses with a named [`Unsupported`] if the event does not fit, and
//! otherwise calls the required or capability trait for the event's kind. A connector that
//! lacks the capability trait gets the same refusal as a conversation that lacks the feature,
//! so an engine bug or a connector that overstates its capabilities still ends in an explicit
//! status, never in silence.

use crate::capabilities::{Feature, Unsupported};
use crate::connector::{Connector, ConnectorError};
use crate::event::{EventKind, Outbound};
use crate::id::NetworkMessageId;

/// Sends `event` through `connector`; answers the network id of what was created, if anything
/// was (deletes and receipts create nothing the bridge needs to remember).
pub async fn deliver(
    connector: &dyn Connector,
    event: &Outbound<EventKind>,
) -> Result<Option<NetworkMessageId>, ConnectorError> {
    let capabilities = connector.capabilities(&event.conversation).await?;
    capabilities.check(&event.payload)?;
    let missing = |feature| ConnectorError::Unsupported(Unsupported::Feature(feature));
    match &event.payload {
        EventKind::Message(message) => {
            connector.send_message(&event.with_payload(message.clone())).await.map(Some)
        }
        EventKind::Edit(edit) => {
            let edits = connector.edits().ok_or(missing(Feature::Edit))?;
            edits.send_edit(&event.with_payload(edit.clone())).await.map(Some)
        }
        EventKind::Reaction(reaction) => {
            let reactions = connector.reactions().ok_or(missing(Feature::Reaction))?;
            reactions.send_reaction(&event.with_payload(reaction.clone())).await.map(Some)
        }
        EventKind::Delete(delete) => {
            let deletes = connector.deletes().ok_or(missing(Feature::Delete))?;
            deletes.send_delete(&event.with_payload(delete.clone())).await.map(|()| None)
        }
        EventKind::ReadReceipt(receipt) => {
            let receipts = connector.receipts().ok_or(missing(Feature::ReadReceipt))?;
            receipts.send_receipt(&event.with_payload(receipt.clone())).await.map(|()| None)
        }
        EventKind::Native(native) => {
            let handler = connector.native().ok_or(missing(Feature::Native))?;
            handler.send_native(&event.with_payload(native.as_ref().clone())).await.map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Mutex;

    use super::*;
    use crate::capabilities::Capabilities;
    use crate::future::BoxFuture;
    use crate::id::{ConversationId, IdempotencyKey, NetworkId, RemoteIdentity};
    use crate::message::{Content, Message, Reaction, ReactionKey, Text};

    /// Claims every feature but implements only the required trait.
    struct TextOnly {
        network: NetworkId,
        sent: Mutex<Vec<String>>,
    }

    impl Connector for TextOnly {
        fn network(&self) -> &NetworkId {
            &self.network
        }
        fn start(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
            Box::pin(async { Ok(()) })
        }
        fn stop(&self) -> BoxFuture<'_, Result<(), ConnectorError>> {
            Box::pin(async { Ok(()) })
        }
        fn capabilities<'a>(
            &'a self,
            _: &'a ConversationId,
        ) -> BoxFuture<'a, Result<Capabilities, ConnectorError>> {
            Box::pin(async { Ok(Capabilities::full(1024)) })
        }
        fn send_message<'a>(
            &'a self,
            message: &'a Outbound<Message>,
        ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
            Box::pin(async move {
                self.sent.lock().unwrap().push(message.idempotency_key.to_string());
                NetworkMessageId::new(format!("${}", message.idempotency_key))
                    .map_err(|e| ConnectorError::Permanent(e.to_string()))
            })
        }
    }

    fn outbound(payload: EventKind) -> Outbound<EventKind> {
        Outbound {
            conversation: ConversationId::new("!room").unwrap(),
            sender: RemoteIdentity::new("alice.eth").unwrap(),
            idempotency_key: IdempotencyKey::new("k1").unwrap(),
            timestamp_ms: None,
            retry: false,
            payload,
        }
    }

    #[tokio::test]
    async fn messages_go_through_and_missing_capability_traits_are_unsupported() {
        let connector = TextOnly { network: NetworkId::new("test").unwrap(), sent: Mutex::default() };
        let text = outbound(EventKind::Message(Message::new(Content::Text(Text::plain("hi")))));
        let id = deliver(&connector, &text).await.unwrap();
        assert_eq!(id.unwrap().as_str(), "$k1");
        let reaction = outbound(EventKind::Reaction(Reaction {
            target: NetworkMessageId::new("$k1").unwrap(),
            key: ReactionKey::new("👍").unwrap(),
        }));
        assert_eq!(
            deliver(&connector, &reaction).await,
            Err(ConnectorError::Unsupported(Unsupported::Feature(Feature::Reaction)))
        );
        let native = outbound(EventKind::Native(Box::new(crate::native::NativeMessage::new(
            crate::native::NativeContent::new("m.room.message", serde_json::Map::new()),
        ))));
        assert_eq!(
            deliver(&connector, &native).await,
            Err(ConnectorError::Unsupported(Unsupported::Feature(Feature::Native))),
            "a connector without the native capability refuses by name"
        );
        assert_eq!(connector.sent.lock().unwrap().len(), 1);
    }
}
