//! Sending on behalf of DM3 users: messages, edits, deletes, reactions, and portal answers.
//!
//! Everything is posted by the bot, so each message is rendered through the operator's
//! [`crate::format::SenderFormat`] to name its DM3 sender. Text goes as `parse_mode=HTML`: the
//! neutral HTML narrowed to Telegram's subset, or the escaped plain body; if Telegram still
//! refuses the markup, the plain body is sent instead (the content matters more than the look).
//!
//! Retries are safe where Telegram allows it: a repeated edit answers "message is not modified",
//! a repeated delete "message to delete not found", both taken as success; a repeated send is
//! answered from [`crate::sent_cache`] within this process. Ids of edits and reactions are
//! derived from their target ([`crate::ids`]).

use dm3_bridge_connector::{
    BoxFuture, ConnectorError, Content, ConversationId, Delete, DeleteHandling, Edit, EditHandling, Message,
    NetworkMessageId, NetworkUserId, Outbound, PortalHandling, PortalRequest, Reaction, ReactionHandling,
    RemoteIdentity, Text,
};
use teloxide_core::payloads::{
    EditMessageCaptionSetters as _, EditMessageTextSetters as _, SendMessageSetters as _,
    SetMessageReactionSetters as _,
};
use teloxide_core::prelude::Requester as _;
use teloxide_core::requests::Request as _;
use teloxide_core::types::{ChatId, MessageId, ParseMode, ReactionType};
use teloxide_core::{ApiError, RequestError};

use crate::answers::Answer;
use crate::connector::TelegramConnector;
use crate::errors::{classify, retry_after};
use crate::format::{self, MAX_TEXT_UNITS};
use crate::html::{self, escape};
use crate::ids::{self, MessageRef};
use crate::reply::reply_parameters;

impl TelegramConnector {
    /// `send_message`: a new message in the bot chat of the conversation.
    pub(crate) async fn send_new(
        &self,
        message: &Outbound<Message>,
    ) -> Result<NetworkMessageId, ConnectorError> {
        let (chat, _) = target(&message.conversation)?;
        if let Some(id) = self.sent.get(&message.idempotency_key) {
            tracing::debug!(key = %message.idempotency_key, "sent before by this process; not sent again");
            return Ok(id);
        }
        let reply_to = message.payload.reply_to.as_ref().and_then(|t| reply_target(chat, t));
        let sender = message.sender.as_str();
        let sent = match &message.payload.content {
            Content::Text(text) => self.send_text(chat, sender, text, false, reply_to).await?,
            Content::Notice(text) => self.send_text(chat, sender, text, true, reply_to).await?,
            Content::Attachment { attachment, caption } => {
                self.send_attachment(chat, sender, attachment, caption.as_ref(), reply_to).await?
            }
        };
        let id = ids::message_id(chat, sent.0);
        self.sent.insert(&message.idempotency_key, &id);
        self.remember_route(&id, &message.conversation).await;
        Ok(id)
    }

    async fn send_text(
        &self,
        chat: i64,
        sender: &str,
        text: &Text,
        notice: bool,
        reply_to: Option<i32>,
    ) -> Result<MessageId, ConnectorError> {
        let body = if notice { format::notice_html(text) } else { format::body_html(text) };
        let rendered = self.sender_format.render(sender, &body);
        check_length(rendered.visible_len, MAX_TEXT_UNITS, "text")?;
        let _turn = self.sends.turn(chat).await?;
        let post = |html: String| {
            let mut request = self.bot.send_message(ChatId(chat), html).parse_mode(ParseMode::Html);
            if let Some(target) = reply_to {
                request = request.reply_parameters(reply_parameters(target));
            }
            request.send()
        };
        match post(rendered.html).await {
            Ok(sent) => Ok(sent.id),
            Err(RequestError::Api(ApiError::CantParseEntities(reason))) => {
                tracing::warn!(reason, "Telegram refused the formatting; sending the plain text");
                let plain = self.sender_format.render(sender, &html::from_plain(&text.body));
                post(plain.html).await.map(|m| m.id).map_err(|e| self.failed(chat, e))
            }
            Err(e) => Err(self.failed(chat, e)),
        }
    }

    /// Classifies a failure, first pushing the chat's next slot past a 429's delay.
    pub(crate) fn failed(&self, chat: i64, error: RequestError) -> ConnectorError {
        if let Some(wait) = retry_after(&error) {
            self.sends.penalize(chat, wait);
        }
        classify(error)
    }

