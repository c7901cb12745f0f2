//! [`EnsName`]: a normalized ENS name, checked once at the edge.
//!
//! Two normalizations meet in DM3 (docs/protocol.md §2.2): `normalizeEnsName` is
//! ethers' IDNA2003 `nameprep` (in practice: lowercase ASCII), while `namehash`
//! runs ENSIP-15 `ens_normalize` first. A node computed from a name that is not
//! ENSIP-15-normal differs from the reference's, so every name that reaches
//! [`namehash`](super::namehash) goes through this type.
//!
//! The maintained Rust ports of ENSIP-15 (`ens-normalize` 0.1, `ens-normalize-rs`
//! 0.2) each embed about 3.8 MB of Unicode tables parsed as JSON on first use and
//! have two releases behind them, so we implement a subset instead. Its promise:
//! a name that ENSIP-15 accepts is either rejected here or normalized to exactly
//! ENSIP-15's text, so its namehash matches ethers'. We checked this against the
//! upstream validation corpus (`@adraffy/ens-normalize` 1.11.1, Unicode 17, 38 613
//! names, mostly edge cases): no differences, and 45 % of the names it accepts
//! are rejected here. ethers 5.7.2 bundles an earlier ENSIP-15 draft, which agrees
//! on ASCII names.
//!
//! Accepted, label by label (labels are separated by `.` only):
//! - the ENSIP-15 *ignored* code points (soft hyphen, variation selectors, …) are dropped;
//! - full-width forms of ASCII (`U+FF01`–`U+FF5E`, `ａｌｉｃｅ`) become their ASCII characters,
//!   as ENSIP-15 and ethers 5.7.2 map them; the ASCII rules below then apply to the result
//!   (the full-width full stop stays a refused dot look-alike);
//! - every character is lowercased (Unicode default case mapping, char by char),
//!   then the label is put in NFC;
//! - ASCII characters must be `a-z`, `0-9`, `-` or `_` (ENSIP-15 also allows `$`; we do not);
//! - `_` only in a leading run (ENSIP-15 "underscore allowed only at start");
//! - no `--` in the third and fourth positions (ENSIP-15 "invalid label extension");
//! - non-ASCII characters pass unless they are controls, whitespace, format or bidi
//!   controls, ZWJ/ZWNJ, private-use, non-characters, tags, `U+FFFD`, dot look-alikes,
//!   the ENSIP-15 fenced characters, characters ENSIP-15 maps other than by
//!   lowercasing (dashes, Extended Arabic-Indic digits, Cherokee, …), or characters
//!   with a compatibility mapping (NFKC differs: full-width letters, ligatures, superscripts);
//! - a label may not start with a combining mark, may not be empty, and is at most
//!   63 bytes (ethers' `dnsEncode` limit);
//! - the whole name is at most 255 bytes DNS-encoded (253 bytes of text), and the
//!   raw input at most 1024 bytes, so that parsing work is bounded.
//!
//! The empty string is the root name (namehash `0x00…00`). The other direction is
//! not promised: some non-ASCII names that ENSIP-15 rejects (confusables, script
//! mixing, unassigned or disallowed symbols) pass here; ethers' `namehash` throws
//! on them, so no reference client can have registered them. Emoji pass as plain
//! characters; ZWJ sequences are rejected. DM3's own names are ASCII.

use std::fmt;
use std::str::FromStr;

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// The longest label, in UTF-8 bytes: the DNS wire format's length byte allows 63.
pub const MAX_LABEL_LEN: usize = 63;

/// The longest name, in bytes of its DNS wire encoding (RFC 1035 §2.3.4).
pub const MAX_DNS_ENCODED_LEN: usize = 255;

/// The longest raw input we look at; anything longer cannot normalize to a valid name
/// without an absurd number of ignored characters.
pub const MAX_INPUT_LEN: usize = 1024;

/// Why a string is not an ENS name we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnsNameError {
    #[error("the name is longer than {MAX_INPUT_LEN} bytes")]
    InputTooLong,
    #[error("the name is {encoded} bytes DNS-encoded; at most {MAX_DNS_ENCODED_LEN} are allowed")]
    TooLong { encoded: usize },
    #[error("label {index} is empty")]
    EmptyLabel { index: usize },
    #[error("label {index} is {len} bytes long; at most {MAX_LABEL_LEN} are allowed")]
    LabelTooLong { index: usize, len: usize },
    #[error("character {ch:?} is not allowed in an ENS name (label {index})")]
    DisallowedCharacter { index: usize, ch: char },
    #[error(
        "character {ch:?} in label {index} has a compatibility form that ENSIP-15 maps; write it as ENSIP-15 does"
    )]
    CompatibilityCharacter { index: usize, ch: char },
    #[error("an underscore may only appear at the start of label {index}")]
    MisplacedUnderscore { index: usize },
    #[error("label {index} has `--` in its third and fourth positions")]
    LabelExtension { index: usize },
    #[error("label {index} starts with a combining mark")]
    LeadingCombiningMark { index: usize },
    #[error("label {index} changes when normalized a second time")]
    Unstable { index: usize },
    /// [`EnsName::from_normalized`]: the text is a name, but not in its normal form.
    #[error("the name is not normalized (its normal form is {normal:?})")]
    NotNormalized { normal: String },
    /// [`EnsName::from_normalized`]: the empty text (the root) names nobody.
    #[error("the name is empty")]
    Empty,
}

