//! What keeps a device's end-to-end encryption across runs of the binary without a database:
//! a snapshot of matrix-sdk's memory crypto store, written into the session file.
//!
//! matrix-sdk 0.18 persists its crypto store only with its `sqlite` feature, which this
//! workspace does not take (a second SQLite library). Its memory store, though, is ours to
//! hold: the client is built over a [`MemoryStore`] this module keeps a handle on, and at the
//! end of a run the parts a device needs to stay the same device are read back and pickled:
//! - the **Olm account** (identity keys, one-time keys, and whether they were uploaded), so a
//!   resumed device keeps the keys its peers know it by;
//! - the **Olm sessions** with the devices of the users it tracks, so a room key a peer sends
//!   over an established session still decrypts;
//! - the **inbound Megolm sessions** (room keys), so what it could read it still can.
//!
//! Not kept: device lists and cross-signing identities (queried again from the homeserver when
//! needed) and outbound Megolm sessions (a new one is made and shared on the next send).

use std::sync::Arc;

use matrix_sdk_base::crypto::olm::{
    Account, InboundGroupSession, PickledAccount, PickledInboundGroupSession, PickledSession, Session,
};
use matrix_sdk_base::crypto::store::types::{Changes, PendingChanges};
use matrix_sdk_base::crypto::store::{CryptoStore as _, MemoryStore};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The pickled state of one device's crypto store.
#[derive(Serialize, Deserialize)]
pub struct CryptoSnapshot {
    account: PickledAccount,
    sessions: Vec<PickledSession>,
    inbound_group_sessions: Vec<PickledInboundGroupSession>,
}

impl std::fmt::Debug for CryptoSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoSnapshot")
            .field("sessions", &self.sessions.len())
            .field("inbound_group_sessions", &self.inbound_group_sessions.len())
            .finish_non_exhaustive()
    }
}

fn store_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::CryptoStore(error.to_string())
}

impl CryptoSnapshot {
    /// Reads the store's state; `None` before the device has an account.
    pub async fn take(store: &MemoryStore) -> Result<Option<Self>, ClientError> {
        let Some(account) = store.load_account().await.map_err(store_error)? else {
            return Ok(None);
        };
        let mut sessions = Vec::new();
        for tracked in store.load_tracked_users().await.map_err(store_error)? {
            for device in store.get_user_devices(&tracked.user_id).await.map_err(store_error)?.values() {
                let Some(key) = device.curve25519_key() else { continue };
                for session in
                    store.get_sessions(&key.to_base64()).await.map_err(store_error)?.unwrap_or_default()
                {
                    sessions.push(session.pickle().await);
                }
            }
        }
        let mut inbound_group_sessions = Vec::new();
        for session in store.get_inbound_group_sessions().await.map_err(store_error)? {
            inbound_group_sessions.push(session.pickle().await);
        }
        Ok(Some(Self { account: account.pickle(), sessions, inbound_group_sessions }))
    }

    /// A memory store holding this state, for a client to be built over.
    pub async fn restore(self) -> Result<Arc<MemoryStore>, ClientError> {
        let store = Arc::new(MemoryStore::new());
        let account = Account::from_pickle(self.account).map_err(store_error)?;
        let our_keys = account.device_keys();
        store.save_pending_changes(PendingChanges { account: Some(account) }).await.map_err(store_error)?;
        let sessions = self
            .sessions
            .into_iter()
            .map(|pickle| Session::from_pickle(our_keys.clone(), pickle).map_err(store_error))
            .collect::<Result<Vec<_>, _>>()?;
        let inbound_group_sessions = self
            .inbound_group_sessions
            .into_iter()
            .map(|pickle| InboundGroupSession::from_pickle(pickle).map_err(store_error))
            .collect::<Result<Vec<_>, _>>()?;
        let changes = Changes { sessions, inbound_group_sessions, ..Changes::default() };
        store.save_changes(changes).await.map_err(store_error)?;
        Ok(store)
    }
}
