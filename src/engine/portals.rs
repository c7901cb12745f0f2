//! The portal lifecycle (docs/engine.md, "Portal lifecycle"): a portal is live only while its
//! conversation is a direct chat between its two people, and follows them when they move.
//!
//! ```text
//!   (no portal) ──request that qualifies / DM3 user writes first──▶ live
//!   live ──third member, open join rule, readable history, encryption, user or ghost gone──▶ suspended
//!   suspended ──the room is a direct chat of the two again──▶ live
//!   live | suspended ──a new DM with the ghost, or the room's upgrade──▶ live (re-bound, same portal)
//!   live | suspended ──an admin unlinks it──▶ (no portal; the stand-in says so and leaves)
//! ```
//!
//! The connector decides what the conversation is *now* ([`PortalHandling::check_portal`]); a
//! [`ConversationChange`] only says when to ask, so a replayed or late change cannot suspend or
//! resume on stale facts. Nothing is recorded for a room that never qualified: a request is
//! joined and checked before its portal is written. While a portal is suspended nothing crosses
//! it: a DM3 message fails with the reason (its sender gets a DM3 reply saying so) and the
//! network user's messages get a notice.

use dm3::ens::EnsName;
use dm3_bridge_connector::{
    Connector, ConnectorError, Content, ConversationChange, ConversationId, IdempotencyKey, Message,
    NetworkId, NetworkMessageId, NetworkUserId, Outbound, PortalHandling, PortalRequest, PortalStatus,
    RemoteIdentity, Text, Unsupported,
};

use super::job::JobPayload;
use super::parts::{EngineParts, Failure};
use super::sink::job_conversation;
use super::worker::FailureCause;
use crate::clock::now_ms;
use crate::identities::IdentityError;
use crate::identities::network::{self, Network};
use crate::identities::vault::IdentityRef;
use crate::store::{Consent, NewJob, NewPortal, Portal, PortalState, QueueName, Store, StoreError};

/// Why a conversation is left when an admin unlinks its portal.
const UNLINKED: &str = "the bridge's operator unlinked this conversation from DM3";

/// Why an old conversation is left when its portal moves to a newer one.
const MOVED_AWAY: &str = "this conversation continues in a newer room with the same people";

/// Unlinks portal `id` (the admin API and CLI): the portal is forgotten, so nothing crosses it
/// and the next message between the pair opens a new conversation, and an outbox job has the
/// stand-in say so in the old conversation and leave it. The job is queued first and waits
/// while the portal still exists, so a crash in between leaves a portal that a second unlink
/// removes, never a stand-in that left a live portal. Answers the unlinked portal.
pub async fn unlink(store: &Store, id: i64) -> Result<Option<Portal>, StoreError> {
    let Some(portal) = store.portal(id).await? else { return Ok(None) };
    let remote = RemoteIdentity::new(portal.remote_name.as_str())
        .map_err(|e| StoreError::Corrupt(format!("portal {id}: {e}")))?;
    let payload = JobPayload::Unlinked {
        network: portal.network.clone(),
        conversation: portal.conversation.clone(),
        remote,
    };
    let now = now_ms();
    let job = NewJob {
        queue: QueueName::Outbox,
        idempotency_key: format!("unlink:{id}:{}", portal.conversation),
        conversation: job_conversation(&portal.network, &portal.conversation),
        payload: payload.to_json().map_err(|e| StoreError::Corrupt(e.to_string()))?,
        expires_at_ms: None,
    };
    store.enqueue_job(&job, now).await?;
    store.delete_portal(id).await?;
    tracing::info!(portal = id, conversation = %portal.conversation, "portal unlinked");
    Ok(Some(portal))
}

