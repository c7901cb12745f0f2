//! Network user ids ↔ ENS labels: reversible, collision-free, ENS-normalized.
//!
//! A bridged user's name is `<label>.<network sub-label>.<parent>` (see [`super::scheme`]).
//! This file is the label part; `docs/names.md` is its specification and must change with it.
//!
//! **Telegram**: `tg-<id>`, the user id in canonical decimal (`tg-12345`).
//!
//! **Matrix**: the user id without its leading `@`, escaped byte by byte into the alphabet
//! `a-z 0-9 -`, with `-` as the escape character:
//!
//! | byte | label text |
//! | --- | --- |
//! | `a`–`z`, `0`–`9` | itself |
//! | `.` | `-p` |
//! | `:` | `-s` |
//! | `_` | `-u` |
//! | `-` | `-h` |
//! | any other byte `b` (upper case, `=`, `/`, `+`, …) | `-` and two lowercase hex digits of `b` (`B` → `-42`) |
//!
//! so `@Bob_x:example.org` becomes `-42ob-ux-sexample-porg`. Why this shape:
//! - ENS labels are lower case (ENSIP-15 folds case, so `Bob` and `bob` would hash to the
//!   same node): upper case must be escaped, and Matrix ids are case-sensitive.
//! - The single-letter codes are outside the hex digits (`g`–`z`), so after a `-` the next
//!   character alone says which kind of escape follows: decoding is unambiguous.
//! - Every escape is `-` and then a letter or digit, so a label never contains `--` (ENSIP-15
//!   forbids it in positions 3–4) and never ends with `-`. It may start with `-`, which
//!   ENSIP-15 and ethers 5.7.2 accept.
//! - Decoding accepts only the canonical encoding (re-encoding must give the same label), so
//!   one user has exactly one label and one label at most one user.
//!
//! **Long Matrix ids.** A label holds at most 63 bytes. When the escaped form is longer, the
//! label is `-z` followed by 40 hex digits: the first 20 bytes of
//! `SHA-256("dm3-bridge matrix label v1\0" ‖ user id)`. `z` is no escape code, so such a label
//! can never be the escaped form of anything; it cannot be reversed by computation, which is
//! why every identity's network and user id are recorded in the database beside its name
//! (whose UNIQUE constraints also refuse a hash collision rather than alias two users).

use super::user_id::{MatrixUserId, TelegramUserId, UserIdError};
use crate::hash::sha256;

/// The longest ENS label our names use (the DNS wire format's limit, which ethers enforces).
pub const MAX_LABEL_LEN: usize = 63;
/// What starts every Telegram label.
pub const TELEGRAM_PREFIX: &str = "tg-";
/// What starts every hashed Matrix label.
pub const HASHED_PREFIX: &str = "-z";
/// Hex digits of the hash in a hashed label (20 bytes).
const HASH_HEX_LEN: usize = 40;
const HASH_DOMAIN: &[u8] = b"dm3-bridge matrix label v1\0";

/// Why a label is not one this scheme produces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("the label is empty")]
    Empty,
    #[error("the label is {0} bytes long; at most 63 are allowed")]
    TooLong(usize),
    #[error("character {ch:?} at byte {at} is not allowed (labels use a-z, 0-9 and - escapes)")]
    BadCharacter { ch: char, at: usize },
    #[error("the escape at byte {at} is not one of -p -s -u -h or - and two lowercase hex digits")]
    BadEscape { at: usize },
    #[error("the escaped bytes are not UTF-8")]
    NotUtf8,
    #[error("the label is not in canonical form (it should be {canonical:?})")]
    NotCanonical { canonical: String },
    #[error("a Telegram label is tg- and a user id, e.g. tg-12345")]
    NotTelegram,
    #[error("a username alias is u- and a Telegram username with each _ written -, e.g. u-carol-x")]
    NotAlias,
    #[error("a hashed label is -z and 40 lowercase hex digits")]
    BadHash,
    #[error("an identity name has exactly one label under its network's sub-name")]
    TooDeep,
    #[error("the label does not decode to a user id: {0}")]
    UserId(#[from] UserIdError),
}

/// What a Matrix label says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixLabel {
    /// An escaped label: the user id itself.
    Escaped(MatrixUserId),
    /// A hashed label: the user is known only from the database.
    Hashed,
}

/// `tg-<id>`.
pub fn telegram_label(id: TelegramUserId) -> String {
    format!("{TELEGRAM_PREFIX}{id}")
}

/// The user id of a Telegram label.
pub fn parse_telegram_label(label: &str) -> Result<TelegramUserId, LabelError> {
    check_length(label)?;
    let id = label.strip_prefix(TELEGRAM_PREFIX).ok_or(LabelError::NotTelegram)?;
    id.parse().map_err(|_| LabelError::NotTelegram)
}

/// The label of a Matrix user: escaped, or hashed when the escaped form is too long.
pub fn matrix_label(id: &MatrixUserId) -> String {
    let escaped = escape(id.as_str().get(1..).unwrap_or_default());
    if escaped.len() <= MAX_LABEL_LEN { escaped } else { hashed_label(id) }
}

