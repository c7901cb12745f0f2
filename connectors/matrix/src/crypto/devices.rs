//! Ghost devices made and kept supplied with keys: the steps, in the order that loses nothing.
//!
//! [`GhostDevices::ensure`] gives a ghost its device before it takes part in an encrypted
//! room; [`GhostDevices::top_up`] replaces the one-time keys other devices claimed, when a
//! transaction's counts say they run low ([`super::key_counts`]). Both follow one rule: an
//! account change is saved, sealed, before anything made from it is sent. So:
//!
//! 1. hold the ghost's lease ([`OlmStore::hold`]), read the account (or make one);
//! 2. make the keys, **save** (the save names the version read: another process's write in
//!    between is a conflict, and nothing is sent);
//! 3. create the device (idempotent) and publish the keys; with the ghost's first device, its
//!    cross-signing keys ([`super::cross_signing`]) and the device's signature by them;
//! 4. mark them published, **save**.
//!
//! A crash after 2 publishes the same keys again on the next try; a crash after 3 does too,
//! and the homeserver accepts a key it already holds. A key can never be published whose
//! private half is not durable, which is the one loss that cannot be repaired (a message
//! encrypted to it could never be read).

use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use ruma::{OwnedDeviceId, UserId};

use super::account::{AccountError, GhostAccount, SIGNED_CURVE25519};
use super::catch_up_gate::CatchUps;
use super::device::{GhostDevice, new_device_id};
use super::device_list_store::DeviceListStore;
use super::identity_pins::IdentityPins;
use super::inbox_store::ToDeviceInbox;
use super::key_counts::DeviceKeyCount;
use super::outbound_store::OutboundStore;
use super::signing::SigningError;
use super::store::{AccountWrite, OlmStore, OlmStoreError, Saved, StoredAccount};
use crate::client::{Client, ClientError};

/// How often a step that found another process's write starts again from the read.
pub(super) const ATTEMPTS: usize = 3;

/// Why a ghost's device could not be made or supplied.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Another node process holds the ghost's account; it does the work.
    #[error("another node process holds this ghost's Olm account")]
    HeldElsewhere,
    /// Another process kept writing the account between our read and our save.
    #[error("the ghost's Olm account kept changing under us")]
    Contended,
    #[error(transparent)]
    Store(#[from] OlmStoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("the homeserver refused the device or its keys: {0}")]
    Homeserver(#[from] ClientError),
    #[error("no randomness for a device id")]
    Random,
    /// Key counts came for a ghost that has no account here (a device of an account lost
    /// with a database restored from before it): nothing to supply.
    #[error("the ghost has no Olm account here")]
    NoAccount,
    /// `sender_trust = "cross-signed"` on a node that keeps no pins: nothing can be believed.
    #[error("no store pins senders' cross-signing identities")]
    NoPins,
}

impl DeviceError {
    /// The failure as the engine tells it apart: worth retrying, or not.
    pub fn to_connector_error(&self) -> dm3_bridge_connector::ConnectorError {
        if self.is_retryable() {
            dm3_bridge_connector::ConnectorError::Transient(self.to_string())
        } else {
            dm3_bridge_connector::ConnectorError::Permanent(self.to_string())
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeviceError::Homeserver(e) => e.is_retryable(),
            DeviceError::Account(_)
            | DeviceError::Signing(_)
            | DeviceError::NoAccount
            | DeviceError::NoPins => false,
            _ => true,
        }
    }
}

/// The ghost devices of one bridge: the homeserver client and the store of their accounts.
pub struct GhostDevices {
    client: Arc<Client>,
    store: Arc<dyn OlmStore>,
    /// Where outbound Megolm sessions live, once set ([`super::send`]).
    pub(super) outbound: OnceLock<Arc<dyn OutboundStore>>,
    /// Where members' device lists are kept, once set ([`super::device_lists`]).
    pub(super) device_lists: OnceLock<Arc<dyn DeviceListStore>>,
    /// Where senders' master keys are pinned, once set ([`super::sender_trust`]).
    pub(super) identity_pins: OnceLock<Arc<dyn IdentityPins>>,
    /// Where to-device messages wait to be opened, once set ([`super::inbox`]).
    pub(super) inbox: OnceLock<Arc<dyn ToDeviceInbox>>,
    /// Wakes the opener of kept to-device messages.
    pub(super) wake: Notify,
    /// One opener of kept messages at a time in this process (the lease is among processes).
    pub(super) opening: tokio::sync::Mutex<()>,
    /// The catch-ups in flight and when each device's last one started ([`super::catch_up`]).
    pub(super) catch_ups: CatchUps,
}

impl std::fmt::Debug for GhostDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhostDevices").finish_non_exhaustive()
    }
}

/// An account in hand: what was read, and the version a save must name.
pub(super) struct Loaded {
    pub(super) device: GhostDevice,
    pub(super) account: GhostAccount,
    pub(super) version: Option<u64>,
    pub(super) device_published: bool,
}

impl GhostDevices {
    pub fn new(client: Arc<Client>, store: Arc<dyn OlmStore>) -> Self {
        Self {
            client,
            store,
            outbound: OnceLock::new(),
            device_lists: OnceLock::new(),
            identity_pins: OnceLock::new(),
            inbox: OnceLock::new(),
            wake: Notify::new(),
            opening: tokio::sync::Mutex::new(()),
            catch_ups: CatchUps::default(),
        }
    }

    pub(super) fn store(&self) -> &Arc<dyn OlmStore> {
        &self.store
    }

