//! One Telegram update, handled: commands answered, messages, edits and reactions
//! ([`crate::reactions`]) turned into inbound events, and the batch handed to the engine before the update is confirmed.
//!
//! Both ways of receiving (long polling, webhook) call [`UpdateHandler::handle`] once per
//! update and confirm the update to Telegram only when it returned `Ok`. The flow:
//! 1. **turn**: wait until the chat's previous update is done ([`crate::chat_order`]); updates
//!    of other chats run meanwhile.
//! 2. **plan**: read the chat state and decide what to queue, which state to change (current
//!    contact, routes, reactions) and what to answer. Planning changes no chat state (it may
//!    create the user's DM3 identity, which is idempotent), and may run again for the same
//!    update after a crash with the same result.
//! 3. **change the state**, unless the update is a replay, older than one the chat already had
//!    handled (in this process, or, the first time this process sees the chat, as the service
//!    recorded, [`ChatState::applied_update`]): then its state changes would undo a later one
//!    (a replayed `/to` after a newer `/to`). State writes are idempotent and come before the
//!    batch, so a crash in between loses nothing: the update comes again and writes the same.
//!    Then the update is recorded as the chat's newest applied one, so that a restart does not
//!    forget it.
//! 4. **accept**: hand the items to the [`InboundSink`] as one batch keyed `update-<update_id>`;
//!    a re-served update is a [`Accepted::Duplicate`] and queues nothing again.
//! 5. **answer**: only for a new batch, queue the bot's answers in their chat
//!    ([`crate::answers`]) and return: nothing here waits for a send slot, so one chat's
//!    backlog of answers holds up no other chat's updates. A crash between 4 and the send loses
//!    an answer, never a message.
//!
//! A failure of the service in 2 to 4 is an `Err`: the update stays unconfirmed and comes again.

use std::sync::{Arc, OnceLock};

use dm3_bridge_connector::{
    Accepted, Carried, ConversationId, EventKind, IdempotencyKey, Inbound, InboundBatch, InboundEvent,
    InboundSink, Message, NetworkId, NetworkMessageId, RemoteIdentity, SealedEnvelope, Unbridgeable,
};
use teloxide_core::types::{Message as TgMessage, Update, UpdateKind, User};

use crate::answers::{Answer, Answers};
use crate::chat_order::ChatOrder;
use crate::chat_order::REMEMBER;
use crate::config::LinkPolicy;
use crate::content;
use crate::entities;
use crate::html::escape;
use crate::ids::{self, IdsError};
use crate::state::{AppliedUpdate, ChatState, StateError, TelegramAccounts, TelegramUser};
use crate::updates;

/// The update could not be handled now; it must not be confirmed to Telegram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the update could not be handled now: {0}")]
pub struct HandleError(pub String);

/// Everything handling an update needs.
pub(crate) struct UpdateHandler {
    pub(crate) network: NetworkId,
    pub(crate) answers: Arc<Answers>,
    pub(crate) policy: LinkPolicy,
    pub(crate) sink: Arc<dyn InboundSink>,
    pub(crate) state: Arc<dyn ChatState>,
    pub(crate) accounts: Arc<dyn TelegramAccounts>,
    /// The bot's `@username`, known after `getMe`; for deep links and `/cmd@bot`.
    pub(crate) bot_username: OnceLock<String>,
    order: ChatOrder,
}

/// What one update leads to.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) items: Vec<Inbound>,
    pub(crate) changes: Vec<StateChange>,
    pub(crate) answers: Vec<Answer>,
}

/// A change of the chat state that an update makes (planning only reads the state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateChange {
    /// The chat writes to `contact` now.
    Contact { chat: i64, contact: RemoteIdentity },
    /// `message` belongs to `conversation`.
    Route { message: NetworkMessageId, conversation: ConversationId },
    /// The reaction event `reaction` stands for `slot` now.
    Reaction { slot: NetworkMessageId, reaction: NetworkMessageId },
    /// `user` blocks (or, `blocked = false`, unblocks) the DM3 user `sender`. A state change like
    /// the others, so an old `/block` served again after a later `/unblock` does not undo it.
    Block { user: TelegramUser, sender: RemoteIdentity, blocked: bool },
}

