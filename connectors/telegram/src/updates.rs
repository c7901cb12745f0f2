//! An update as Telegram sent it (raw JSON) into teloxide's [`Update`], without letting one bad
//! update take anything else down.
//!
//! teloxide reads updates leniently (a field it cannot read becomes an update of kind "error"),
//! except where it does not: teloxide-core 0.13 unwraps the actor of a `message_reaction`
//! (`deserialize_actor`), so a reaction naming neither `user` nor `actor_chat` panics the
//! reader, and a body that is no update object at all fails a whole `getUpdates` answer. So
//! both receivers read one update at a time from raw JSON through [`parse`]:
//! 1. the update's id is read first, so that a bad update can still be confirmed and skipped;
//! 2. the shape teloxide is known to panic on is refused before teloxide sees it;
//! 3. teloxide reads the rest, and any other panic in there is caught and refused the same
//!    way, so that no update can end the polling loop (a panic would otherwise kill it, and the
//!    same update, served again after a restart, would kill it again).
//!
//! What to do with a [`Malformed`] update is the receiver's: polling logs it and moves its
//! offset past it, the webhook answers 400.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Deserialize as _;
use serde::de::IgnoredAny;
use serde_json::Value;
use teloxide_core::types::{Update, UpdateKind};

/// An update the bridge cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct Malformed {
    /// Its `update_id`, if it has one.
    pub(crate) update_id: Option<u32>,
    pub(crate) reason: String,
}

/// Reads one update from Telegram's JSON.
pub(crate) fn parse(raw: Value) -> Result<Update, Malformed> {
    let update_id = raw.get("update_id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
    let malformed = |reason: &str| Malformed { update_id, reason: reason.to_owned() };
    if update_id.is_none() {
        return Err(malformed("not a Telegram update: no update_id"));
    }
    if lacks_reaction_actor(&raw) {
        return Err(malformed("a reaction without who reacted (neither user nor actor_chat)"));
    }
    // teloxide reads from text: its reader of update kinds asks for borrowed keys, which a
    // `Value` cannot lend (every update would read as kind "error").
    let text = raw.to_string();
    // teloxide panics where it should refuse (see the module doc); a panic here is that, for
    // one update, and nothing it touched outlives the call.
    match catch_unwind(AssertUnwindSafe(|| serde_json::from_str::<Update>(&text))) {
        Ok(Ok(update)) => Ok(update),
        Ok(Err(e)) => Err(Malformed { update_id, reason: format!("not a Telegram update: {e}") }),
        Err(_) => Err(malformed("teloxide could not read the update (it panicked)")),
    }
}

/// Reads one update from a webhook body.
pub(crate) fn parse_bytes(body: &[u8]) -> Result<Update, Malformed> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed { update_id: None, reason: format!("not JSON: {e}") })?;
    parse(raw)
}

/// The chat an update belongs to, for handling a chat's updates in order; `None` for the kinds
/// the bridge ignores.
pub(crate) fn chat_of(update: &Update) -> Option<i64> {
    match &update.kind {
        UpdateKind::Message(message) | UpdateKind::EditedMessage(message) => Some(message.chat.id.0),
        UpdateKind::MessageReaction(reaction) => Some(reaction.chat.id.0),
        _ => None,
    }
}

/// Whether `raw` is a `message_reaction` naming neither `user` nor `actor_chat`. Telegram always
/// names one; teloxide-core 0.13 unwraps their absence.
fn lacks_reaction_actor(raw: &Value) -> bool {
    #[derive(serde::Deserialize)]
    struct Actor {
        user: Option<IgnoredAny>,
        actor_chat: Option<IgnoredAny>,
    }
    match raw.get("message_reaction") {
        Some(reaction) => match Actor::deserialize(reaction) {
            Ok(actor) => actor.user.is_none() && actor.actor_chat.is_none(),
            // Not an object: teloxide refuses it without the panicking path.
            Err(_) => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn reaction(update_id: u32, actor: Value) -> Value {
        let mut reaction = json!({
            "chat": {"id": 42, "type": "private", "first_name": "Ann"},
            "message_id": 5, "date": 1_700_000_000,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        });
        if let Value::Object(actor) = actor {
            reaction.as_object_mut().unwrap().extend(actor);
        }
        json!({"update_id": update_id, "message_reaction": reaction})
    }

    #[test]
    fn a_reaction_without_its_actor_is_refused_with_its_id() {
        let ann = json!({"user": {"id": 42, "is_bot": false, "first_name": "Ann"}});
        let update = parse(reaction(7, ann)).unwrap();
        assert_eq!((update.id.0, chat_of(&update)), (7, Some(42)));
        let refused = parse(reaction(8, Value::Null)).unwrap_err();
        assert_eq!(refused.update_id, Some(8));
        assert!(refused.reason.contains("without who reacted"), "{refused}");
    }

    #[test]
    fn what_is_no_update_is_refused_and_unknown_kinds_are_read() {
        assert_eq!(parse(json!({"no": 1})).unwrap_err().update_id, None);
        assert_eq!(parse(json!([1, 2])).unwrap_err().update_id, None);
        assert!(parse_bytes(b"{not json").is_err());
        let poll = parse(json!({"update_id": 9, "poll": {"id": "x"}})).unwrap();
        assert_eq!((poll.id.0, chat_of(&poll)), (9, None));
        // A message teloxide cannot read is an update of kind "error", not a failure.
        let broken = parse(json!({"update_id": 10, "message": {"message_id": "x"}})).unwrap();
        assert!(matches!(broken.kind, UpdateKind::Error(_)));
        let message = json!({
            "update_id": 11,
            "message": {
                "message_id": 5, "date": 1_700_000_000, "text": "hi",
                "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": 42, "type": "private", "first_name": "Ann"},
            }
        });
        assert!(matches!(parse(message).unwrap().kind, UpdateKind::Message(_)));
    }
}