impl EngineParts {
    /// The stand-in of an unlinked portal says so and leaves ([`unlink`]); while the portal is
    /// still there (the unlink has not committed its delete), the job waits.
    pub async fn unlinked(
        &self,
        connector: &dyn Connector,
        conversation: &ConversationId,
        remote: &RemoteIdentity,
    ) -> Result<(), Failure> {
        let found = self.store.portal_by_conversation(connector.network(), conversation).await;
        if found.map_err(Failure::store)?.is_some() {
            return Err(Failure::retry("the unlinked portal is still recorded"));
        }
        let text = format!("⏹️ Messages with {remote}: {UNLINKED}.");
        self.announce_keyed(connector, conversation, remote, &text, NoticeKey::Unlinked(conversation))
            .await?;
        Self::portal_handling(connector)?
            .leave_portal(conversation, remote, UNLINKED)
            .await
            .map_err(Failure::connector)
    }

    fn portal_handling(connector: &dyn Connector) -> Result<&dyn PortalHandling, Failure> {
        connector.portals().ok_or_else(|| {
            Failure::permanent(format!("{} has no conversations to join", connector.network()))
        })
    }

    /// The live conversation of (`local`, `remote`) on `network` and whether its user accepted
    /// it: the portal, or a new one the connector opens (a DM3 user writing to a network user
    /// for the first time, [`super::first_contact`]). A suspended portal is a permanent failure
    /// with its reason: nothing is posted while it is suspended.
    pub async fn portal_for(
        &self,
        connector: &dyn Connector,
        local: &EnsName,
        remote: &EnsName,
        local_user: &NetworkUserId,
        remote_identity: &RemoteIdentity,
    ) -> Result<(ConversationId, Consent), Failure> {
        let network = connector.network();
        if let Some(portal) =
            self.store.portal_by_names(network, local, remote).await.map_err(Failure::store)?
        {
            return match portal.state {
                // Ciphertext only: the connector refuses anything in the clear at the send.
                PortalState::Live | PortalState::CiphertextOnly { .. } => {
                    Ok((portal.conversation, portal.consent))
                }
                PortalState::Suspended { reason } => Err(unreachable(local_user, network, &reason)),
            };
        }
        let portals = Self::portal_handling(connector)?;
        let conversation =
            portals.open_portal(local_user, remote_identity).await.map_err(Failure::connector)?;
        let now = now_ms();
        let portal = NewPortal {
            network: network.clone(),
            conversation,
            local_name: local.clone(),
            remote_name: remote.clone(),
            consent: if portals.opening_awaits_consent() {
                Consent::AwaitingSince(now)
            } else {
                Consent::Given
            },
        };
        let (stored, _) = self.store.insert_or_get_portal(&portal, now).await.map_err(Failure::store)?;
        Ok((stored.conversation, stored.consent))
    }

