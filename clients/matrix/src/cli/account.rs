//! `keys` and `login`: the two files every other command reads.

use std::io::{Read, Write};
use std::path::Path;

use dm3::crypto::eth::{Wallet, checksum};
use dm3::keys::DEFAULT_NONCE;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Failure, output};
use crate::gateway::Dm3Keys;
use crate::login::Credentials;
use crate::session::StoredSession;

/// A wallet secret is 66 characters; anything much longer on stdin is not one.
const MAX_SECRET_INPUT: u64 = 1024;

pub fn keys(path: &Path, import: bool, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Failure> {
    let exists = path.try_exists().map_err(|e| Failure::Malformed(format!("{}: {e}", path.display())))?;
    let keys = match (exists, import) {
        (true, true) => {
            return Err(Failure::Malformed(format!(
                "{} exists: an import never replaces a wallet",
                path.display()
            )));
        }
        (true, false) => Dm3Keys::load(path)?,
        (false, import) => {
            let keys = if import {
                Dm3Keys::from_wallet(read_wallet(stdin)?, DEFAULT_NONCE)
            } else {
                Dm3Keys::generate()
            };
            keys.save(path)?;
            keys
        }
    };
    let profile_keys = keys.profile_keys();
    output::line(
        stdout,
        &json!({
            "address": checksum(&keys.wallet().address()),
            "publicEncryptionKey": profile_keys.encryption.public_b64(),
            "publicSigningKey": profile_keys.signing.public_b64(),
            "created": !exists,
        }),
    )
}

fn read_wallet(stdin: &mut dyn Read) -> Result<Wallet, Failure> {
    let mut text = Zeroizing::new(String::new());
    stdin
        .take(MAX_SECRET_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| Failure::Malformed(format!("reading the wallet's secret from stdin: {e}")))?;
    Wallet::from_hex(text.trim())
        .map_err(|e| Failure::Malformed(format!("the wallet's secret on stdin: {e}")))
}

pub async fn login(
    session: &Path,
    homeserver: &str,
    user: &str,
    password: &str,
    device_name: &str,
    stdout: &mut dyn Write,
) -> Result<(), Failure> {
    let credentials = Credentials {
        homeserver: homeserver.to_owned(),
        user: user.to_owned(),
        password: password.to_owned(),
    };
    let matrix = credentials.login(device_name).await?;
    StoredSession::of(homeserver, &matrix).await?.save(session)?;
    output::line(
        stdout,
        &json!({"userId": matrix.user_id()?.as_str(), "deviceId": matrix.device_id()?.as_str(), "homeserver": homeserver}),
    )
}
