//! First contact: a DM3 user writes to a network user who never talked to them through the
//! bridge (docs/engine.md, "First contact").
//!
//! On Matrix the ghost's new DM only *invites* the user; the invite is their consent still
//! pending, and the portal records that it awaits it ([`Consent`]). Meanwhile the messages
//! wait in the room's history for them, but no more than `[engine] max_held_until_consent`
//! from the DM3 user: past that a message fails, and its sender gets a DM3 reply saying the
//! contact has not accepted yet. The user joining gives consent (everything flows from then
//! on); the user rejecting the invite (or leaving before joining) declines it: the DM3 user
//! gets a DM3 reply saying so, the ghost leaves the room, and the portal stays suspended with
//! that reason, so every further message fails with it. Only the user can reopen the
//! conversation, by inviting the ghost themselves.

use dm3_bridge_connector::{Connector, ConversationId, NetworkId, NetworkUserId, RemoteIdentity};

use super::job::Report;
use super::parts::{EngineParts, Failure};
use super::worker::FailureCause;
use crate::clock::now_ms;
use crate::store::{Consent, Portal, PortalState};

/// How long a decline waits for the first message to be recorded before it is told without
/// a reply to it.
const FIRST_MESSAGE_GRACE_MS: i64 = 120_000;

impl EngineParts {
    /// Refuses one more message to `user` in `conversation` if as many as are held until they
    /// accept wait there already.
    pub async fn hold_until_consent(
        &self,
        network: &NetworkId,
        conversation: &ConversationId,
        user: &NetworkUserId,
    ) -> Result<(), Failure> {
        let cap = self.max_held_until_consent;
        let held = self.store.held_messages(network, conversation, cap).await.map_err(Failure::store)?;
        if held < cap {
            return Ok(());
        }
        // The portal was read in the last second, maybe before the user accepted through
        // another replica: a refusal is for good, so it is decided on the row as it is now.
        let now =
            self.store.portal_by_conversation_now(network, conversation).await.map_err(Failure::store)?;
        if now.is_some_and(|portal| !portal.consent.is_awaited()) {
            return Ok(());
        }
        Err(Failure::permanent(format!(
            "{user} has not accepted your invitation yet; the bridge keeps at most {cap} of your messages \
             for them until they do, and refuses more"
        ))
        .because(FailureCause::AwaitingConsent))
    }

    /// `user` rejected the invite of `portal` (or left before joining): the DM3 user is told,
    /// the stand-in leaves, and the portal is suspended with the decline as its reason.
    pub async fn declined(
        &self,
        connector: &dyn Connector,
        portal: &Portal,
        user: &NetworkUserId,
        remote: &RemoteIdentity,
    ) -> Result<(), Failure> {
        let reason = format!("{user} declined the invitation to talk with {remote}");
        if matches!(&portal.state, PortalState::Suspended { reason: old } if *old == reason) {
            return Ok(()); // a replayed change
        }
        let first = self.store.first_held_message(&portal.network, &portal.conversation).await;
        let first = first.map_err(Failure::store)?;
        if first.is_none()
            && let Consent::AwaitingSince(since) = portal.consent
            && now_ms().saturating_sub(since) < FIRST_MESSAGE_GRACE_MS
        {
            // The user can decline before the first message's job recorded what it became:
            // wait for it, so the reply has a message to answer. Past the grace it never will
            // be (it failed, and its sender was told so): the decline stands without a reply.
            return Err(Failure::retry("the first message of the declined contact is still on its way"));
        }
        if let Some(first) = first {
            let report = Report::ToDm3Warning {
                from: portal.local_name.to_string(),
                to: portal.remote_name.to_string(),
                about_hash: first.to_string(),
                warning: format!(
                    "{user} declined your invitation: they did not read the messages you sent them, and the \
                     bridge refuses further ones unless they write to you first"
                ),
                at_ms: u64::try_from(now_ms()).unwrap_or_default(),
            };
            let key = format!("declined:{}:{}", portal.id, portal.conversation);
            let conversation = format!("{}:{}", portal.local_name, portal.remote_name);
            self.queue_report(&key, &conversation, &report).await.map_err(Failure::retry)?;
        }
        let state = PortalState::Suspended { reason: reason.clone() };
        self.store.set_portal_state(portal.id, &state, now_ms()).await.map_err(Failure::store)?;
        tracing::info!(portal = portal.id, %user, "a first contact was declined");
        if let Some(portals) = connector.portals()
            && let Err(error) = portals.leave_portal(&portal.conversation, remote, &reason).await
        {
            tracing::info!(portal = portal.id, %error, "the stand-in could not leave a declined conversation");
        }
        Ok(())
    }
}