    /// Records the conversation of a relayed message, for replies to it. Best effort: the send
    /// happened, and failing it now would post it twice on retry; the engine's message map
    /// knows the message too.
    pub(crate) async fn remember_route(&self, id: &NetworkMessageId, conversation: &ConversationId) {
        if let Err(e) = self.state.record_route(id, conversation).await {
            tracing::warn!(message = %id, error = %e, "the route of a relayed message was not recorded");
        }
    }

    /// The Telegram message `id` refers to, which must be in `chat`.
    fn message_in(
        &self,
        chat: i64,
        id: &NetworkMessageId,
    ) -> Result<(MessageRef, Option<String>), ConnectorError> {
        let (message, suffix) =
            ids::parse_message_id(id).map_err(|e| ConnectorError::Permanent(e.to_string()))?;
        if message.chat != chat {
            return Err(ConnectorError::Permanent(format!(
                "message {id} is not in this conversation's chat"
            )));
        }
        Ok((message, suffix.map(str::to_owned)))
    }
}

impl EditHandling for TelegramConnector {
    fn send_edit<'a>(
        &'a self,
        edit: &'a Outbound<Edit>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (chat, _) = target(&edit.conversation)?;
            let (message, _) = self.message_in(chat, &edit.payload.target)?;
            let id = ids::derived_id(message, &format!("edit-{}", edit.idempotency_key))
                .map_err(|e| ConnectorError::Permanent(e.to_string()))?;
            let rendered =
                self.sender_format.render(edit.sender.as_str(), &format::body_html(&edit.payload.text));
            check_length(rendered.visible_len, MAX_TEXT_UNITS, "text")?;
            let _turn = self.sends.turn(chat).await?;
            let edit_text = |html: String| {
                self.bot
                    .edit_message_text(ChatId(chat), MessageId(message.message), html)
                    .parse_mode(ParseMode::Html)
                    .send()
            };
            let edit_caption = |html: String| {
                self.bot
                    .edit_message_caption(ChatId(chat), MessageId(message.message))
                    .caption(html)
                    .parse_mode(ParseMode::Html)
                    .send()
            };
            let mut result = edit_text(rendered.html.clone()).await.map(|_| ());
            if matches!(&result, Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("no text in the message"))
            {
                result = edit_caption(rendered.html).await.map(|_| ());
            }
            if let Err(RequestError::Api(ApiError::CantParseEntities(_))) = &result {
                let plain = self
                    .sender_format
                    .render(edit.sender.as_str(), &html::from_plain(&edit.payload.text.body));
                result = edit_text(plain.html).await.map(|_| ());
            }
            match result {
                Ok(()) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(id),
                Err(RequestError::Api(ApiError::MessageCantBeEdited)) => Err(ConnectorError::Permanent(
                    "Telegram lets the bot edit only the messages it sent, within 48 hours".to_owned(),
                )),
                Err(e) => Err(self.failed(chat, e)),
            }
        })
    }
}

impl DeleteHandling for TelegramConnector {
    fn send_delete<'a>(&'a self, delete: &'a Outbound<Delete>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let (chat, _) = target(&delete.conversation)?;
            let (message, suffix) = self.message_in(chat, &delete.payload.target)?;
            if suffix.as_deref().is_some_and(ids::is_user_reaction) {
                // Only the Telegram user can take back their reaction; deleting the message it
                // is on instead would destroy more than was asked.
                return Err(ConnectorError::Permanent(
                    "a Telegram user's reaction can be taken back only by that user".to_owned(),
                ));
            }
            // What the bot relayed in this conversation has its route (recorded when it was sent;
            // a delete of it runs after that send, in the conversation's order). Another
            // contact's messages in the same bot chat are not this sender's to touch.
            let base = ids::message_id(chat, message.message);
            let route =
                self.state.route_of(&base).await.map_err(|e| ConnectorError::Transient(e.to_string()))?;
            if route.as_ref().is_some_and(|r| r != &delete.conversation) {
                return Err(ConnectorError::Permanent(format!(
                    "message {base} belongs to another conversation"
                )));
            }
            if suffix.as_deref().is_some_and(|s| s.starts_with("reaction-")) {
                // The bot's reaction for this DM3 user: taking it back leaves the message alone.
                let _turn = self.sends.turn(chat).await?;
                let request = self
                    .bot
                    .set_message_reaction(ChatId(chat), MessageId(message.message))
                    .reaction(Vec::new());
                return request.send().await.map(|_| ()).map_err(|e| self.failed(chat, e));
            }
            if route.is_none() {
                // The Telegram user's own message: a bot may delete it in a private chat, so
                // Telegram would not stop a DM3 user who names it; the bridge must.
                return Err(ConnectorError::Permanent(format!(
                    "message {base} was not relayed by the bridge for this DM3 user (or is older than \
                     the bridge remembers), so it is not theirs to delete"
                )));
            }
            let _turn = self.sends.turn(chat).await?;
            match self.bot.delete_message(ChatId(chat), MessageId(message.message)).send().await {
                Ok(_) | Err(RequestError::Api(ApiError::MessageToDeleteNotFound)) => Ok(()),
                Err(RequestError::Api(ApiError::MessageCantBeDeleted)) => Err(ConnectorError::Permanent(
                    "Telegram lets the bot delete a message only within 48 hours of sending it".to_owned(),
                )),
                Err(e) => Err(self.failed(chat, e)),
            }
        })
    }
}