/// A normalized ENS name (see the module documentation for what that means here).
///
/// It always DNS-encodes within [`MAX_DNS_ENCODED_LEN`] bytes, and normalizing
/// its text again gives the same name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnsName(String);

impl EnsName {
    /// Normalizes and validates `input`.
    pub fn parse(input: &str) -> Result<Self, EnsNameError> {
        if input.len() > MAX_INPUT_LEN {
            return Err(EnsNameError::InputTooLong);
        }
        if input.is_empty() {
            return Ok(Self::root());
        }
        let mut name = String::with_capacity(input.len());
        let mut encoded = 1; // the root's zero byte
        for (index, raw) in input.split('.').enumerate() {
            let label = normalize_label(raw, index)?;
            encoded += 1 + label.len();
            if index > 0 {
                name.push('.');
            }
            name.push_str(&label);
        }
        if encoded > MAX_DNS_ENCODED_LEN {
            return Err(EnsNameError::TooLong { encoded });
        }
        Ok(Self(name))
    }

    /// A name that is already in normal form and not the root: what a database or a queue
    /// keeps, having stored the result of [`parse`](Self::parse). Unlike `parse` it normalizes
    /// nothing, so a value that was written wrong (`Alice.eth`, a hand-edited row) is an error
    /// rather than quietly a different key.
    pub fn from_normalized(text: &str) -> Result<Self, EnsNameError> {
        if text.is_empty() {
            return Err(EnsNameError::Empty);
        }
        let name = Self::parse(text)?;
        if name.0 != text {
            let normal: String = name.0.chars().take(80).collect();
            return Err(EnsNameError::NotNormalized { normal });
        }
        Ok(name)
    }

    /// The root name `""`.
    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels from the leftmost (most specific) to the top-level one; none for the root.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.').filter(|label| !label.is_empty())
    }

    /// Whether `self` is `parent` or lies under it (`a.b.eth` is under `b.eth` and `eth`).
    pub fn is_within(&self, parent: &EnsName) -> bool {
        parent.is_root()
            || self.0 == parent.0
            || self.0.strip_suffix(parent.as_str()).is_some_and(|head| head.ends_with('.'))
    }

    /// The bytes of the DNS wire encoding, counted without building it.
    pub fn dns_encoded_len(&self) -> usize {
        self.labels().map(|label| 1 + label.len()).sum::<usize>() + 1
    }
}

impl FromStr for EnsName {
    type Err = EnsNameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl fmt::Display for EnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnsName({:?})", self.0)
    }
}

impl AsRef<str> for EnsName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps one label (ignored characters dropped, lowercase, NFC) and validates it.
fn normalize_label(raw: &str, index: usize) -> Result<String, EnsNameError> {
    let label = map_label(raw);
    if label.is_empty() {
        return Err(EnsNameError::EmptyLabel { index });
    }
    // Lowercasing after composition can, for a few characters, produce a form
    // that composes differently; refusing those keeps `parse` idempotent, which
    // namehash stability relies on.
    if map_label(&label) != label {
        return Err(EnsNameError::Unstable { index });
    }
    validate_label(&label, index)?;
    if label.len() > MAX_LABEL_LEN {
        return Err(EnsNameError::LabelTooLong { index, len: label.len() });
    }
    Ok(label)
}

fn map_label(raw: &str) -> String {
    // ASCII has no ignored characters, lowercases to ASCII and is its own NFC: the common case
    // (every name on a message is parsed, several times) skips the Unicode machinery.
    if raw.is_ascii() {
        return raw.to_ascii_lowercase();
    }
    map_label_unicode(raw)
}

fn map_label_unicode(raw: &str) -> String {
    raw.chars().filter(|&ch| !is_ignored(ch)).map(narrow).flat_map(char::to_lowercase).nfc().collect()
}

/// A full-width form of an ASCII character as that character (`ａ` → `a`, `０` → `0`); every
/// other character as it is. The full-width full stop is left alone: it is a dot look-alike,
/// refused rather than turned into a label separator inside a label.
fn narrow(ch: char) -> char {
    match ch {
        '\u{FF01}'..='\u{FF0D}' | '\u{FF0F}'..='\u{FF5E}' => {
            char::from_u32(u32::from(ch) - 0xFEE0).unwrap_or(ch)
        }
        other => other,
    }
}