impl Plan {
    pub(crate) fn answer(chat: i64, html: impl Into<String>) -> Self {
        Self { answers: vec![Answer { chat, html: html.into(), reply_to: None }], ..Self::default() }
    }
}

/// A planning step that stops: the service is unavailable, or the user gets an answer instead.
pub(crate) enum Stop {
    Retry(String),
    Answer(Plan),
}

/// Maps a service error for `chat`: unavailable → retry, refused → tell the user.
pub(crate) fn refused(chat: i64) -> impl Fn(StateError) -> Stop {
    move |error| match error {
        StateError::Unavailable(reason) => Stop::Retry(reason),
        StateError::Refused(reason) => Stop::Answer(Plan::answer(chat, escape(&reason))),
    }
}

pub(crate) const NO_CONTACT: &str = "You are not writing to anyone yet, so this message was not sent.\n\
Choose a DM3 user with <code>/to alice.eth</code>, or reply to a message someone sent you here.";

impl UpdateHandler {
    pub(crate) fn new(
        network: NetworkId,
        answers: Arc<Answers>,
        policy: LinkPolicy,
        sink: Arc<dyn InboundSink>,
        state: Arc<dyn ChatState>,
        accounts: Arc<dyn TelegramAccounts>,
    ) -> Self {
        Self {
            network,
            answers,
            policy,
            sink,
            state,
            accounts,
            bot_username: OnceLock::new(),
            order: ChatOrder::default(),
        }
    }

    /// Handles `update`; `Ok` means it may be confirmed to Telegram.
    pub(crate) async fn handle(&self, update: &Update) -> Result<Accepted, HandleError> {
        let chat = updates::chat_of(update);
        let turn = self.order.begin(chat, update.id.0, self.recall(chat)).await?;
        let plan = match self.plan(update).await {
            Ok(plan) | Err(Stop::Answer(plan)) => plan,
            Err(Stop::Retry(reason)) => return Err(HandleError(reason)),
        };
        let plan = if turn.replayed() {
            tracing::debug!(
                update_id = update.id.0,
                "an update served again after a later one of its chat; its state changes are skipped"
            );
            plan
        } else {
            self.change_state(chat, update.id.0, plan).await?
        };
        let key =
            IdempotencyKey::new(format!("update-{}", update.id.0)).map_err(|e| HandleError(e.to_string()))?;
        let batch = InboundBatch { network: self.network.clone(), key, items: plan.items };
        let accepted = self.sink.accept(batch).await.map_err(|e| HandleError(e.to_string()))?;
        match accepted {
            Accepted::New => plan.answers.into_iter().for_each(|answer| self.answers.send(answer)),
            Accepted::Duplicate => {
                tracing::debug!(update_id = update.id.0, "update seen before; not handled again")
            }
        }
        Ok(accepted)
    }

    /// The service's record of `chat`'s newest update whose state changes were made, if it is
    /// recent enough to compare with (Telegram restarts its numbering only after a week
    /// without updates, and serves an update again for about a day).
    async fn recall(&self, chat: Option<i64>) -> Result<Option<u32>, HandleError> {
        let Some(chat) = chat else { return Ok(None) };
        let applied = self.state.applied_update(chat).await.map_err(|e| HandleError(e.to_string()))?;
        Ok(applied.filter(|applied| applied.within(REMEMBER)).map(|applied| applied.update_id))
    }

    /// Makes the state changes of `plan` (of update `update_id`), then records the update as
    /// the chat's newest applied one. A refusal replaces the plan with telling the user (as a
    /// refusal while planning does); unavailability leaves the update for later.
    async fn change_state(&self, chat: Option<i64>, update_id: u32, plan: Plan) -> Result<Plan, HandleError> {
        for change in &plan.changes {
            let done = match change {
                StateChange::Contact { chat, contact } => {
                    self.state.set_current_contact(*chat, contact).await
                }
                StateChange::Route { message, conversation } => {
                    self.state.record_route(message, conversation).await
                }
                StateChange::Reaction { slot, reaction } => self.state.record_reaction(slot, reaction).await,
                StateChange::Block { user, sender, blocked } => {
                    self.accounts.set_blocked(user, sender, *blocked).await
                }
            };
            match (done, chat) {
                (Ok(()), _) => {}
                (Err(StateError::Refused(reason)), Some(chat)) => {
                    return Ok(Plan::answer(chat, escape(&reason)));
                }
                (Err(StateError::Refused(reason) | StateError::Unavailable(reason)), _) => {
                    return Err(HandleError(reason));
                }
            }
        }
        if let (Some(chat), false) = (chat, plan.changes.is_empty()) {
            self.state
                .record_applied(chat, AppliedUpdate::now(update_id))
                .await
                .map_err(|e| HandleError(e.to_string()))?;
        }
        Ok(plan)
    }

