//! What a gateway user's client makes of a claim challenge (docs/gateway.md section 3): the
//! wallet signs the text and a profile that names the node. Shared by the claim's own tests and
//! the networks' end-to-end tests, which hand it over through the bots.

use dm3::crypto::eth::{Wallet, checksum};
use dm3::keys::ProfileKeys;
use dm3::profile::UserProfile;
use serde_json::{Value, json};

/// The keys a gateway user's wallet makes (as a DM3 client derives them).
pub fn gateway_keys(wallet: &Wallet) -> ProfileKeys {
    ProfileKeys::from_wallet(wallet, "0x123")
}

/// The claim's JSON for challenge `text`: `wallet`'s address and a profile it signed, naming
/// `node`; the challenge signed by `signer` (another wallet than `wallet`, as a forger's would).
pub fn claim_json(text: &str, wallet: &Wallet, signer: &Wallet, node: &str) -> Value {
    let profile = UserProfile::from_keys(&gateway_keys(wallet), [node]).sign(wallet);
    json!({
        "challenge": text,
        "signature": signer.personal_sign(text.as_bytes()).to_hex(),
        "address": checksum(&wallet.address()),
        "signedProfile": profile.to_value(),
    })
}
