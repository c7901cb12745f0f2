//! The gateway signer: the secp256k1 key whose signature the OffchainResolver trusts.
//!
//! The resolver contract on chain accepts an answer only if it recovers to one of its
//! registered signers (docs/protocol.md §12.2), so this key is the node's authority over every
//! name under the parent. It is kept like the node keys ([`crate::node_keys`]): sealed under
//! the master key (label `gateway-signer`), one line of base64 in a 0600 file in the data
//! directory (`identities.gateway_signer_file`).
//!
//! It is generated at the first start when the file is missing (so `init` still writes only
//! its three files, and data directories made before this feature gain it on upgrade). Its
//! address is logged at every start, noted by `check`, and shown by `GET /admin/gateway` and
//! `dm3-bridge identity gateway`, for the operator to register on the resolver. Replicas of a
//! node must share the file, as they share `node-keys.sealed`.

use std::fmt;
use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dm3::crypto::eth::Wallet;

use crate::vault::{MasterKey, OpenWalletError, SealError, open_wallet, seal_wallet};

/// The seal label.
const LABEL: &str = "gateway-signer";

/// Why the gateway signer could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum GatewaySignerError {
    #[error(
        "master key does not open the sealed gateway signer: wrong key file? ({} was sealed under another master key, or modified)",
        path.display()
    )]
    WrongMasterKey { path: PathBuf },
    #[error("the sealed gateway signer in {} is unusable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the gateway signer file {} does not exist (it is created at the first start)", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read the gateway signer file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the gateway signer file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot seal the gateway signer: {0}")]
    Seal(SealError),
}

/// The key that signs gateway answers. `Debug` shows the address only.
pub struct GatewaySigner {
    wallet: Wallet,
}

impl GatewaySigner {
    pub fn generate() -> Self {
        Self { wallet: Wallet::generate() }
    }

    /// The address to register as a signer on the OffchainResolver.
    pub fn address(&self) -> Address {
        self.wallet.address()
    }

    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>, GatewaySignerError> {
        seal_wallet(master, LABEL, &self.wallet).map_err(GatewaySignerError::Seal)
    }

    /// Opens what [`seal`](Self::seal) sealed; `path` only names the source in errors.
    pub fn open(master: &MasterKey, sealed: &[u8], path: &Path) -> Result<Self, GatewaySignerError> {
        let wallet = open_wallet(master, LABEL, sealed).map_err(|e| match e {
            OpenWalletError::WrongMasterKey => GatewaySignerError::WrongMasterKey { path: path.to_owned() },
            OpenWalletError::Corrupt(reason) => GatewaySignerError::Corrupt { path: path.to_owned(), reason },
        })?;
        Ok(Self { wallet })
    }

    /// Reads and opens the file.
    pub fn read_file(master: &MasterKey, path: &Path) -> Result<Self, GatewaySignerError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GatewaySignerError::Missing { path: path.to_owned() }
            } else {
                GatewaySignerError::Read { path: path.to_owned(), source }
            }
        })?;
        let sealed = STANDARD.decode(text.trim()).map_err(|_| GatewaySignerError::Corrupt {
            path: path.to_owned(),
            reason: "not base64".to_owned(),
        })?;
        Self::open(master, &sealed, path)
    }

    /// Writes a new file (mode 0600); never replaces an existing one.
    pub fn write_new_file(&self, master: &MasterKey, path: &Path) -> Result<(), GatewaySignerError> {
        let mut line = STANDARD.encode(self.seal(master)?);
        line.push('\n');
        crate::new_file::write_new_file(path, line.as_bytes(), 0o600)
            .map_err(|source| GatewaySignerError::Write { path: path.to_owned(), source })
    }

    /// The signer in `path`, generated and written first if the file does not exist.
    /// The flag says whether it was generated now.
    pub fn open_or_create(master: &MasterKey, path: &Path) -> Result<(Self, bool), GatewaySignerError> {
        match Self::read_file(master, path) {
            Ok(signer) => Ok((signer, false)),
            Err(GatewaySignerError::Missing { .. }) => {
                let signer = Self::generate();
                match signer.write_new_file(master, path) {
                    Ok(()) => Ok((signer, true)),
                    // Another process (a replica, the CLI) created it first: use theirs.
                    Err(GatewaySignerError::Write { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Ok((Self::read_file(master, path)?, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for GatewaySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySigner").field("address", &self.address()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway-signer.sealed");
        let master = MasterKey::generate().unwrap();
        let (first, created) = GatewaySigner::open_or_create(&master, &path).unwrap();
        assert!(created);
        let (again, created) = GatewaySigner::open_or_create(&master, &path).unwrap();
        assert!(!created);
        assert_eq!(first.address(), again.address());
        let wrong = GatewaySigner::open_or_create(&MasterKey::generate().unwrap(), &path).unwrap_err();
        assert!(
            wrong.to_string().starts_with("master key does not open the sealed gateway signer"),
            "{wrong}"
        );
    }

    #[test]
    fn debug_shows_the_address_only() {
        let signer = GatewaySigner::generate();
        let secret = dm3::encoding::hex_encode(signer.wallet().secret_bytes().as_ref());
        assert!(!format!("{signer:?}").contains(&secret[2..]));
    }
}
