//! Gateway mode's inbox step: a sealed envelope as the network event that carries it
//! (docs/gateway.md sections 1 and 5), for a self-custody identity whose keys the node does not
//! hold.
//!
//! Nothing is opened and nothing re-serialized: the envelope's text goes into a gateway
//! document for this node (`deliveryService` is the node's name, the DS its delivery
//! information was sealed for), and the document into the network's form:
//! - Matrix: an `m.room.message` of `msgtype` `network.dm3.envelope` whose `body` is the
//!   fallback a client without DM3 support shows; sent as native content, so the connector
//!   writes it as it is, from the sender's ghost;
//! - Telegram: the document as a file `dm3-envelope.json` with the fallback as its caption; an
//!   inline attachment, which the connector uploads with the sender's name framed around the
//!   caption, as on every message of the bot chat that carries several DM3 contacts.
//!
//! The relay checked at submit that the envelope fits the network
//! ([`crate::delivery`]); a refusal here is permanent all the same (a job queued before a
//! switch of the receiver's network, which cannot happen today, or a corrupt row).

use ::dm3::ens::EnsName;
use ::dm3::gateway_envelope::{GatewayEnvelope, GatewayError, MatrixGatewayContent, TelegramGatewayDocument};
use dm3_bridge_connector::{
    Attachment, AttachmentError, Content, EventKind, Message, MimeType, NativeContent, NativeMessage, Text,
};

use crate::identities::network::Network;

/// Why a sealed envelope cannot become a network event.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("the envelope cannot be carried: {0}")]
    Gateway(#[from] GatewayError),
    #[error("the gateway document cannot be sent as a file: {0}")]
    File(#[from] AttachmentError),
    #[error("the Matrix content of the envelope is not a JSON object")]
    NotAnObject,
}

/// The event that carries `envelope` (its JSON text as its sender sealed it for `node`) to a
/// user of `network`.
pub fn sealed_event(network: Network, envelope: &str, node: &EnsName) -> Result<EventKind, SealedError> {
    let document = GatewayEnvelope::new(envelope, node.clone())?;
    match network {
        Network::Matrix => {
            let content = MatrixGatewayContent::encode(document)?.to_content();
            let serde_json::Value::Object(body) = content else {
                return Err(SealedError::NotAnObject);
            };
            let native = NativeContent::new(::dm3::gateway_envelope::matrix::EVENT_TYPE, body);
            Ok(EventKind::Native(Box::new(NativeMessage::new(native))))
        }
        Network::Telegram => {
            let document = TelegramGatewayDocument::encode(document)?;
            let mime = MimeType::new(document.mime_type())?;
            let attachment = Attachment::inline(document.file_name(), mime, document.file())?;
            let caption = Some(Text::plain(document.caption()));
            Ok(EventKind::Message(Message::new(Content::Attachment { attachment, caption })))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ::dm3::gateway_envelope::FALLBACK_TEXT;
    use dm3_bridge_connector::AttachmentSource;
    use serde_json::{Value, json};

    use super::*;

    /// An envelope as a sender seals it (the codec checks the shape, never the crypto).
    fn sealed_text() -> String {
        json!({
            "message": "c2VhbGVk",
            "metadata": {
                "version": "v1",
                "encryptionScheme": "x25519-chacha20-poly1305",
                "deliveryInformation": "ZW5jcnlwdGVk",
                "signature": "c2ln",
                "messageHash": format!("0x{}", "ab".repeat(32)),
            }
        })
        .to_string()
    }

    fn node() -> EnsName {
        EnsName::parse("ds.bridge.example.eth").unwrap()
    }

    #[test]
    fn matrix_gets_the_gateway_content_with_its_fallback() {
        let EventKind::Native(native) = sealed_event(Network::Matrix, &sealed_text(), &node()).unwrap()
        else {
            panic!("not native content");
        };
        assert_eq!(native.content.kind, "m.room.message");
        let body = Value::Object(native.content.body.clone());
        assert_eq!(body["msgtype"], "network.dm3.envelope");
        assert_eq!(body["body"], FALLBACK_TEXT);
        let document = &body["network.dm3.envelope"];
        assert_eq!(
            (&document["deliveryService"], &document["version"]),
            (&json!("ds.bridge.example.eth"), &json!(1))
        );
        assert_eq!(document["envelope"], sealed_text(), "the envelope's text as sealed, byte for byte");
        assert_eq!((native.reply_to.clone(), native.replaces.clone()), (None, None));
    }

    #[test]
    fn telegram_gets_the_document_as_a_file_with_the_fallback_caption() {
        let event = sealed_event(Network::Telegram, &sealed_text(), &node()).unwrap();
        let EventKind::Message(Message { content: Content::Attachment { attachment, caption }, .. }) = event
        else {
            panic!("not a file");
        };
        assert_eq!(
            (attachment.name(), attachment.mime().as_str()),
            ("dm3-envelope.json", "application/vnd.dm3.gateway+json")
        );
        assert_eq!(caption.unwrap().body, FALLBACK_TEXT);
        let AttachmentSource::Inline(bytes) = attachment.source() else { panic!("not inline") };
        let decoded = TelegramGatewayDocument::decode(bytes).unwrap();
        assert_eq!(decoded.envelope().envelope_text(), sealed_text());
    }

    #[test]
    fn a_stored_form_or_an_oversized_envelope_is_refused() {
        let mut stored: Value = serde_json::from_str(&sealed_text()).unwrap();
        stored["metadata"]["deliveryInformation"] = json!({"from": "a.eth", "to": "b.eth"});
        let refused = sealed_event(Network::Matrix, &stored.to_string(), &node());
        assert!(matches!(refused, Err(SealedError::Gateway(GatewayError::StoredForm))), "{refused:?}");
        let mut large: Value = serde_json::from_str(&sealed_text()).unwrap();
        large["message"] = json!("A".repeat(49 * 1024));
        let refused = sealed_event(Network::Matrix, &large.to_string(), &node());
        assert!(matches!(refused, Err(SealedError::Gateway(GatewayError::TooLarge { .. }))), "{refused:?}");
        assert!(
            sealed_event(Network::Telegram, &large.to_string(), &node()).is_ok(),
            "Telegram carries 1 MiB"
        );
    }
}