    /// A network user opened a conversation with a DM3 user: join and check it, then record the
    /// portal (creating the user's identity on first use), re-bind the pair's existing portal to
    /// it, or make it live again; or refuse with the reason.
    pub async fn portal_request(
        &self,
        network: Network,
        connector: &dyn Connector,
        request: &PortalRequest,
    ) -> Result<(), Failure> {
        let portals = Self::portal_handling(connector)?;
        let network_id = connector.network();
        let remote = parse_name(request.remote.as_str())?;
        let refusal = match self.directory.user_profile(&remote).await {
            Ok(Some(_)) => None,
            Ok(None) => Some(format!("{remote} has no DM3 profile, so messages cannot reach them")),
            Err(error) => return Err(Failure::retry(format!("looking up {remote}: {error}"))),
        };
        let refusal = refusal.or_else(|| {
            (!self.connectors.allows(network, &request.requester))
                .then(|| format!("{} may not use this bridge (the operator's allow-list)", request.requester))
        });
        if let Some(reason) = refusal {
            return portals.refuse_portal(request, &reason).await.map_err(Failure::connector);
        }
        let user = network::NetworkUserId::parse(network, request.requester.as_str())
            .map_err(|e| Failure::permanent(format!("the requester is not a {network} user: {e}")))?;
        let identity = match self.vault.create(user.clone(), now_ms()).await {
            Ok(identity) => identity,
            Err(IdentityError::Exists { .. }) => {
                self.vault.get(&IdentityRef::User(user)).await.map_err(Failure::identity)?
            }
            Err(error) => return Err(Failure::identity(error)),
        };
        if identity.disabled_at_ms.is_some() {
            let reason = format!("your DM3 identity {} is disabled on this bridge", identity.name);
            return portals.refuse_portal(request, &reason).await.map_err(Failure::connector);
        }
        // Joined and checked first: a room that does not qualify is declined by the connector
        // (a permanent failure) and nothing is recorded for it.
        portals.join_portal(request).await.map_err(Failure::connector)?;
        let now = now_ms();
        let in_room = self.store.portal_by_conversation(network_id, &request.conversation).await;
        if let Some(portal) = in_room.map_err(Failure::store)? {
            let owner = portal.local_name == identity.name
                || self.vault.alias_username(&portal.local_name).is_some()
                    && self
                        .vault
                        .recent_identity(&portal.local_name)
                        .await
                        .map_err(Failure::identity)?
                        .is_some_and(|alias| alias.user == identity.user);
            if !owner || portal.remote_name != remote {
                return Err(Failure::permanent("this room is already the portal of another conversation"));
            }
            // The same room again (the user invited the ghost back): live again, and the
            // user's own invite is their consent.
            self.store.set_portal_consent_given(portal.id, now).await.map_err(Failure::store)?;
            return self
                .store
                .set_portal_state(portal.id, &PortalState::Live, now)
                .await
                .map(|_| ())
                .map_err(Failure::store);
        }
        let of_pair = self.store.portal_by_names(network_id, &identity.name, &remote).await;
        match of_pair.map_err(Failure::store)? {
            Some(old) => {
                self.store.rebind_portal(old.id, &request.conversation, now).await.map_err(Failure::store)?;
                tracing::info!(portal = old.id, from = %old.conversation, to = %request.conversation, "portal re-bound to a new DM");
                self.leave_old_conversation(connector, &old, &request.remote).await
            }
            None => {
                let portal = NewPortal {
                    network: network_id.clone(),
                    conversation: request.conversation.clone(),
                    local_name: identity.name.clone(),
                    remote_name: remote,
                    consent: Consent::Given,
                };
                self.store.insert_or_get_portal(&portal, now).await.map(|_| ()).map_err(Failure::store)
            }
        }
    }

    /// Something changed in `change.conversation`: if it is a portal, look at it again and move
    /// the portal to the state that the conversation is in now.
    pub async fn conversation_change(
        &self,
        connector: &dyn Connector,
        change: &ConversationChange,
    ) -> Result<(), Failure> {
        let network_id = connector.network();
        let found = self.store.portal_by_conversation(network_id, &change.conversation).await;
        let Some(portal) = found.map_err(Failure::store)? else {
            tracing::debug!(conversation = %change.conversation, what = %change.what, "a change in a room that is no portal");
            return Ok(());
        };
        let portals = Self::portal_handling(connector)?;
        let identity = self.vault.recent(&portal.local_name).await.map_err(Failure::identity)?;
        let user = NetworkUserId::new(identity.user.user_id()).map_err(Failure::permanent)?;
        let remote = RemoteIdentity::new(portal.remote_name.as_str()).map_err(Failure::permanent)?;
        let status =
            portals.check_portal(&portal.conversation, &user, &remote).await.map_err(Failure::connector)?;
        let now = now_ms();
        let status = match status {
            // The first contact's invite rejected (docs/engine.md, "First contact").
            PortalStatus::Left { .. } if portal.consent.is_awaited() => {
                return self.declined(connector, &portal, &user, &remote).await;
            }
            PortalStatus::Left { reason } => PortalStatus::Suspended { reason },
            PortalStatus::Live if portal.consent.is_awaited() => {
                self.store.set_portal_consent_given(portal.id, now).await.map_err(Failure::store)?;
                tracing::info!(portal = portal.id, "a first contact was accepted");
                PortalStatus::Live
            }
            // Still only invited: live, the consent still awaited.
            PortalStatus::Invited => PortalStatus::Live,
            other => other,
        };
        match (status, &portal.state) {
            (PortalStatus::Live, PortalState::Live) => Ok(()),
            (PortalStatus::Live, PortalState::Suspended { .. } | PortalState::CiphertextOnly { .. }) => {
                let text = format!("▶️ Messages with {remote} are carried again.");
                self.announce(connector, &portal.conversation, &remote, &text, &change.network_event_id)
                    .await?;
                tracing::info!(portal = portal.id, "portal live again");
                self.store
                    .set_portal_state(portal.id, &PortalState::Live, now)
                    .await
                    .map(|_| ())
                    .map_err(Failure::store)
            }
            (PortalStatus::Suspended { reason } | PortalStatus::Left { reason }, _) => {
                self.pause(connector, &portal, &remote, PortalState::Suspended { reason }).await
            }
            (PortalStatus::CiphertextOnly { reason }, _) => {
                self.pause(connector, &portal, &remote, PortalState::CiphertextOnly { reason }).await
            }
            (PortalStatus::Invited, _) => Ok(()), // mapped to live above
            (PortalStatus::Moved { successor }, _) => {
                self.store.rebind_portal(portal.id, &successor, now).await.map_err(Failure::store)?;
                tracing::info!(portal = portal.id, from = %portal.conversation, to = %successor, "portal followed its room's upgrade");
                self.leave_old_conversation(connector, &portal, &remote).await
            }
        }
    }

