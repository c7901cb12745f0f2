//! The JSON the admin API answers and the CLI prints: one shape for both, public data only.
//!
//! Field names are camelCase like the rest of DM3's JSON. Timestamps are milliseconds since
//! the epoch. Built only from [`IdentityRecord`] and friends, which hold no secret, so no view
//! can leak a key however it is extended.

use serde::Serialize;
use serde_json::Value;

use crate::identities::{IdentityRecord, Page};
use crate::store::{Counterparty, Portal, PortalActivity, PortalState};

/// One identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub name: String,
    pub label: String,
    pub network: &'static str,
    pub user_id: String,
    /// EIP-55; what the name's `addr` resolves to.
    pub address: String,
    /// `custodial` (the node holds the wallet) or `self` (the user does; docs/gateway.md).
    pub custody: &'static str,
    /// The current key version; none for a self-custody identity, whose keys the node lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
}

impl From<&IdentityRecord> for IdentityView {
    fn from(record: &IdentityRecord) -> Self {
        Self {
            name: record.name.to_string(),
            label: record.label.clone(),
            network: record.user.network().as_str(),
            user_id: record.user.user_id(),
            address: dm3::crypto::eth::checksum(&record.address),
            custody: record.custody.as_str(),
            key_version: record.custody.key_version(),
            enabled: record.disabled_at_ms.is_none(),
            created_at: record.created_at_ms,
            updated_at: record.updated_at_ms,
            disabled_at: record.disabled_at_ms,
        }
    }
}

/// A page of identities.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageView {
    pub items: Vec<IdentityView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

impl From<&Page> for PageView {
    fn from(page: &Page) -> Self {
        Self {
            items: page.items.iter().map(IdentityView::from).collect(),
            page: page.page,
            per_page: page.per_page,
            total: page.total,
        }
    }
}

/// The published profile of an identity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    pub name: String,
    pub address: String,
    pub custody: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Whether the gateway publishes it (a disabled identity's profile is not published).
    pub published: bool,
    /// The signed user profile `{profile, signature}`.
    pub profile: Value,
    /// The `network.dm3.profile` text record value.
    pub record: String,
}

impl From<&IdentityRecord> for ProfileView {
    fn from(record: &IdentityRecord) -> Self {
        Self {
            name: record.name.to_string(),
            address: dm3::crypto::eth::checksum(&record.address),
            custody: record.custody.as_str(),
            key_version: record.custody.key_version(),
            published: record.disabled_at_ms.is_none(),
            profile: record.profile.to_value(),
            record: record.profile.to_text_record(),
        }
    }
}

/// One conversation partner.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub counterparty: String,
    /// Envelopes from them that the store holds for the identity.
    pub envelopes: u64,
    pub last_received_at: i64,
}

/// A portal of the identity and when it last carried a message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalActivityView {
    #[serde(flatten)]
    pub portal: PortalView,
    /// When the message map last recorded a message of it; absent if it never carried one.
    pub last_message_at: Option<i64>,
}

/// The conversations an identity is in: its portals (the engine's conversations, for a virtual
/// identity) and the senders of envelopes the relay stores for it (for an account's name).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationsView {
    pub name: String,
    /// Where `conversations` comes from.
    pub source: &'static str,
    pub conversations: Vec<ConversationView>,
    /// Its portals, most recently active first.
    pub portals: Vec<PortalActivityView>,
}

impl ConversationsView {
    pub fn new(
        identity: &IdentityRecord,
        counterparties: &[Counterparty],
        portals: &[PortalActivity],
    ) -> Self {
        Self {
            name: identity.name.to_string(),
            source: "stored-envelopes",
            portals: portals
                .iter()
                .map(|p| PortalActivityView {
                    portal: PortalView::from(&p.portal),
                    last_message_at: p.last_message_at_ms,
                })
                .collect(),
            conversations: counterparties
                .iter()
                .map(|c| ConversationView {
                    counterparty: c.name.clone(),
                    envelopes: c.envelopes,
                    last_received_at: c.last_received_at_ms,
                })
                .collect(),
        }
    }
}

pub use crate::name_service::{GatewayView, SubNamesView};

/// One portal: a network conversation bridged to a pair of DM3 names, and whether it is live.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalView {
    pub id: i64,
    pub network: String,
    pub conversation: String,
    /// The network user's virtual identity.
    pub local_name: String,
    /// The DM3 user they talk with.
    pub remote_name: String,
    /// `live`, `suspended`, or `ciphertext_only` (suspended but for a client's own ciphertext).
    pub state: &'static str,
    /// Why it is suspended.
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Portal> for PortalView {
    fn from(portal: &Portal) -> Self {
        let (state, reason) = match &portal.state {
            PortalState::Live => ("live", None),
            PortalState::Suspended { reason } => ("suspended", Some(reason.clone())),
            PortalState::CiphertextOnly { reason } => ("ciphertext_only", Some(reason.clone())),
        };
        Self {
            id: portal.id,
            network: portal.network.to_string(),
            conversation: portal.conversation.to_string(),
            local_name: portal.local_name.to_string(),
            remote_name: portal.remote_name.to_string(),
            state,
            reason,
            created_at: portal.created_at_ms,
            updated_at: portal.updated_at_ms,
        }
    }
}

/// A page of portals: `next` is the `after` of the following page, absent on the last.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalPageView {
    pub portals: Vec<PortalView>,
    pub next: Option<i64>,
}

impl PortalPageView {
    pub fn new(portals: &[Portal], limit: u32) -> Self {
        let full = u32::try_from(portals.len()).is_ok_and(|len| len >= limit);
        Self {
            portals: portals.iter().map(PortalView::from).collect(),
            next: full.then(|| portals.last().map(|p| p.id)).flatten(),
        }
    }
}
