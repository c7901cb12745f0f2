//! DM3 names in Telegram deep links: `https://t.me/<bot>?start=<payload>`.
//!
//! Telegram passes the payload to the bot as `/start <payload>` and allows only `A-Z a-z 0-9 _ -`,
//! at most 64 characters. DM3 names are ENS names: lowercase labels joined by dots, mostly
//! `a-z 0-9 -`, but ENS also allows `_` and any normalized Unicode. The encoding has two forms,
//! told apart by the first character:
//!
//! - **plain** (first character not an uppercase letter): for names made only of `a-z 0-9 - .`,
//!   each `.` becomes `_` and everything else stays. `alice.eth` → `alice_eth`. Readable, and
//!   the common case.
//! - **base64** (first character `B`): `B` followed by the unpadded base64url of the name's
//!   UTF-8 bytes, for every other name. `Zoë.eth` is not lowercase and never reaches here;
//!   `zoë.eth` → `Bem_Dqy5ldGg`.
//!
//! Plain payloads never hold an uppercase letter, so the forms cannot be confused and decoding
//! is exact: `decode(encode(name)) == name` for every name that fits (property-tested). A name
//! too long for 64 characters has no deep link; the bot says so and `/to <name>` still works.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest start payload Telegram accepts.
pub const MAX_PAYLOAD_CHARS: usize = 64;
/// The first character of the base64 form.
const BASE64_MARK: char = 'B';
/// The first character of a held-message link: the start of a username's holder for a DM3
/// sender who wrote to its alias (docs/names.md section 8), followed by the bridge's token.
const HELD_MARK: char = 'H';
/// Longest token a held-message link carries.
const MAX_TOKEN_CHARS: usize = 40;

/// Why a name has no deep link, or a payload names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeepLinkError {
    /// The name encodes to more than 64 characters.
    #[error(
        "the name is too long for a Telegram link ({len} characters encoded; at most {MAX_PAYLOAD_CHARS})"
    )]
    TooLong { len: usize },
    /// The payload is not one this bridge makes.
    #[error("this start link does not name a DM3 user")]
    NotAName,
}

/// The start payload for `name`.
pub fn encode(name: &str) -> Result<String, DeepLinkError> {
    let plain = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let payload = if plain {
        name.replace('.', "_")
    } else {
        format!("{BASE64_MARK}{}", URL_SAFE_NO_PAD.encode(name.as_bytes()))
    };
    if payload.len() > MAX_PAYLOAD_CHARS {
        return Err(DeepLinkError::TooLong { len: payload.len() });
    }
    Ok(payload)
}

/// The start payload of a held-message link carrying `token` (base64url, as the bridge makes it).
pub fn held(token: &str) -> Result<String, DeepLinkError> {
    let payload = format!("{HELD_MARK}{token}");
    match held_token(&payload) {
        Some(_) => Ok(payload),
        None => Err(DeepLinkError::TooLong { len: payload.len() }),
    }
}

/// The token of a held-message link's payload; `None` for any other payload. Like a plain
/// payload it cannot be confused with the other forms: it starts with an uppercase letter other
/// than `B`.
pub fn held_token(payload: &str) -> Option<&str> {
    let token = payload.strip_prefix(HELD_MARK)?;
    let valid = (1..=MAX_TOKEN_CHARS).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then_some(token)
}

/// The name a start payload encodes.
pub fn decode(payload: &str) -> Result<String, DeepLinkError> {
    if payload.is_empty() || payload.len() > MAX_PAYLOAD_CHARS {
        return Err(DeepLinkError::NotAName);
    }
    if let Some(encoded) = payload.strip_prefix(BASE64_MARK) {
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| DeepLinkError::NotAName)?;
        let name = String::from_utf8(bytes).map_err(|_| DeepLinkError::NotAName)?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DeepLinkError::NotAName);
        }
        return Ok(name);
    }
    if !payload.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(DeepLinkError::NotAName);
    }
    Ok(payload.replace('_', "."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn examples() {
        assert_eq!(encode("alice.eth").unwrap(), "alice_eth");
        assert_eq!(decode("alice_eth").unwrap(), "alice.eth");
        assert_eq!(encode("zoë.eth").unwrap(), "Bem_Dqy5ldGg");
        assert_eq!(decode("Bem_Dqy5ldGg").unwrap(), "zoë.eth");
        assert_eq!(encode("_x.eth").unwrap(), "BX3guZXRo");
        assert_eq!(decode("BX3guZXRo").unwrap(), "_x.eth");
        assert_eq!(encode(&"a".repeat(65)), Err(DeepLinkError::TooLong { len: 65 }));
        for bad in ["", "Alice", "a.b", "B!!", "B", "a b", &"a".repeat(65)] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(held("aB-_9").unwrap(), "HaB-_9");
        assert_eq!(held_token("HaB-_9"), Some("aB-_9"));
        assert!(decode("HaB-_9").is_err(), "a held link names no DM3 user");
        for bad in ["H", "alice_eth", "Bem_Dqy5ldGg", "Ha b", &format!("H{}", "a".repeat(41))] {
            assert_eq!(held_token(bad), None, "{bad:?}");
        }
        assert!(held(&"a".repeat(41)).is_err());
    }

    proptest! {
        #[test]
        fn plain_names_round_trip(name in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,2}") {
            let payload = encode(&name).unwrap();
            prop_assert!(payload.len() <= MAX_PAYLOAD_CHARS);
            prop_assert!(payload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            prop_assert_eq!(decode(&payload).unwrap(), name);
        }

        #[test]
        fn any_name_that_fits_round_trips(name in "[^\\s\\p{C}]{1,40}") {
            match encode(&name) {
                Ok(payload) => {
                    prop_assert!(payload.len() <= MAX_PAYLOAD_CHARS);
                    prop_assert!(payload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                    prop_assert_eq!(decode(&payload).unwrap(), name);
                }
                Err(DeepLinkError::TooLong { len }) => prop_assert!(len > MAX_PAYLOAD_CHARS),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn decoding_never_panics(payload in "\\PC{0,70}") {
            let _ = decode(&payload);
        }
    }
}