fn validate_label(label: &str, index: usize) -> Result<(), EnsNameError> {
    if label.chars().next().is_some_and(is_combining_mark) {
        return Err(EnsNameError::LeadingCombiningMark { index });
    }
    let bytes = label.as_bytes();
    if bytes.len() >= 4 && bytes[2] == b'-' && bytes[3] == b'-' {
        return Err(EnsNameError::LabelExtension { index });
    }
    let mut past_leading_underscores = false;
    for ch in label.chars() {
        if ch == '_' {
            if past_leading_underscores {
                return Err(EnsNameError::MisplacedUnderscore { index });
            }
            continue;
        }
        past_leading_underscores = true;
        if ch.is_ascii() {
            if !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
                return Err(EnsNameError::DisallowedCharacter { index, ch });
            }
        } else if is_disallowed(ch) {
            return Err(EnsNameError::DisallowedCharacter { index, ch });
        } else if has_compatibility_mapping(ch) {
            return Err(EnsNameError::CompatibilityCharacter { index, ch });
        }
    }
    Ok(())
}

/// ENSIP-15's `ignored` set (spec.json, Unicode 17): removed before anything else.
fn is_ignored(ch: char) -> bool {
    matches!(
        ch,
        '\u{00AD}'
            | '\u{180B}'..='\u{180D}'
            | '\u{180F}'
            | '\u{200B}'
            | '\u{2060}'
            | '\u{2064}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Non-ASCII characters this subset refuses (ENSIP-15 disallows or conditions them).
fn is_disallowed(ch: char) -> bool {
    let code = u32::from(ch);
    ch.is_control()
        || ch.is_whitespace()
        || matches!(
            ch,
            // ZWNJ, ZWJ (only valid inside emoji sequences), bidi and other format controls
            '\u{200C}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2061}'..='\u{2063}'
                | '\u{2066}'..='\u{206F}'
                // dot look-alikes that IDNA maps to a label separator
                | '\u{3002}'
                | '\u{FF0E}'
                | '\u{FF61}'
                // ENSIP-15 fenced characters: apostrophe, fraction slash, katakana middle dot
                | '\u{2019}'
                | '\u{2044}'
                | '\u{30FB}'
                // ENSIP-15 maps these where plain lowercasing does not: dashes and minus to
                // `-`, Extended Arabic-Indic digits to Arabic-Indic ones, Greek letters with
                // ypogegrammeni to two letters, old Cyrillic forms to modern ones, and
                // Cherokee to its *uppercase* letters (found by diffing the spec's tables)
                | '\u{2010}'..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{23AF}'
                | '\u{23E4}'
                | '\u{2E3A}'
                | '\u{2E3B}'
                | '\u{06F0}'..='\u{06F9}'
                | '\u{1FB3}'
                | '\u{1FB4}'
                | '\u{1FBC}'
                | '\u{1FC3}'
                | '\u{1FC4}'
                | '\u{1FCC}'
                | '\u{1FF3}'
                | '\u{1FF4}'
                | '\u{1FFC}'
                | '\u{1C80}'..='\u{1C88}'
                | '\u{13A0}'..='\u{13FF}'
                | '\u{AB70}'..='\u{ABBF}'
                // specials, replacement character, non-characters
                | '\u{FFF9}'..='\u{FFFD}'
                | '\u{FDD0}'..='\u{FDEF}'
                // private use
                | '\u{E000}'..='\u{F8FF}'
                | '\u{F0000}'..='\u{10FFFF}'
                // tags
                | '\u{E0000}'..='\u{E007F}'
        )
        || code & 0xFFFE == 0xFFFE
}

/// Whether NFKC changes the character: ENSIP-15 maps those, so their text is not normal.
fn has_compatibility_mapping(ch: char) -> bool {
    let mut buffer = [0u8; 4];
    let text: &str = ch.encode_utf8(&mut buffer);
    !text.nfkc().eq(text.chars())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(input: &str) -> String {
        EnsName::parse(input).unwrap().as_str().to_owned()
    }

    #[test]
    fn ascii_names_are_lowercased() {
        assert_eq!(ok("Alice.ETH"), "alice.eth");
        assert_eq!(
            ok("0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13.addr.dm3.eth"),
            "0x9be6cd40ab351621a61ce4b9e31117f7acdaff13.addr.dm3.eth"
        );
        assert_eq!(ok("__a-b.eth"), "__a-b.eth");
        assert_eq!(ok("-a-.eth"), "-a-.eth");
        assert_eq!(ok(""), "");
        assert!(EnsName::parse("").unwrap().is_root());
    }

    #[test]
    fn full_width_ascii_becomes_ascii() {
        assert_eq!(ok("ａｌｉｃｅ.ｅｔｈ"), "alice.eth");
        assert_eq!(ok("ＡＬＩＣＥ１２.eth"), "alice12.eth");
        assert_eq!(ok("ｔｇ－１２３.tg.bridge.eth"), "tg-123.tg.bridge.eth");
        assert!(EnsName::parse("ａ！.eth").is_err(), "full-width punctuation maps to refused ASCII");
        assert!(EnsName::parse("ａ．ｂ.eth").is_err(), "the full-width full stop stays refused");
    }

    #[test]
    fn non_ascii_is_lowercased_and_composed() {
        assert_eq!(ok("MÜNCHEN.eth"), "münchen.eth");
        assert_eq!(ok("mu\u{0308}nchen.eth"), "münchen.eth");
        assert_eq!(ok("soft\u{00AD}hyphen.eth"), "softhyphen.eth");
        assert_eq!(ok("❤\u{FE0F}.eth"), "❤.eth");
        assert_eq!(ok("ΣΑΣ.eth"), "σασ.eth");
    }

    #[test]
    fn malformed_names_are_rejected() {
        use EnsNameError::*;
        let cases: &[(&str, EnsNameError)] = &[
            ("alice..eth", EmptyLabel { index: 1 }),
            ("alice.eth.", EmptyLabel { index: 2 }),
            (".eth", EmptyLabel { index: 0 }),
            ("\u{00AD}.eth", EmptyLabel { index: 0 }),
            ("al ice.eth", DisallowedCharacter { index: 0, ch: ' ' }),
            ("al$.eth", DisallowedCharacter { index: 0, ch: '$' }),
            ("a\u{200D}b.eth", DisallowedCharacter { index: 0, ch: '\u{200D}' }),
            ("a\u{3002}b", DisallowedCharacter { index: 0, ch: '\u{3002}' }),
            ("a_b.eth", MisplacedUnderscore { index: 0 }),
            ("xn--abc.eth", LabelExtension { index: 0 }),
            ("\u{0301}a.eth", LeadingCombiningMark { index: 0 }),
            ("a\u{00B2}.eth", CompatibilityCharacter { index: 0, ch: '\u{00B2}' }),
            ("\u{FB01}x.eth", CompatibilityCharacter { index: 0, ch: '\u{FB01}' }),
        ];
        for (input, expected) in cases {
            assert_eq!(EnsName::parse(input).as_ref(), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn lengths_are_bounded() {
        let label63 = "a".repeat(63);
        assert!(EnsName::parse(&format!("{label63}.eth")).is_ok());
        assert_eq!(
            EnsName::parse(&format!("{}.eth", "a".repeat(64))),
            Err(EnsNameError::LabelTooLong { index: 0, len: 64 })
        );
        // 4 labels of 63 + separators = 255 bytes of text: 257 bytes encoded.
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(EnsName::parse(&long), Err(EnsNameError::TooLong { encoded: 257 }));
        let fits = format!("{}.{}", [label63.as_str(); 3].join("."), "a".repeat(61));
        assert_eq!(EnsName::parse(&fits).unwrap().dns_encoded_len(), 255);
        assert_eq!(EnsName::parse(&"a".repeat(2000)), Err(EnsNameError::InputTooLong));
    }

    #[test]
    fn a_stored_name_must_already_be_normal() {
        assert_eq!(EnsName::from_normalized("alice.eth").unwrap().as_str(), "alice.eth");
        assert_eq!(
            EnsName::from_normalized("Alice.eth"),
            Err(EnsNameError::NotNormalized { normal: "alice.eth".to_owned() })
        );
        assert_eq!(EnsName::from_normalized(""), Err(EnsNameError::Empty));
        assert_eq!(
            EnsName::from_normalized("a b.eth"),
            Err(EnsNameError::DisallowedCharacter { index: 0, ch: ' ' })
        );
    }

    #[test]
    fn within_follows_label_boundaries() {
        let name = EnsName::parse("alice.user.dm3.eth").unwrap();
        assert!(name.is_within(&EnsName::parse("user.dm3.eth").unwrap()));
        assert!(name.is_within(&name));
        assert!(name.is_within(&EnsName::root()));
        assert!(!name.is_within(&EnsName::parse("ser.dm3.eth").unwrap()));
        assert_eq!(name.labels().collect::<Vec<_>>(), ["alice", "user", "dm3", "eth"]);
        assert_eq!(EnsName::root().labels().count(), 0);
    }

    #[test]
    fn the_ascii_path_maps_as_the_unicode_one() {
        for byte in 0u8..128 {
            let text = char::from(byte).to_string();
            assert_eq!(map_label(&text), map_label_unicode(&text), "{byte:#x}");
        }
        assert_eq!(map_label("Alice_-9Z"), map_label_unicode("Alice_-9Z"));
    }
}