    async fn plan(&self, update: &Update) -> Result<Plan, Stop> {
        match &update.kind {
            UpdateKind::Message(message) => self.plan_message(message).await,
            UpdateKind::EditedMessage(message) => self.plan_edit(update.id.0, message).await,
            UpdateKind::MessageReaction(reaction) => self.plan_reaction(update.id.0, reaction).await,
            other => {
                tracing::debug!(
                    update_id = update.id.0,
                    kind = kind_name(other),
                    "update of a kind the bridge does not handle"
                );
                Ok(Plan::default())
            }
        }
    }

    /// The sender of a message in a private chat, if the bridge should look at it at all.
    fn private_sender<'m>(&self, message: &'m TgMessage) -> Option<&'m User> {
        let user = message.from.as_ref()?;
        if !message.chat.is_private() || user.is_bot {
            tracing::debug!(
                chat = message.chat.id.0,
                "message outside a private chat with a person; ignored"
            );
            return None;
        }
        Some(user)
    }

    async fn plan_message(&self, message: &TgMessage) -> Result<Plan, Stop> {
        let Some(user) = self.private_sender(message) else { return Ok(Plan::default()) };
        let chat = message.chat.id.0;
        if !self.policy.allows(user.id.0) {
            tracing::info!(user = user.id.0, "a Telegram user outside the link policy wrote to the bot");
            return Ok(Plan::answer(
                chat,
                format!(
                    "This bridge is not open to your Telegram account (id <code>{}</code>). \
                     Ask its operator to add you.",
                    user.id.0
                ),
            ));
        }
        if let Some(text) = message.text()
            && text.starts_with('/')
        {
            return self.plan_command(chat, &telegram_user(user), text).await;
        }
        self.plan_relay(chat, user, message).await
    }

    /// A message to a DM3 user: to the sender of the message it replies to, or to the current
    /// contact.
    async fn plan_relay(&self, chat: i64, user: &User, message: &TgMessage) -> Result<Plan, Stop> {
        let reply_to = message.reply_to_message().map(|m| ids::message_id(chat, m.id.0));
        let routed = match &reply_to {
            Some(target) => self.state.route_of(target).await.map_err(refused(chat))?,
            None => None,
        };
        let conversation = match routed {
            Some(conversation) => conversation,
            None => match self.state.current_contact(chat).await.map_err(refused(chat))? {
                Some(contact) => ids::conversation_id(chat, &contact).map_err(|e| id_problem(chat, e))?,
                None => return Ok(Plan::answer(chat, NO_CONTACT)),
            },
        };
        let id = ids::message_id(chat, message.id.0);
        let sender = ids::user_id(user.id.0);
        let item = match (content::gateway_document(message), content::of_message(message)) {
            // A sealed envelope from the user's own client (gateway mode): for the engine to check.
            (Some(Ok(file)), _) => Inbound::Sealed(SealedEnvelope {
                conversation: conversation.clone(),
                sender,
                network_event_id: id.clone(),
                carried: Carried::File(file),
            }),
            (Some(Err(reason)), _) => Inbound::Unbridgeable(Unbridgeable {
                conversation: conversation.clone(),
                sender,
                network_event_id: id.clone(),
                reason,
            }),
            (None, Ok(content)) => Inbound::Event(InboundEvent {
                conversation: conversation.clone(),
                sender,
                network_event_id: id.clone(),
                timestamp_ms: timestamp_ms(message),
                kind: EventKind::Message(Message { content, reply_to }),
                original: content::original_call(message).map(Box::new),
            }),
            (None, Err(reason)) => Inbound::Unbridgeable(Unbridgeable {
                conversation: conversation.clone(),
                sender,
                network_event_id: id.clone(),
                reason,
            }),
        };
        let route = StateChange::Route { message: id, conversation };
        Ok(Plan { items: vec![item], changes: vec![route], ..Plan::default() })
    }

    /// An edit of a message the user sent earlier: an edit in the conversation it went to.
    async fn plan_edit(&self, update_id: u32, message: &TgMessage) -> Result<Plan, Stop> {
        let Some(user) = self.private_sender(message) else { return Ok(Plan::default()) };
        let chat = message.chat.id.0;
        if !self.policy.allows(user.id.0) {
            return Ok(Plan::default());
        }
        let target = ids::message_id(chat, message.id.0);
        let Some(conversation) = self.state.route_of(&target).await.map_err(refused(chat))? else {
            // A command or a message that went nowhere: nothing to edit on the DM3 side.
            return Ok(Plan::default());
        };
        let sender = ids::user_id(user.id.0);
        let event_id = edit_event_id(chat, message.id.0, update_id)?;
        let text = match (message.text(), message.caption()) {
            (Some(text), _) => Some(entities::to_text(text, message.entities().unwrap_or_default())),
            (None, Some(caption)) => {
                Some(entities::to_text(caption, message.caption_entities().unwrap_or_default()))
            }
            (None, None) => None,
        };
        let item = match text {
            Some(text) => Inbound::Event(InboundEvent {
                conversation,
                sender,
                network_event_id: event_id,
                // Edits are dated in seconds too; the update id tells a second's edits apart.
                timestamp_ms: message.edit_date().map_or_else(
                    || timestamp_ms(message),
                    |d| with_millis(d.timestamp_millis(), i32::try_from(update_id % 1000).unwrap_or(0)),
                ),
                kind: EventKind::Edit(dm3_bridge_connector::Edit { target, text }),
                original: content::original_call(message).map(Box::new),
            }),
            None => Inbound::Unbridgeable(Unbridgeable {
                conversation,
                sender,
                network_event_id: event_id,
                reason: "replacing the file of a message is not sent to DM3 users; send the new file"
                    .to_owned(),
            }),
        };
        Ok(Plan { items: vec![item], ..Plan::default() })
    }
}

