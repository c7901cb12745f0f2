//! ENS name normalization as the reference compares names (docs/protocol.md §2.2).
//!
//! `normalizeEnsName` in `dm3-lib-profile` is ethers v5's `nameprep`
//! (IDNA2003 stringprep), **not** ENSIP-15. Message verification
//! (`checkMessageSignature`, §5.3), conversation ids and the delivery
//! service's routes all compare names through it, so every module that
//! compares names (messages, envelopes, auth, CCIP) shares this one function.
//!
//! What ethers does, and what we do:
//! - A name of only `[A-Za-z0-9-]` and at most 59 characters is lowercased
//!   and nothing else. Note that a dot takes a name *out* of this fast path.
//! - Every other name gets the full nameprep: characters of RFC 3454 table
//!   B.1 (soft hyphen, zero-width joiners, variation selectors, BOM) are
//!   removed, case is folded (table B.2), the result is NFKC-normalized and
//!   prohibited or unassigned code points throw. Then IDNA's hyphen rule
//!   throws if the *whole string* starts or ends with `-` or has `--` at
//!   character positions 2..4 (so `xn--….eth` is refused by the reference).
//! - For ASCII input this module is exact: table C has no ASCII code point and
//!   B.2 folds ASCII to lowercase. For non-ASCII input we remove table B.1 and
//!   apply Unicode lowercasing, but neither full case folding (`ß` stays `ß`,
//!   ethers gives `ss`) nor NFKC nor the prohibited tables. Two names the
//!   reference considers equal may therefore compare unequal here, which fails
//!   closed; the names DM3 uses in practice (`0x….addr.dm3.eth`, ASCII ENS
//!   names) are unaffected.

/// Why a name cannot be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The reference throws "invalid hyphen" for this name.
    #[error("invalid ENS name `{0}`: it starts or ends with `-` or has `--` at positions 3-4")]
    InvalidHyphen(String),
}

/// Characters that nameprep maps to nothing (RFC 3454 table B.1, as ethers lists it).
fn maps_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{1806}'
            | '\u{180b}'..='\u{180d}'
            | '\u{200b}'..='\u{200d}'
            | '\u{2060}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
    )
}

/// `normalizeEnsName`: ethers' `nameprep`, exact for ASCII names (see the module doc).
pub fn normalize_ens_name(name: &str) -> Result<String, NameError> {
    let fast_path =
        name.chars().count() <= 59 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if fast_path {
        return Ok(name.to_ascii_lowercase());
    }
    let normalized: String = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        name.chars().filter(|c| !maps_to_nothing(*c)).collect::<String>().to_lowercase()
    };
    // `substring(0, 1)`, `substring(2, 4)` and the last unit are UTF-16 units.
    let units: Vec<u16> = normalized.encode_utf16().collect();
    let hyphen = u16::from(b'-');
    let starts = units.first() == Some(&hyphen);
    let ends = units.last() == Some(&hyphen);
    let double = units.get(2) == Some(&hyphen) && units.get(3) == Some(&hyphen);
    if starts || ends || double {
        return Err(NameError::InvalidHyphen(name.to_owned()));
    }
    Ok(normalized)
}

/// `getConversationId(a, b)`: both names normalized, joined by a comma, in the
/// order given (`packages/lib/delivery/src/Messages.ts`, §2.2).
pub fn conversation_id(name_a: &str, name_b: &str) -> Result<String, NameError> {
    Ok(format!("{},{}", normalize_ens_name(name_a)?, normalize_ens_name(name_b)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Expected values printed by ethers 5.7.2 `utils.nameprep`.
    #[test]
    fn matches_ethers_nameprep() {
        assert_eq!(normalize_ens_name("Alice.ETH").unwrap(), "alice.eth");
        assert_eq!(normalize_ens_name("a-.eth").unwrap(), "a-.eth");
        assert_eq!(normalize_ens_name("ab--c").unwrap(), "ab--c");
        assert_eq!(normalize_ens_name("abc-").unwrap(), "abc-");
        assert_eq!(normalize_ens_name("").unwrap(), "");
        assert_eq!(normalize_ens_name("Å.eth").unwrap(), "å.eth");
        assert_eq!(
            normalize_ens_name("0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13.addr.dm3.eth").unwrap(),
            "0x9be6cd40ab351621a61ce4b9e31117f7acdaff13.addr.dm3.eth"
        );
        for bad in ["xn--abc.eth", "-a.eth", "a.eth-"] {
            assert_eq!(normalize_ens_name(bad), Err(NameError::InvalidHyphen(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn removes_characters_that_map_to_nothing() {
        assert_eq!(normalize_ens_name("al\u{200b}ice\u{fe0f}.eth").unwrap(), "alice.eth");
    }

    #[test]
    fn conversation_id_keeps_the_order() {
        assert_eq!(conversation_id("Bob.eth", "ALICE.eth").unwrap(), "bob.eth,alice.eth");
    }
}
