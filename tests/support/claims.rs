//! What a gateway user's client makes (docs/gateway.md): of a claim challenge, the claim (the
//! wallet signs the text and a profile that names the node, section 3); of a message, the
//! gateway document it sends (section 1). Shared by the claim's own tests and the networks'
//! end-to-end tests.

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

/// `message`, signed and sealed by a gateway user's client with `signing` for the recipient's
/// encryption key `recipient` at the delivery service `service` (its encryption key, base64, as
/// published): the gateway document the client hands the network.
pub fn sealed_document(
    message: dm3::message::Message,
    signing: &dm3::crypto::signing::SigningKeyPair,
    recipient: &[u8; 32],
    service: (&str, &str),
) -> dm3::gateway_envelope::GatewayEnvelope {
    let ds_key: [u8; 32] = dm3::encoding::b64_decode_array(service.1).unwrap();
    let envelope =
        dm3::envelope::Envelope::seal(&message.sign(signing), signing, recipient, &ds_key).unwrap();
    dm3::gateway_envelope::GatewayEnvelope::from_envelope(&envelope, service.0.parse().unwrap()).unwrap()
}
