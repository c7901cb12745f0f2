//! One key version of a virtual identity: its wallet, the DM3 keys derived from it, sealing.
//!
//! A virtual identity is a secp256k1 wallet like any DM3 user's (docs/protocol.md §3.1): the
//! X25519 and Ed25519 keys come from the wallet's signature over the storage-key message with
//! the reference's `DEFAULT_NONCE`, and the profile is signed by the wallet (§4.2). So only the
//! wallet's 32-byte secret is stored; everything else is derived again when the keys are
//! opened, exactly as a stock DM3 client would derive them from the same wallet.
//!
//! At rest the secret is sealed under the master key as the gateway signer's is
//! ([`crate::vault::wallet`]), with the label `identity:<name>:v<version>`: a sealed key cannot
//! be moved to another identity or another version and still open.
//!
//! `Debug` shows the version and the address; the secrets are zeroized on drop by their own
//! types (`Wallet`, `KxKeyPair`, `SigningKeyPair`).

use std::fmt;

use alloy_primitives::Address;
use dm3::crypto::eth::Wallet;
use dm3::ens::EnsName;
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::profile::{SignedUserProfile, UserProfile};

use crate::vault::{MasterKey, OpenWalletError, SealError, open_wallet, seal_wallet};

/// Why sealed identity keys did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenKeysError {
    /// The AEAD refused: another master key sealed them, or the row was modified.
    #[error(
        "the master key does not open the sealed keys of {name} (version {version}): wrong master key, or the database was modified"
    )]
    WrongMasterKey { name: String, version: u32 },
    #[error("the sealed keys of {name} (version {version}) are unusable: {reason}")]
    Corrupt { name: String, version: u32, reason: String },
}

/// A wallet and its DM3 keys, for one version of one identity. A clone is a copy of the
/// secrets, wiped on drop like the original.
#[derive(Clone)]
pub struct IdentityKeys {
    version: u32,
    wallet: Wallet,
    keys: ProfileKeys,
}

impl IdentityKeys {
    /// A fresh random wallet.
    pub fn generate(version: u32) -> Self {
        Self::from_wallet(version, Wallet::generate())
    }

    /// Version 1 of an on-demand identity ([`super::on_demand`]): the wallet derived from the
    /// master key and the identity's name, the same at every call, so a lookup writes nothing
    /// and the first message stores this very wallet. (Rotation makes a random one, as ever.)
    pub fn derived(master: &MasterKey, name: &EnsName) -> Result<Self, OpenKeysError> {
        let secret = master.derive(DERIVED_WALLET_PURPOSE, name.as_str().as_bytes());
        let wallet = Wallet::from_bytes(&secret).map_err(|e| OpenKeysError::Corrupt {
            name: name.to_string(),
            version: 1,
            reason: format!("the derived wallet is unusable: {e}"),
        })?;
        Ok(Self::from_wallet(1, wallet))
    }

    fn from_wallet(version: u32, wallet: Wallet) -> Self {
        let keys = ProfileKeys::from_wallet(&wallet, DEFAULT_NONCE);
        Self { version, wallet, keys }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The wallet address: what the identity's name resolves to (`addr`).
    pub fn address(&self) -> Address {
        self.wallet.address()
    }

    /// The wallet, which signs the profile (and, for the engine, nothing else).
    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// The X25519 and Ed25519 keys that open envelopes and sign messages.
    pub fn profile_keys(&self) -> &ProfileKeys {
        &self.keys
    }

    /// The profile naming `delivery_service` (the node's own name), signed by the wallet.
    pub fn signed_profile(&self, delivery_service: &EnsName) -> SignedUserProfile {
        UserProfile::from_keys(&self.keys, [delivery_service.as_str()]).sign(&self.wallet)
    }

    /// The wallet secret sealed for `name` and this version.
    pub fn seal(&self, master: &MasterKey, name: &EnsName) -> Result<Vec<u8>, SealError> {
        seal_wallet(master, &seal_label(name, self.version), &self.wallet)
    }

    /// Opens what [`seal`](Self::seal) sealed; the DM3 keys are derived again.
    pub fn open(
        master: &MasterKey,
        name: &EnsName,
        version: u32,
        sealed: &[u8],
    ) -> Result<Self, OpenKeysError> {
        let wallet = open_wallet(master, &seal_label(name, version), sealed).map_err(|e| match e {
            OpenWalletError::WrongMasterKey => {
                OpenKeysError::WrongMasterKey { name: name.to_string(), version }
            }
            OpenWalletError::Corrupt(reason) => {
                OpenKeysError::Corrupt { name: name.to_string(), version, reason }
            }
        })?;
        Ok(Self::from_wallet(version, wallet))
    }
}

/// What the wallets of on-demand identities are derived for; `v1` names this derivation, so
/// a future one cannot give the same name another wallet by accident.
const DERIVED_WALLET_PURPOSE: &str = "dm3-bridge on-demand identity wallet v1";

/// The seal label: binds a sealed key to its identity and version.
fn seal_label(name: &EnsName, version: u32) -> String {
    format!("identity:{name}:v{version}")
}

impl fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeys")
            .field("version", &self.version)
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dm3::encoding::hex_encode;