fn edit_event_id(chat: i64, message: i32, update_id: u32) -> Result<NetworkMessageId, Stop> {
    ids::derived_id(ids::MessageRef { chat, message }, &format!("edit-{update_id}"))
        .map_err(|e| Stop::Retry(format!("no id for an edit: {e}")))
}

/// An id problem the user caused (a name too long): said to them.
pub(crate) fn id_problem(chat: i64, error: IdsError) -> Stop {
    Stop::Answer(Plan::answer(chat, escape(&error.to_string())))
}

pub(crate) fn telegram_user(user: &User) -> TelegramUser {
    TelegramUser { id: user.id.0, username: user.username.clone(), display_name: user.full_name() }
}

/// When `message` was sent, in milliseconds. Telegram dates messages in whole seconds, and the
/// engine builds the DM3 message from the event alone (so that a retry hashes the same), so two
/// alike messages of one second ("ok", "ok") would be one DM3 message, and the second would be
/// dropped as a duplicate. The message id, one more for each message of a chat, fills the
/// milliseconds: distinct within a second, and the same whenever the update is handled again.
/// (Across a thousand boundary of ids, two messages of one second sort the wrong way round.)
fn timestamp_ms(message: &TgMessage) -> u64 {
    with_millis(message.date.timestamp_millis(), message.id.0)
}

/// Whole-second `date_ms` with `sequence` (an id that grows) as its milliseconds.
pub(crate) fn with_millis(date_ms: i64, sequence: i32) -> u64 {
    let seconds_ms = u64::try_from(date_ms.max(0)).unwrap_or_default() / 1000 * 1000;
    seconds_ms + u64::from(sequence.rem_euclid(1000).unsigned_abs())
}

fn kind_name(kind: &UpdateKind) -> &'static str {
    match kind {
        UpdateKind::ChannelPost(_) | UpdateKind::EditedChannelPost(_) => "channel post",
        UpdateKind::CallbackQuery(_) => "callback query",
        UpdateKind::MyChatMember(_) | UpdateKind::ChatMember(_) => "chat member",
        UpdateKind::Error(_) => "unknown to teloxide",
        _ => "other",
    }
}