    /// The connector refused to send into `conversation` because it carries nothing now
    /// (`Unsupported::Blocked`), or nothing in the clear (`Unsupported::CiphertextOnly`: a
    /// Matrix room switched to encrypted, found at the send before the change that says so was
    /// handled, or after): the portal is paused in that `state`, as the change would, and the
    /// message fails with the words of a suspended portal.
    pub async fn conversation_blocked(
        &self,
        connector: &dyn Connector,
        conversation: &ConversationId,
        local_user: &NetworkUserId,
        remote: &RemoteIdentity,
        state: PortalState,
    ) -> Failure {
        let network = connector.network();
        let reason = state.pause_reason().unwrap_or_default().to_owned();
        let found = self.store.portal_by_conversation(network, conversation).await;
        match found {
            Ok(Some(portal)) => {
                if let Err(failure) = self.pause(connector, &portal, remote, state).await {
                    return failure;
                }
            }
            Ok(None) => {}
            Err(error) => return Failure::store(error),
        }
        unreachable(local_user, network, &reason)
    }

    /// Moves `portal` to the paused `state`. Leaving the live state, the stand-in says so once:
    /// both ways to find out (a change of the room, a send the connector refused) key the notice
    /// by the live state they leave, so the room is told once however many find it at once, and
    /// a later pause of the same room is told again.
    async fn pause(
        &self,
        connector: &dyn Connector,
        portal: &Portal,
        remote: &RemoteIdentity,
        state: PortalState,
    ) -> Result<(), Failure> {
        if portal.state == state {
            return Ok(());
        }
        let reason = state.pause_reason().unwrap_or_default();
        if portal.state.is_live() {
            let text = match &state {
                PortalState::CiphertextOnly { .. } => {
                    format!(
                        "⏸️ Messages with {remote} are paused: {reason}. Nothing is posted here in the clear."
                    )
                }
                _ => format!(
                    "⏸️ Messages with {remote} are paused: {reason}. Nothing is carried either way while that lasts."
                ),
            };
            let key = NoticeKey::Paused(portal.updated_at_ms);
            self.announce_keyed(connector, &portal.conversation, remote, &text, key).await?;
            tracing::info!(portal = portal.id, %reason, "portal suspended");
        }
        self.store.set_portal_state(portal.id, &state, now_ms()).await.map(|_| ()).map_err(Failure::store)
    }