/// Reads a Matrix label; refuses anything [`matrix_label`] cannot have produced (except that a
/// hashed label is only checked for its form).
pub fn parse_matrix_label(label: &str) -> Result<MatrixLabel, LabelError> {
    check_length(label)?;
    if let Some(hash) = label.strip_prefix(HASHED_PREFIX) {
        let ok = hash.len() == HASH_HEX_LEN && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        return if ok { Ok(MatrixLabel::Hashed) } else { Err(LabelError::BadHash) };
    }
    let id: MatrixUserId = format!("@{}", unescape(label)?).parse()?;
    let canonical = matrix_label(&id);
    if canonical != label {
        return Err(LabelError::NotCanonical { canonical });
    }
    Ok(MatrixLabel::Escaped(id))
}

/// The escaping of the table above, on any text (no length limit).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' => out.push(char::from(byte)),
            b'.' => out.push_str("-p"),
            b':' => out.push_str("-s"),
            b'_' => out.push_str("-u"),
            b'-' => out.push_str("-h"),
            other => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push('-');
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 0x0f)]));
            }
        }
    }
    out
}

/// The inverse of [`escape`]. Strict about the alphabet and the escapes; canonical form is
/// checked by the callers, which know what the text must be.
pub fn unescape(label: &str) -> Result<String, LabelError> {
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' => {
                out.push(byte);
                at += 1;
            }
            b'-' => {
                let decoded = match bytes.get(at + 1) {
                    Some(b'p') => Some((b'.', 2)),
                    Some(b's') => Some((b':', 2)),
                    Some(b'u') => Some((b'_', 2)),
                    Some(b'h') => Some((b'-', 2)),
                    Some(&high) => match (hex_value(high), bytes.get(at + 2).copied().and_then(hex_value)) {
                        (Some(high), Some(low)) => Some(((high << 4) | low, 3)),
                        _ => None,
                    },
                    None => None,
                };
                let (value, width) = decoded.ok_or(LabelError::BadEscape { at })?;
                out.push(value);
                at += width;
            }
            _ => {
                let ch = label.get(at..).and_then(|rest| rest.chars().next()).unwrap_or('\u{fffd}');
                return Err(LabelError::BadCharacter { ch, at });
            }
        }
    }
    String::from_utf8(out).map_err(|_| LabelError::NotUtf8)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn hashed_label(id: &MatrixUserId) -> String {
    let mut input = HASH_DOMAIN.to_vec();
    input.extend_from_slice(id.as_str().as_bytes());
    let digest = sha256(&input);
    let hex: String = digest.iter().take(HASH_HEX_LEN / 2).map(|b| format!("{b:02x}")).collect();
    format!("{HASHED_PREFIX}{hex}")
}

fn check_length(label: &str) -> Result<(), LabelError> {
    match label.len() {
        0 => Err(LabelError::Empty),
        len if len > MAX_LABEL_LEN => Err(LabelError::TooLong(len)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn matrix(id: &str) -> MatrixUserId {
        id.parse().unwrap()
    }

    #[test]
    fn the_documented_examples() {
        assert_eq!(telegram_label(TelegramUserId::new(12345).unwrap()), "tg-12345");
        assert_eq!(matrix_label(&matrix("@Bob_x:example.org")), "-42ob-ux-sexample-porg");
        assert_eq!(matrix_label(&matrix("@bob:example.org")), "bob-sexample-porg");
        assert_eq!(matrix_label(&matrix("@a-b=c:h:8448")), "a-hb-3dc-sh-s8448");
        assert_eq!(
            parse_matrix_label("-42ob-ux-sexample-porg").unwrap(),
            MatrixLabel::Escaped(matrix("@Bob_x:example.org"))
        );
        assert_eq!(parse_telegram_label("tg-12345").unwrap().get(), 12345);
    }

    #[test]
    fn long_ids_get_hashed_labels() {
        let long = matrix(&format!("@{}:example.org", "a".repeat(60)));
        let label = matrix_label(&long);
        assert!(label.starts_with("-z") && label.len() == 42, "{label}");
        assert_eq!(parse_matrix_label(&label).unwrap(), MatrixLabel::Hashed);
        assert_ne!(label, matrix_label(&matrix(&format!("@{}:example.org", "a".repeat(61)))));
        assert_eq!(parse_matrix_label("-zabc"), Err(LabelError::BadHash));
    }

    #[test]
    fn non_canonical_and_malformed_labels_are_refused() {
        // `-62` is `b` written the long way.
        assert!(matches!(parse_matrix_label("-62ob-sx"), Err(LabelError::NotCanonical { .. })));
        assert_eq!(parse_matrix_label("bob-"), Err(LabelError::BadEscape { at: 3 }));
        assert_eq!(parse_matrix_label("bob-x"), Err(LabelError::BadEscape { at: 3 }));
        assert_eq!(parse_matrix_label("bob-4"), Err(LabelError::BadEscape { at: 3 }));
        assert_eq!(parse_matrix_label("bo_b"), Err(LabelError::BadCharacter { ch: '_', at: 2 }));
        assert!(matches!(parse_matrix_label("bob"), Err(LabelError::UserId(_))));
        assert!(matches!(parse_matrix_label(&"a".repeat(64)), Err(LabelError::TooLong(64))));
        assert_eq!(parse_matrix_label(""), Err(LabelError::Empty));
        for bad in ["tg-0", "tg-", "tg-01", "tg--1", "12345", "tg-1x"] {
            assert_eq!(parse_telegram_label(bad), Err(LabelError::NotTelegram), "{bad}");
        }
    }
}