    pub(super) fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// `ghost`'s account as stored, if it has one.
    pub(super) async fn load(&self, ghost: &UserId) -> Result<Option<Loaded>, DeviceError> {
        self.store.load_account(ghost).await?.map(|stored| open(ghost, stored)).transpose()
    }

    /// `ghost`'s device, made and published with its keys if it was not yet.
    pub async fn ensure(&self, ghost: &UserId) -> Result<GhostDevice, DeviceError> {
        // The common case, a device made long ago, is one read: no lease written for it.
        if let Some(loaded) = self.load(ghost).await?
            && loaded.device_published
            && loaded.account.is_cross_signed()
        {
            return Ok(loaded.device);
        }
        self.supply(ghost, None).await
    }

    /// Replaces what other devices claimed of a ghost device's keys, as a transaction
    /// counted them. A count for a device the ghost no longer answers to is ignored.
    pub async fn top_up(&self, count: &DeviceKeyCount) -> Result<(), DeviceError> {
        self.supply(&count.user, Some(count)).await.map(|_| ())
    }

    async fn supply(
        &self,
        ghost: &UserId,
        count: Option<&DeviceKeyCount>,
    ) -> Result<GhostDevice, DeviceError> {
        if !self.store.hold(ghost).await? {
            return Err(DeviceError::HeldElsewhere);
        }
        for _ in 0..ATTEMPTS {
            let mut loaded = match self.store.load_account(ghost).await? {
                Some(stored) => open(ghost, stored)?,
                None if count.is_some() => {
                    // Counts for a device with no account here: not ours to supply.
                    return Err(DeviceError::NoAccount);
                }
                None => Loaded {
                    device: GhostDevice {
                        user: ghost.to_owned(),
                        device: new_device_id().ok_or(DeviceError::Random)?,
                    },
                    account: GhostAccount::new(),
                    version: None,
                    device_published: false,
                },
            };
            if let Some(count) = count
                && count.device != loaded.device.device
            {
                return Ok(loaded.device);
            }
            let (on_server, fallback_unused) = match count {
                Some(count) => (count.one_time_keys, count.unused_fallback.unwrap_or(true)),
                // A device not yet published has nothing on the server.
                None if !loaded.device_published => (0, false),
                None => (loaded.account.one_time_key_target(), true),
            };
            loaded.account.top_up(on_server, fallback_unused);
            // Made here (with the first device), saved below before anything is published.
            loaded.account.cross_signing_to_publish();
            if loaded.device_published
                && !loaded.account.has_unpublished_keys()
                && loaded.account.is_cross_signed()
            {
                return Ok(loaded.device);
            }
            let was_published = loaded.device_published;
            let Some(version) = self.save(&loaded).await? else { continue };
            self.publish(&mut loaded).await?;
            loaded.version = Some(version);
            loaded.device_published = true;
            if self.save(&loaded).await?.is_some() {
                tracing::info!(ghost = %loaded.device.user, device = %loaded.device.device, "ghost device keys published");
            }
            if !was_published {
                // The device's first since token: later catch-ups ask only for what came after.
                self.first_catch_up(&loaded.device).await;
            }
            // A conflict here only means another process moved on from what we published.
            return Ok(loaded.device);
        }
        Err(DeviceError::Contended)
    }

    /// Creates the device if need be and publishes what is unpublished, then marks it so.
    async fn publish(&self, loaded: &mut Loaded) -> Result<(), DeviceError> {
        let GhostDevice { user, device } = &loaded.device;
        if !loaded.device_published {
            self.client.create_device(user, device).await?;
        }
        let upload = loaded.account.upload(&loaded.device, !loaded.device_published)?;
        if !upload.is_empty() {
            let on_server = self.client.upload_keys(user, device, &upload, SIGNED_CURVE25519).await?;
            tracing::debug!(ghost = %user, %device, one_time_keys = on_server, "keys uploaded");
        }
        loaded.account.mark_published();
        let device_keys = loaded.account.device_keys(&loaded.device)?;
        if let Some(cross_signing) = loaded.account.cross_signing_to_publish() {
            let keys = cross_signing.signing_keys(user.as_str())?;
            self.client.upload_signing_keys(user, &keys.master, &keys.self_signing).await?;
            let signed = cross_signing.sign_device(user.as_str(), &device_keys)?;
            self.client.upload_device_signature(user, device, &signed).await?;
            loaded.account.mark_cross_signed();
            tracing::info!(ghost = %user, %device, "ghost device cross-signed");
        }
        Ok(())
    }

    /// Saves the account over the version it was read at: the new version, or `None` if
    /// another process wrote first.
    async fn save(&self, loaded: &Loaded) -> Result<Option<u64>, DeviceError> {
        let pickle = loaded.account.pickle()?;
        let write = AccountWrite {
            ghost: &loaded.device.user,
            device: &loaded.device.device,
            pickle: &pickle,
            device_published: loaded.device_published,
            expected: loaded.version,
        };
        Ok(match self.store.save_account(write).await? {
            Saved::Written(version) => Some(version),
            Saved::Conflict => {
                tracing::info!(ghost = %loaded.device.user, "the ghost's Olm account was written by another process; reading it again");
                None
            }
        })
    }
}

fn open(ghost: &UserId, stored: StoredAccount) -> Result<Loaded, DeviceError> {
    let device: OwnedDeviceId = stored.device;
    Ok(Loaded {
        device: GhostDevice { user: ghost.to_owned(), device },
        account: GhostAccount::from_pickle(&stored.pickle)?,
        version: Some(stored.version),
        device_published: stored.device_published,
    })
}
