//! A secp256k1 wallet sealed under the master key: the one way one is sealed and opened.
//!
//! Two kinds of wallet are kept sealed: the gateway signer ([`crate::gateway::GatewaySigner`],
//! a file) and each key version of a virtual identity ([`crate::identities::IdentityKeys`], a
//! database row). Both store only the wallet's 32-byte secret, sealed ([`super::seal`]) under a
//! label that names its slot, and both must tell the operator the same two things when it does
//! not open: the master key is not the one that sealed it (or the bytes were modified), or what
//! opened is not a wallet. Each caller names the slot in its own error; the opening is here.

use dm3::crypto::eth::Wallet;

use super::{MasterKey, SealError};

/// Why a sealed wallet did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenWalletError {
    /// The AEAD refused, or the blob names another master-key version: another master key
    /// sealed it, or it was modified.
    #[error("the master key does not open it (wrong master key, or the data was modified)")]
    WrongMasterKey,
    /// It opened (or could not be read as a sealed blob), but is not a wallet.
    #[error("{0}")]
    Corrupt(String),
}

/// Seals the secret of `wallet` for the slot `label`.
pub fn seal_wallet(master: &MasterKey, label: &str, wallet: &Wallet) -> Result<Vec<u8>, SealError> {
    master.seal(label, wallet.secret_bytes().as_ref())
}

/// Opens what [`seal_wallet`] sealed under the same `label`.
pub fn open_wallet(master: &MasterKey, label: &str, sealed: &[u8]) -> Result<Wallet, OpenWalletError> {
    let secret = master.open(label, sealed).map_err(|e| match e {
        SealError::WrongKeyOrTampered | SealError::KeyVersion { .. } => OpenWalletError::WrongMasterKey,
        other => OpenWalletError::Corrupt(other.to_string()),
    })?;
    let bytes: &[u8; 32] = secret
        .expose()
        .try_into()
        .map_err(|_| OpenWalletError::Corrupt(format!("{} bytes instead of 32", secret.len())))?;
    Wallet::from_bytes(bytes).map_err(|_| OpenWalletError::Corrupt("not a secp256k1 key".to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_wallet_opens_only_under_its_key_and_label() {
        let master = MasterKey::generate().unwrap();
        let wallet = Wallet::generate();
        let sealed = seal_wallet(&master, "slot-a", &wallet).unwrap();
        assert_eq!(open_wallet(&master, "slot-a", &sealed).unwrap().address(), wallet.address());
        assert_eq!(open_wallet(&master, "slot-b", &sealed).unwrap_err(), OpenWalletError::WrongMasterKey);
        let other = MasterKey::generate().unwrap();
        assert_eq!(open_wallet(&other, "slot-a", &sealed).unwrap_err(), OpenWalletError::WrongMasterKey);
    }

    #[test]
    fn what_is_not_a_wallet_is_corrupt() {
        let master = MasterKey::generate().unwrap();
        let short = master.seal("slot", &[7; 31]).unwrap();
        assert_eq!(
            open_wallet(&master, "slot", &short).unwrap_err(),
            OpenWalletError::Corrupt("31 bytes instead of 32".to_owned())
        );
        let zero = master.seal("slot", &[0; 32]).unwrap();
        assert_eq!(
            open_wallet(&master, "slot", &zero).unwrap_err(),
            OpenWalletError::Corrupt("not a secp256k1 key".to_owned())
        );
        assert!(matches!(open_wallet(&master, "slot", &[1, 2]), Err(OpenWalletError::Corrupt(_))));
    }
}
