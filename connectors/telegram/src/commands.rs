//! The bot's commands: how a Telegram user links to DM3 and picks whom they write to.
//!
//! | command | does |
//! |---|---|
//! | `/start` | creates (or finds) the user's DM3 identity and tells them its name |
//! | `/start <payload>` | the same, then `/to` the DM3 name the deep link encodes ([`crate::deep_link`]) |
//! | `/to <DM3 name>` | checks the name exists, makes it the current contact, asks the engine for the portal |
//! | `/who` | the current contact |
//! | `/contacts` | the recent contacts, most recent first |
//! | `/block [<DM3 name>]` | the bridge refuses that DM3 user's messages to this user (the current contact without a name) |
//! | `/unblock [<DM3 name>]` | lifts the block |
//! | `/claim [<JSON>]` | gateway mode: the claim challenge for the user's own name, or the signed claim (docs/gateway.md section 3) |
//! | `/help` | the commands |
//!
//! Setting a contact emits an [`Inbound::PortalRequest`] in the update's batch, so the engine
//! records the portal (`<chat>/<DM3 name>`) durably together with the update, and a
//! [`StateChange::Contact`], which the update handler makes before the batch is stored, unless
//! the update is a replay ([`crate::chat_order`]). A block is such a change too
//! ([`StateChange::Block`]), so an old `/block` served again cannot undo a later `/unblock`.

use dm3_bridge_connector::{CommandVerb, Inbound, PortalRequest, RemoteIdentity};

use crate::deep_link;
use crate::handler::{Plan, StateChange, Stop, UpdateHandler, id_problem, refused};
use crate::html::escape;
use crate::ids;
use crate::state::{StateError, TelegramUser};

/// Contacts listed by `/contacts`.
const RECENT_CONTACTS: usize = 10;
/// How often a DM3 name lookup is tried while its source is unavailable, and the first pause.
const LOOKUP_ATTEMPTS: u32 = 3;
const LOOKUP_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// Longest DM3 name the bot looks up (ENS names are shorter in practice; this bounds the lookup).
const MAX_NAME_INPUT_BYTES: usize = 255;