    fn name(text: &str) -> EnsName {
        EnsName::parse(text).unwrap()
    }

    #[test]
    fn sealed_keys_open_to_the_same_identity() {
        let master = MasterKey::generate().unwrap();
        let keys = IdentityKeys::generate(1);
        let alice = name("tg-1.tg.bridge.eth");
        let sealed = keys.seal(&master, &alice).unwrap();
        let opened = IdentityKeys::open(&master, &alice, 1, &sealed).unwrap();
        assert_eq!(opened.address(), keys.address());
        assert_eq!(opened.profile_keys().encryption.public(), keys.profile_keys().encryption.public());
        let profile = opened.signed_profile(&name("ds.bridge.eth"));
        assert!(profile.verify_against_address(&keys.address()).is_ok());
        assert_eq!(profile.profile().delivery_services(), ["ds.bridge.eth"]);
    }

    #[test]
    fn the_label_binds_identity_and_version_and_the_key_must_match() {
        let master = MasterKey::generate().unwrap();
        let keys = IdentityKeys::generate(2);
        let alice = name("tg-1.tg.bridge.eth");
        let sealed = keys.seal(&master, &alice).unwrap();
        for (who, version) in [(name("tg-2.tg.bridge.eth"), 2), (alice.clone(), 1)] {
            assert!(matches!(
                IdentityKeys::open(&master, &who, version, &sealed),
                Err(OpenKeysError::WrongMasterKey { .. })
            ));
        }
        let other = MasterKey::generate().unwrap();
        let error = IdentityKeys::open(&other, &alice, 2, &sealed).unwrap_err();
        assert!(error.to_string().contains("wrong master key"), "{error}");
    }

    #[test]
    fn a_derived_wallet_is_the_same_for_the_same_name_and_master_key_only() {
        let master = MasterKey::generate().unwrap();
        let carol = name("carol-shs.mx.bridge.eth");
        let first = IdentityKeys::derived(&master, &carol).unwrap();
        assert_eq!(first.version(), 1);
        assert_eq!(first.address(), IdentityKeys::derived(&master, &carol).unwrap().address());
        let dave = name("dave-shs.mx.bridge.eth");
        assert_ne!(first.address(), IdentityKeys::derived(&master, &dave).unwrap().address());
        let other = MasterKey::generate().unwrap();
        assert_ne!(first.address(), IdentityKeys::derived(&other, &carol).unwrap().address());
        // Sealed like any key version, it opens to the same wallet.
        let sealed = first.seal(&master, &carol).unwrap();
        let opened = IdentityKeys::open(&master, &carol, 1, &sealed).unwrap();
        assert_eq!(opened.address(), first.address());
        assert_eq!(opened.profile_keys().signing.public_b64(), first.profile_keys().signing.public_b64());
        let again = IdentityKeys::derived(&master, &carol).unwrap();
        assert_eq!(again.profile_keys().signing.public_b64(), first.profile_keys().signing.public_b64());
    }

    #[test]
    fn debug_and_errors_show_no_secret() {
        let keys = IdentityKeys::generate(1);
        let secret = hex_encode(keys.wallet().secret_bytes().as_ref());
        let shown = format!("{keys:?}");
        assert!(!shown.contains(&secret[2..]));
        assert!(!shown.contains(keys.profile_keys().encryption.secret_b64().as_str()));
    }
}
