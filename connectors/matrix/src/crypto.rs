//! End-to-end encryption as the bridge's ghosts speak it: Olm accounts of ghost devices, on
//! vodozemac, kept by the service through [`OlmStore`].
//!
//! Why vodozemac and not matrix-sdk-crypto: ARCHITECTURE.md, "Deliberate departures"; the plan
//! and what holds today: docs/engine.md, "Encrypted rooms: plan".
//!
//! - [`device`]: a ghost's device and its id;
//! - [`pickle`]: an account's pickle, secret bytes that never print;
//! - [`signing`]: signed JSON (canonical form, Ed25519);
//! - [`account`]: the Olm account, its one-time and fallback keys, and what `/keys/upload`
//!   publishes of them;
//! - [`cross_signing`]: the ghost's master and self-signing keys, which vouch for its device;
//! - [`store`]: the trait the service implements over its database (leases, versioned saves);
//! - [`key_counts`]: the one-time-key counts MSC3202 puts in transactions;
//! - [`to_device`]: the to-device events MSC2409 puts in transactions; [`olm`]: Olm messages
//!   to a ghost device opened and checked; [`megolm`]: room keys, and room events decrypted;
//! - [`receive`]: to-device messages opened and kept, room events decrypted;
//! - [`inbox_store`]: the trait the service implements to keep to-device messages until they
//!   are opened; [`inbox`]: the task that opens them after the homeserver had its 200;
//!   [`catch_up`]: what the homeserver's push lost, fetched with `/sync` as the device
//!   ([`catch_up_gate`]: at most one at a time per device, a few seconds apart);
//! - [`key_request`]: a missing room key asked for again (`m.room_key_request`);
//! - [`devices`]: devices made and kept supplied, in the order that loses no key;
//! - [`supply`]: the task that tops devices up as transactions report their counts.
//! - Sending into encrypted rooms: [`outbound`] (a room's Megolm session, its rotation),
//!   [`recipients`] (the members' devices that vouch for themselves), [`share`] (a room key
//!   over Olm), [`outbound_store`] (what the service keeps of them), [`send`] (the steps, in
//!   the order that never sends what was not saved).
//! - Members' device lists: [`device_lists`] (kept by the service, asked for only when not
//!   kept or outdated; a sender's device looked up there), [`device_list_store`] (what the
//!   service keeps of them), [`device_list_updates`] (the MSC3202 changes transactions carry,
//!   which outdate them).
//! - A sender's device believed only if they cross-signed it (`[matrix] sender_trust =
//!   "cross-signed"`): [`user_identity`] (their master and self-signing keys, checked),
//!   [`identity_pins`] (the master key pinned on first sight, by the service), [`sender_trust`]
//!   (the check, on the kept lists).

pub mod account;
pub mod catch_up;
pub mod catch_up_gate;
pub mod cross_signing;
pub mod device;
pub mod device_list_store;
pub mod device_list_updates;
pub mod device_lists;
pub mod devices;
pub mod identity_pins;
pub mod inbox;
pub mod inbox_store;
pub mod key_counts;
pub mod key_request;
pub mod megolm;
pub mod olm;
pub mod outbound;
pub mod outbound_store;
pub mod pickle;
pub mod receive;
pub mod recipients;
pub mod send;
pub mod sender_trust;
pub mod share;
pub mod signing;
pub mod store;
pub mod supply;
pub mod to_device;
pub mod user_identity;

pub use account::{GhostAccount, KeysUpload, SIGNED_CURVE25519};
pub use device::GhostDevice;
pub use device_list_store::{DeviceList, DeviceListStore, DeviceListWrite, KnownDevice};
pub use device_list_updates::{DeviceListUpdates, device_list_updates};
pub use devices::{DeviceError, GhostDevices};
pub use identity_pins::{IdentityPins, TrustRefusal};
pub use inbox::ToDeviceOpener;
pub use inbox_store::{InboxWrite, KeptToDevice, ToDeviceInbox, Unopened, Via};
pub use key_counts::{DeviceKeyCount, key_counts};
pub use outbound_store::{
    OutboundStep, OutboundStore, OutboundWrite, PendingToDevice, SharedWith, StoredOutbound,
};
pub use pickle::SecretPickle;
pub use receive::{DecryptError, OpenedEvent, Opening};
pub use send::SendError;
pub use store::{
    AccountWrite, IndexClaim, OlmStepWrite, OlmStore, OlmStoreError, RoomKeyWrite, Saved, SessionWrite,
    StoredAccount, StoredRoomKey,
};
pub use supply::KeySupply;
pub use to_device::{ToDeviceEvent, to_device_events};