/// A command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    Start(Option<&'a str>),
    To(&'a str),
    Who,
    Contacts,
    Block(Option<&'a str>),
    Unblock(Option<&'a str>),
    Claim(Option<&'a str>),
    Help,
    Unknown(&'a str),
}

/// `/name[@bot] args`; `None` if the command is addressed to another bot.
pub(crate) fn parse<'a>(text: &'a str, bot_username: Option<&str>) -> Option<Command<'a>> {
    let text = text.strip_prefix('/')?;
    let (head, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let args = args.trim();
    let (name, addressee) = head.split_once('@').map_or((head, None), |(n, b)| (n, Some(b)));
    if let (Some(addressee), Some(me)) = (addressee, bot_username)
        && !addressee.eq_ignore_ascii_case(me)
    {
        return None;
    }
    let arg = (!args.is_empty()).then_some(args);
    // Block, unblock and help are the vocabulary every network shares (connectors/core's
    // `command`); the rest is the bot chat's own.
    if let Some(verb) = CommandVerb::parse(name) {
        return Some(match verb {
            CommandVerb::Block => Command::Block(arg),
            CommandVerb::Unblock => Command::Unblock(arg),
            CommandVerb::Claim => Command::Claim(arg),
            CommandVerb::Help => Command::Help,
        });
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "start" => Command::Start(arg),
        "to" => Command::To(args),
        "who" => Command::Who,
        "contacts" => Command::Contacts,
        _ => Command::Unknown(name),
    })
}

pub(crate) const HELP: &str = "This bot connects you with DM3 users (dm3.network).\n\n\
/to <i>name</i> — write to a DM3 user, e.g. <code>/to alice.eth</code>; what you send next goes to them\n\
/who — whom you are writing to\n\
/contacts — whom you wrote to lately\n\
/block <i>name</i> — refuse a DM3 user's messages (without a name: whom you are writing to)\n\
/unblock <i>name</i> — take their messages again\n\
/claim — hold your DM3 name with your own wallet (gateway mode): the challenge to sign, then <code>/claim {…}</code> with the signed claim\n\
/start — your own DM3 name, which DM3 users write to\n\
/help — this text\n\n\
Messages from DM3 users appear here with their name in front. Reply to one to answer its sender, \
whoever you are writing to. Note: messages pass through this bridge and Telegram's servers in readable \
form; they are end-to-end encrypted only between the bridge and DM3.";

impl UpdateHandler {
    pub(crate) async fn plan_command(
        &self,
        chat: i64,
        user: &TelegramUser,
        text: &str,
    ) -> Result<Plan, Stop> {
        let Some(command) = parse(text, self.bot_username.get().map(String::as_str)) else {
            return Ok(Plan::default());
        };
        match command {
            Command::Start(payload) => self.start(chat, user, payload).await,
            Command::To(name) => self.set_contact(chat, user, name).await,
            Command::Who => {
                let html = match self.state.current_contact(chat).await.map_err(refused(chat))? {
                    Some(contact) => format!("You are writing to <b>{}</b>.", escape(contact.as_str())),
                    None => "You are not writing to anyone. Choose someone with <code>/to alice.eth</code>."
                        .to_owned(),
                };
                Ok(Plan::answer(chat, html))
            }
            Command::Contacts => {
                let contacts =
                    self.state.recent_contacts(chat, RECENT_CONTACTS).await.map_err(refused(chat))?;
                let current = self.state.current_contact(chat).await.map_err(refused(chat))?;
                if contacts.is_empty() {
                    return Ok(Plan::answer(
                        chat,
                        "No contacts yet. Write to someone with <code>/to alice.eth</code>.",
                    ));
                }
                let mut html = "Your recent contacts:\n".to_owned();
                for contact in contacts {
                    let marker = if current.as_ref() == Some(&contact) { " ← current" } else { "" };
                    html.push_str(&format!("• <code>{}</code>{marker}\n", escape(contact.as_str())));
                }
                html.push_str("Switch with /to <i>name</i>.");
                Ok(Plan::answer(chat, html))
            }
            Command::Block(name) => self.set_blocked(chat, user, name, true).await,
            Command::Unblock(name) => self.set_blocked(chat, user, name, false).await,
            Command::Claim(claim) => {
                let reply = self.accounts.claim(user, claim).await.map_err(refused(chat))?;
                let mut html = escape(&reply.text);
                if let Some(challenge) = reply.challenge {
                    html.push_str(&format!("\n\n<pre>{}</pre>", escape(&challenge)));
                }
                Ok(Plan::answer(chat, html))
            }
            Command::Help => Ok(Plan::answer(chat, HELP)),
            Command::Unknown(name) => {
                Ok(Plan::answer(chat, format!("There is no command /{}. /help lists them.", escape(name))))
            }
        }
    }

    async fn start(&self, chat: i64, user: &TelegramUser, payload: Option<&str>) -> Result<Plan, Stop> {
        let own = self.accounts.link(user).await.map_err(refused(chat))?;
        let mut html = format!(
            "Welcome! Your DM3 name is <b>{}</b>. DM3 users can write to you at that name; their messages \
             appear here with their name in front.\n\nTo write to a DM3 user, send <code>/to alice.eth</code>, \
             then your message. /help lists the commands.",
            escape(own.as_str())
        );
        if let (Some(bot), Ok(payload)) = (self.bot_username.get(), deep_link::encode(own.as_str())) {
            html.push_str(&format!(
                "\n\nOther Telegram users of this bridge can open a chat with you through https://t.me/{}?start={payload}",
                escape(bot)
            ));
        }
        let mut plan = Plan::answer(chat, html);
        let held = payload.and_then(deep_link::held_token);
        let released = self.accounts.started(user, held).await.map_err(refused(chat))?;
        // A held-message link opens the chat with the DM3 sender whose messages it released;
        // any other payload names the DM3 user to write to.
        let contact = match (held, payload) {
            (Some(_), _) => released.map(|sender| Ok(sender.as_str().to_owned())),
            (None, Some(payload)) => Some(deep_link::decode(payload)),
            (None, None) => None,
        };
        match contact {
            Some(Ok(name)) => {
                let contact = match self.set_contact(chat, user, &name).await {
                    Ok(plan) | Err(Stop::Answer(plan)) => plan,
                    Err(retry) => return Err(retry),
                };
                plan.items.extend(contact.items);
                plan.changes.extend(contact.changes);
                plan.answers.extend(contact.answers);
            }
            Some(Err(e)) => plan.answers.extend(Plan::answer(chat, escape(&e.to_string())).answers),
            None => {}
        }
        Ok(plan)
    }

    async fn set_contact(&self, chat: i64, user: &TelegramUser, input: &str) -> Result<Plan, Stop> {
        let input = input.trim();
        if input.is_empty() {
            return Ok(Plan::answer(chat, "Whom to? Send <code>/to alice.eth</code> with a DM3 name."));
        }
        if input.len() > MAX_NAME_INPUT_BYTES || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Ok(Plan::answer(
                chat,
                "That is not a DM3 name: a DM3 name is one word such as <code>alice.eth</code>.",
            ));
        }
        let Some(contact) = self.look_up(chat, input).await? else {
            return Ok(Plan::answer(
                chat,
                format!(
                    "There is no DM3 user named <b>{}</b>. Check the spelling; a DM3 name is an ENS name such as \
                     <code>alice.eth</code>.",
                    escape(input)
                ),
            ));
        };
        let conversation = ids::conversation_id(chat, &contact).map_err(|e| id_problem(chat, e))?;
        let requester = self.accounts.link(user).await.map_err(refused(chat))?;
        let request = PortalRequest {
            conversation,
            requester: ids::user_id(user.id),
            remote: contact.clone(),
            timestamp_ms: now_ms(),
            network_event_id: None,
        };
        tracing::debug!(chat, requester = %requester, contact = %contact, "current contact set");
        let mut plan = Plan::answer(chat, writing_to(&contact));
        plan.items.push(Inbound::PortalRequest(request));
        plan.changes.push(StateChange::Contact { chat, contact });
        Ok(plan)
    }
}

impl UpdateHandler {
    /// `/block` and `/unblock`: the DM3 user named, or the current contact. The name need not
    /// resolve (a sender whose profile is gone may still be unblocked); the service normalizes
    /// it when it makes the change and refuses what is no name.
    async fn set_blocked(
        &self,
        chat: i64,
        user: &TelegramUser,
        input: Option<&str>,
        blocked: bool,
    ) -> Result<Plan, Stop> {
        let command = if blocked { "/block" } else { "/unblock" };
        let sender = match input.map(str::trim).filter(|input| !input.is_empty()) {
            Some(input) => {
                let not_a_name = || {
                    Plan::answer(
                        chat,
                        "That is not a DM3 name: a DM3 name is one word such as <code>alice.eth</code>.",
                    )
                };
                if input.len() > MAX_NAME_INPUT_BYTES
                    || input.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Ok(not_a_name());
                }
                match RemoteIdentity::new(input) {
                    Ok(sender) => sender,
                    Err(_) => return Ok(not_a_name()),
                }
            }
            None => match self.state.current_contact(chat).await.map_err(refused(chat))? {
                Some(contact) => contact,
                None => {
                    return Ok(Plan::answer(
                        chat,
                        format!("Whom? Send <code>{command} alice.eth</code> with a DM3 name."),
                    ));
                }
            },
        };
        let name = escape(sender.as_str());
        let html = if blocked {
            format!(
                "<b>{name}</b> is blocked: the bridge refuses their messages to you, and they are told so. \
                 Send <code>/unblock {name}</code> to take their messages again."
            )
        } else {
            format!("<b>{name}</b> is not blocked: their messages reach you again.")
        };
        let mut plan = Plan::answer(chat, html);
        plan.changes.push(StateChange::Block { user: user.clone(), sender, blocked });
        Ok(plan)
    }

    /// [`TelegramAccounts::find_dm3_name`], tried [`LOOKUP_ATTEMPTS`] times while it is
    /// unavailable. A name source that stays down (an unreachable CCIP gateway, a dead RPC) is
    /// then answered, not retried as the update: a chat's updates are handled in order, and the
    /// polling offset cannot pass an unconfirmed update, so leaving this one unconfirmed would
    /// hold up the chat's later updates, and (polling) every update after it, for as long as
    /// that one name's source is down. The user learns to try again; nothing else is lost.
    ///
    /// [`TelegramAccounts::find_dm3_name`]: crate::state::TelegramAccounts::find_dm3_name
    async fn look_up(&self, chat: i64, input: &str) -> Result<Option<RemoteIdentity>, Stop> {
        let mut pause = LOOKUP_PAUSE;
        for attempt in 1..=LOOKUP_ATTEMPTS {
            match self.accounts.find_dm3_name(input).await {
                Err(StateError::Unavailable(reason)) if attempt < LOOKUP_ATTEMPTS => {
                    tracing::debug!(chat, attempt, reason, "a DM3 name lookup failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(StateError::Unavailable(reason)) => {
                    tracing::warn!(
                        chat,
                        reason,
                        "a DM3 name could not be looked up; the user is told to try again"
                    );
                    return Err(Stop::Answer(Plan::answer(
                        chat,
                        format!(
                            "The bridge could not look up <b>{}</b> right now: its name service did not answer. \
                             Please try again in a minute.",
                            escape(input)
                        ),
                    )));
                }
                other => return other.map_err(refused(chat)),
            }
        }
        Ok(None)
    }
}

fn writing_to(contact: &RemoteIdentity) -> String {
    format!(
        "You are now writing to <b>{}</b>. What you send here goes to them. To answer someone else, \
         reply to their message or use /to again.",
        escape(contact.as_str())
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("/start", None), Some(Command::Start(None)));
        assert_eq!(parse("/start alice_eth", None), Some(Command::Start(Some("alice_eth"))));
        assert_eq!(parse("/to  bob.eth ", Some("dm3bot")), Some(Command::To("bob.eth")));
        assert_eq!(parse("/to@DM3Bot bob.eth", Some("dm3bot")), Some(Command::To("bob.eth")));
        assert_eq!(parse("/to@otherbot bob.eth", Some("dm3bot")), None);
        assert_eq!(parse("/WHO", None), Some(Command::Who));
        assert_eq!(parse("/block", None), Some(Command::Block(None)));
        assert_eq!(parse("/block  alice.eth ", None), Some(Command::Block(Some("alice.eth"))));
        assert_eq!(
            parse("/unblock@dm3bot alice.eth", Some("dm3bot")),
            Some(Command::Unblock(Some("alice.eth")))
        );
        assert_eq!(parse("/frobnicate x", None), Some(Command::Unknown("frobnicate")));
        assert_eq!(parse("hello", None), None);
    }
}