impl ReactionHandling for TelegramConnector {
    fn send_reaction<'a>(
        &'a self,
        reaction: &'a Outbound<Reaction>,
    ) -> BoxFuture<'a, Result<NetworkMessageId, ConnectorError>> {
        Box::pin(async move {
            let (chat, _) = target(&reaction.conversation)?;
            let (message, _) = self.message_in(chat, &reaction.payload.target)?;
            let id = ids::derived_id(message, &format!("reaction-{}", reaction.idempotency_key))
                .map_err(|e| ConnectorError::Permanent(e.to_string()))?;
            let _turn = self.sends.turn(chat).await?;
            let emoji = reaction.payload.key.as_str().to_owned();
            let request = self
                .bot
                .set_message_reaction(ChatId(chat), MessageId(message.message))
                .reaction(vec![ReactionType::Emoji { emoji: emoji.clone() }]);
            match request.send().await {
                Ok(_) => Ok(id),
                Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("REACTION_INVALID") => {
                    Err(ConnectorError::Permanent(format!(
                        "a Telegram bot can react only with Telegram's standard reaction emoji; {emoji} is not one"
                    )))
                }
                Err(e) => Err(self.failed(chat, e)),
            }
        })
    }
}

impl PortalHandling for TelegramConnector {
    /// A DM3 user writes to a Telegram user first: their conversation is in the user's private
    /// chat with the bot, whose id is the user's id. Nothing is sent until the first message.
    fn open_portal<'a>(
        &'a self,
        local: &'a NetworkUserId,
        remote: &'a RemoteIdentity,
    ) -> BoxFuture<'a, Result<ConversationId, ConnectorError>> {
        Box::pin(async move {
            let user = ids::parse_user_id(local)
                .ok_or_else(|| ConnectorError::Permanent(format!("`{local}` is not a Telegram user id")))?;
            let chat = i64::try_from(user)
                .map_err(|_| ConnectorError::Permanent(format!("`{local}` is out of range")))?;
            ids::conversation_id(chat, remote).map_err(|e| ConnectorError::Permanent(e.to_string()))
        })
    }

    fn join_portal<'a>(&'a self, request: &'a PortalRequest) -> BoxFuture<'a, Result<(), ConnectorError>> {
        // The bot chat exists and the user was told when they chose the contact.
        tracing::debug!(conversation = %request.conversation, "portal accepted by the engine");
        Box::pin(async { Ok(()) })
    }

    fn refuse_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let (chat, contact) = target(&request.conversation)?;
            let html = format!(
                "Messages to <b>{}</b> cannot be delivered: {}",
                escape(contact.as_str()),
                escape(reason)
            );
            self.answers.send(Answer { chat, html, reply_to: None });
            Ok(())
        })
    }
}

/// The chat and contact of a conversation.
pub(crate) fn target(conversation: &ConversationId) -> Result<(i64, RemoteIdentity), ConnectorError> {
    ids::parse_conversation(conversation).map_err(|e| ConnectorError::Permanent(e.to_string()))
}

/// The Telegram message a reply points at, if it is in `chat` (else the reply is sent plain).
pub(crate) fn reply_target(chat: i64, target: &NetworkMessageId) -> Option<i32> {
    match ids::parse_message_id(target) {
        Ok((message, _)) if message.chat == chat => Some(message.message),
        _ => {
            tracing::debug!(%target, "reply target outside this chat; sent without the reply");
            None
        }
    }
}

/// Refuses a text longer than Telegram takes, in words for the DM3 sender.
pub(crate) fn check_length(units: usize, max: usize, what: &str) -> Result<(), ConnectorError> {
    if units > max {
        return Err(ConnectorError::Permanent(format!(
            "the {what} is {units} characters long with the sender's name; Telegram takes at most {max}"
        )));
    }
    Ok(())
}