    /// The stand-in says where the conversation went and leaves `old`'s conversation.
    async fn leave_old_conversation(
        &self,
        connector: &dyn Connector,
        old: &Portal,
        remote: &RemoteIdentity,
    ) -> Result<(), Failure> {
        let text = format!("➡️ Messages with {remote}: {MOVED_AWAY}.");
        let key = NoticeKey::Moved(old.id, &old.conversation);
        self.announce_keyed(connector, &old.conversation, remote, &text, key).await?;
        Self::portal_handling(connector)?
            .leave_portal(&old.conversation, remote, MOVED_AWAY)
            .await
            .map_err(Failure::connector)
    }

    /// A notice from `remote`'s stand-in, sent once per triggering event. A conversation the
    /// stand-in can no longer post in (it was kicked) is not an error: the state still changes.
    async fn announce(
        &self,
        connector: &dyn Connector,
        conversation: &ConversationId,
        remote: &RemoteIdentity,
        text: &str,
        trigger: &NetworkMessageId,
    ) -> Result<(), Failure> {
        self.announce_keyed(connector, conversation, remote, text, NoticeKey::Trigger(trigger)).await
    }

    async fn announce_keyed(
        &self,
        connector: &dyn Connector,
        conversation: &ConversationId,
        remote: &RemoteIdentity,
        text: &str,
        key: NoticeKey<'_>,
    ) -> Result<(), Failure> {
        let notice = Outbound {
            conversation: conversation.clone(),
            sender: remote.clone(),
            idempotency_key: IdempotencyKey::new(key.render(conversation)).map_err(Failure::permanent)?,
            timestamp_ms: None,
            retry: false,
            payload: Message::new(Content::Notice(Text::plain(text))),
        };
        match connector.send_message(&notice).await {
            Ok(_) => Ok(()),
            Err(error @ (ConnectorError::Permanent(_) | ConnectorError::Unsupported(_))) => {
                tracing::info!(%conversation, %error, "a portal notice could not be posted");
                Ok(())
            }
            Err(error) => Err(Failure::connector(error)),
        }
    }
}

/// What a portal notice's idempotency key is derived from: the event that triggered it, the
/// live state a pause leaves (the time of its last change: a second pause of the same room is
/// told again), or the portal's move away from a conversation.
enum NoticeKey<'a> {
    Trigger(&'a NetworkMessageId),
    Paused(i64),
    Moved(i64, &'a ConversationId),
    Unlinked(&'a ConversationId),
}

impl NoticeKey<'_> {
    /// `portal-` and a digest: keys allow `[A-Za-z0-9._~-]`, event ids hold `$` and more.
    fn render(&self, conversation: &ConversationId) -> String {
        let seed = match self {
            NoticeKey::Trigger(id) => format!("{conversation}\n{id}"),
            NoticeKey::Paused(live_since) => format!("{conversation}\npaused\n{live_since}"),
            NoticeKey::Moved(portal, from) => format!("{from}\nmoved\n{portal}"),
            NoticeKey::Unlinked(from) => format!("{from}\nunlinked"),
        };
        format!("portal-{}", dm3::hash::sha256_hex(&seed).trim_start_matches("0x"))
    }
}

/// The paused state a connector's refusal at the send puts a portal in: `Blocked` carries
/// nothing, `CiphertextOnly` nothing in the clear; other refusals concern one message only.
pub fn paused_state(refusal: &Unsupported) -> Option<PortalState> {
    match refusal {
        Unsupported::Blocked(reason) => Some(PortalState::Suspended { reason: reason.clone() }),
        Unsupported::CiphertextOnly(reason) => Some(PortalState::CiphertextOnly { reason: reason.clone() }),
        _ => None,
    }
}

/// Why a DM3 message for `local_user` failed while their conversation carries nothing.
fn unreachable(local_user: &NetworkUserId, network: &NetworkId, reason: &str) -> Failure {
    Failure::permanent(format!(
        "{local_user} cannot be reached in that {network} conversation right now: {reason}"
    ))
    .because(FailureCause::PortalSuspended)
}

fn parse_name(name: &str) -> Result<EnsName, Failure> {
    EnsName::parse(name).map_err(|e| Failure::permanent(format!("`{name}` is not a name: {e}")))
}
