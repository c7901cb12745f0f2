//! The gateway user's wallet and the DM3 keys derived from it, and the file that keeps them.
//!
//! The keys are derived as every DM3 client derives them (docs/protocol.md §3.1, P7): the wallet
//! signs the storage-key text with a nonce, and the signature's SHA-256 seeds both key pairs. So
//! the file needs only the wallet's secret and the nonce; the same wallet in another DM3 client
//! with the same nonce has the same keys.
//!
//! The file is JSON, `{"version": 1, "wallet": "0x<64 hex>", "nonce": "0x…"}`, written with mode
//! 0600 and refused when others can read it: it is the user's whole identity.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use dm3::crypto::eth::Wallet;
use dm3::encoding::hex_encode;
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::GatewayClientError;

/// The largest key file read; a real one is under 200 bytes.
const MAX_FILE_BYTES: u64 = 4096;

/// A wallet and its DM3 keys. Prints no secret.
pub struct Dm3Keys {
    wallet: Wallet,
    nonce: String,
    keys: ProfileKeys,
}

impl fmt::Debug for Dm3Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dm3Keys")
            .field("address", &self.wallet.address())
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// The file's JSON; wiped from memory when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    wallet: String,
    nonce: String,
}

impl Dm3Keys {
    /// The keys of `wallet` under `nonce` (the derivation's signature is made here).
    pub fn from_wallet(wallet: Wallet, nonce: &str) -> Self {
        let keys = ProfileKeys::from_wallet(&wallet, nonce);
        Self { wallet, nonce: nonce.to_owned(), keys }
    }

    /// A new random wallet, with the reference clients' default nonce.
    pub fn generate() -> Self {
        Self::from_wallet(Wallet::generate(), DEFAULT_NONCE)
    }

    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    pub fn profile_keys(&self) -> &ProfileKeys {
        &self.keys
    }

    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> Result<Self, GatewayClientError> {
        let error = |reason: String| GatewayClientError::KeyFile { path: path.display().to_string(), reason };
        let metadata = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(error(format!(
                "others may read it (mode {:o}); make it 0600",
                metadata.permissions().mode() & 0o777
            )));
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(error(format!("larger than {MAX_FILE_BYTES} bytes: not a key file")));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?);
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| error(format!("not a key file: {e}")))?;
        if file.version != 1 {
            return Err(error(format!("version {} is not 1", file.version)));
        }
        let wallet = Wallet::from_hex(&file.wallet).map_err(|e| error(format!("the wallet: {e}")))?;
        Ok(Self::from_wallet(wallet, &file.nonce))
    }

    /// Writes the key file at `path`, mode 0600; refuses to replace an existing file (a lost
    /// wallet cannot be made again).
    pub fn save(&self, path: &Path) -> Result<(), GatewayClientError> {
        let error = |reason: String| GatewayClientError::KeyFile { path: path.display().to_string(), reason };
        let file = KeyFile {
            version: 1,
            wallet: hex_encode(&*self.wallet.secret_bytes()),
            nonce: self.nonce.clone(),
        };
        let text = Zeroizing::new(serde_json::to_string(&file).map_err(|e| error(e.to_string()))?);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| error(e.to_string()))?;
        out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|e| error(e.to_string()))
    }
}
