//! The value of a DM3 ENS text record, classified (docs/protocol.md §4.3, §4.4).
//!
//! `network.dm3.profile` (user profile) and `network.dm3.deliveryService`
//! (delivery-service profile) hold the same kinds of value, and the reference
//! tries the same three resolvers for both, in the order Link, IPFS, JSON:
//! - `http(s)://…?dm3Hash=0x…`: fetch the JSON and require
//!   `sha256(stringify(fetched)) == dm3Hash` (`checkProfileHash`);
//! - `ipfs://<cid>`: fetch through `https://www.ipfs.io/ipfs/<cid>`, no hash;
//! - a `data:application/json` URI ([`crate::data_uri`]).
//!
//! We add bare JSON starting with `{`, which the CLI writes for DS profiles and
//! the reference cannot read (§4.4). Fetching is not done here: this module
//! parses the record and checks a fetched document with a pure function, so
//! the caller decides about HTTP clients, timeouts and size limits.
//!
//! A link without a `dm3Hash`, with two of them or with one that is not `0x`
//! plus 64 *lowercase* hex digits is refused when parsing: the reference
//! compares the query value to `sha256(...)` with `===`, so such a link can
//! never pass its check either.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::canonical;
use crate::data_uri::{self, DataUriError, MAX_RECORD_BYTES};
use crate::encoding::hex_encode;
use crate::hash::sha256;

/// The text record key of a user profile.
pub const USER_PROFILE_KEY: &str = "network.dm3.profile";
/// The text record key of a delivery-service profile.
pub const DELIVERY_SERVICE_KEY: &str = "network.dm3.deliveryService";
/// The gateway `IpfsResolver` fetches through.
pub const IPFS_GATEWAY: &str = "https://www.ipfs.io/ipfs";

/// Why a text record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the record is not a data: URI, bare JSON, an http(s) link or an ipfs link")]
    UnknownKind,
    #[error(transparent)]
    DataUri(#[from] DataUriError),
    #[error("the record is bare JSON but not a JSON object")]
    InvalidBareJson,
    #[error("the link is not a usable URL")]
    MalformedUrl,
    #[error("the link has no dm3Hash query parameter, so it can never be verified")]
    MissingDm3Hash,
    #[error("the link has more than one dm3Hash query parameter")]
    RepeatedDm3Hash,
    #[error("the link's dm3Hash is not 0x and 64 lowercase hex digits")]
    MalformedDm3Hash,
    #[error("the fetched document hashes to {actual}, but the link promises {expected}")]
    HashMismatch { expected: Dm3Hash, actual: Dm3Hash },
}

/// `sha256(stringify(json))`: the integrity hash of a linked profile.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dm3Hash([u8; 32]);

impl Dm3Hash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash of a JSON document, over its canonical form (P2).
    pub fn of_json(value: &Value) -> Self {
        Self(sha256(canonical::stringify(value).as_bytes()))
    }

    /// `checkProfileHash`: does the fetched document match this hash?
    pub fn check(&self, fetched: &Value) -> Result<(), RecordError> {
        let actual = Self::of_json(fetched);
        if actual == *self { Ok(()) } else { Err(RecordError::HashMismatch { expected: *self, actual }) }
    }
}

impl FromStr for Dm3Hash {
    type Err = RecordError;

    /// Only the exact form `sha256()` prints, as the reference compares strings.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix("0x").ok_or(RecordError::MalformedDm3Hash)?;
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(RecordError::MalformedDm3Hash);
        }
        let mut bytes = [0u8; 32];
        alloy_primitives::hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| RecordError::MalformedDm3Hash)?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Dm3Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl fmt::Debug for Dm3Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dm3Hash({self})")
    }
}

/// A classified text record.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileRecord {
    /// The document itself (a data: URI or bare JSON); always a JSON object.
    Inline(Value),
    /// An http(s) URL to fetch; the fetched JSON must match `dm3_hash`.
    Link { url: String, dm3_hash: Dm3Hash },
    /// An IPFS content id (with any path after it) to fetch; nothing to check.
    Ipfs { cid: String },
}

impl ProfileRecord {
    /// Classifies and, for inline records, decodes a text record value.
    pub fn parse(record: &str) -> Result<Self, RecordError> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge { len: record.len(), max: MAX_RECORD_BYTES });
        }
        if let Some(rest) = strip_scheme(record, "https://").or_else(|| strip_scheme(record, "http://")) {
            return parse_link(record, rest);
        }
        if let Some(cid) = strip_scheme(record, "ipfs://") {
            if cid.is_empty() || !is_url_safe(cid) {
                return Err(RecordError::MalformedUrl);
            }
            return Ok(Self::Ipfs { cid: cid.to_owned() });
        }
        if data_uri::is_data_uri(record) {
            return Ok(Self::Inline(data_uri::decode_json(record)?));
        }
        if record.starts_with('{') {
            return match serde_json::from_str::<Value>(record) {
                Ok(value) if value.is_object() => Ok(Self::Inline(value)),
                _ => Err(RecordError::InvalidBareJson),
            };
        }
        Err(RecordError::UnknownKind)
    }

    /// The record value to publish for a document: the inline data: URI.
    pub fn inline(value: &Value) -> String {
        data_uri::encode_json(value)
    }

    /// The record value for a document published at `url`: `url` with its
    /// `dm3Hash` query parameter appended.
    pub fn link(url: &str, dm3_hash: &Dm3Hash) -> String {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}dm3Hash={dm3_hash}")
    }

    /// Where to fetch an IPFS record, as `IpfsResolver` does.
    pub fn ipfs_gateway_url(cid: &str) -> String {
        format!("{IPFS_GATEWAY}/{cid}")
    }

    /// Checks a document fetched for this record: the hash for a link, nothing
    /// for IPFS (as the reference); inline records need no fetch.
    pub fn check_fetched(&self, fetched: &Value) -> Result<(), RecordError> {
        match self {
            Self::Link { dm3_hash, .. } => dm3_hash.check(fetched),
            Self::Ipfs { .. } | Self::Inline(_) => Ok(()),
        }
    }
}

fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    if head.eq_ignore_ascii_case(scheme) { text.get(scheme.len()..) } else { None }
}

/// No whitespace or control characters, which a URL parser would strip or refuse.
fn is_url_safe(text: &str) -> bool {
    !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `query-string.parseUrl(uri).query.dm3Hash`: the query ends at `#`, pairs are
/// split on `&` and the first `=`, and `+` means space before percent-decoding.
fn parse_link(record: &str, after_scheme: &str) -> Result<ProfileRecord, RecordError> {
    let host_end = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    if host_end == 0 || !is_url_safe(record) {
        return Err(RecordError::MalformedUrl);
    }
    let without_fragment = record.split('#').next().unwrap_or_default();
    let query = without_fragment.split_once('?').map(|(_, query)| query).unwrap_or_default();
    let mut found = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if query_decode(key).as_deref() != Some("dm3Hash") {
            continue;
        }
        if found.is_some() {
            return Err(RecordError::RepeatedDm3Hash);
        }
        found = Some(query_decode(value).ok_or(RecordError::MalformedDm3Hash)?);
    }
    let dm3_hash = found.ok_or(RecordError::MissingDm3Hash)?.parse()?;
    Ok(ProfileRecord::Link { url: record.to_owned(), dm3_hash })
}

fn query_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        match first {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = tail.get(2..)?;
                continue;
            }
            other => bytes.push(other),
        }
        rest = tail;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    const HASH: &str = "0x244025035dc0f4c89c2402faf184518db818f9b79cf3e1f7f5997b7150947445";

    #[test]
    fn classifies_the_four_kinds() {
        let link = format!("https://example.org/p.json?x=1&dm3Hash={HASH}#top");
        assert_eq!(
            ProfileRecord::parse(&link).unwrap(),
            ProfileRecord::Link { url: link.clone(), dm3_hash: HASH.parse().unwrap() }
        );
        assert_eq!(
            ProfileRecord::parse("ipfs://QmCid/profile.json").unwrap(),
            ProfileRecord::Ipfs { cid: "QmCid/profile.json".into() }
        );
        assert_eq!(ProfileRecord::ipfs_gateway_url("QmCid"), "https://www.ipfs.io/ipfs/QmCid");
        for inline in [r#"data:application/json,{"a":1}"#, r#"{"a":1}"#] {
            assert_eq!(
                ProfileRecord::parse(inline).unwrap(),
                ProfileRecord::Inline(json!({"a": 1})),
                "{inline}"
            );
        }
    }

    #[test]
    fn links_must_carry_exactly_one_well_formed_hash() {
        let cases = [
            ("https://example.org/p.json", RecordError::MissingDm3Hash),
            ("https://example.org/p.json#dm3Hash=0x00", RecordError::MissingDm3Hash),
            ("https:///p.json", RecordError::MalformedUrl),
            ("https://exa mple.org/?dm3Hash=0x", RecordError::MalformedUrl),
            ("http://example.org/?dm3Hash=0x12", RecordError::MalformedDm3Hash),
            ("http://example.org/?dm3Hash=%zz", RecordError::MalformedDm3Hash),
        ];
        for (record, error) in cases {
            assert_eq!(ProfileRecord::parse(record), Err(error), "{record}");
        }
        let upper = format!("http://example.org/?dm3Hash=0x{}", HASH[2..].to_uppercase());
        assert_eq!(ProfileRecord::parse(&upper), Err(RecordError::MalformedDm3Hash));
        let twice = format!("http://example.org/?dm3Hash={HASH}&dm3Hash={HASH}");
        assert_eq!(ProfileRecord::parse(&twice), Err(RecordError::RepeatedDm3Hash));
        let encoded = format!("HTTP://example.org/?dm%33Hash={}", HASH.replace("0x", "%30x"));
        assert!(matches!(ProfileRecord::parse(&encoded), Ok(ProfileRecord::Link { .. })));
    }

    #[test]
    fn a_link_checks_the_fetched_document() {
        let document = json!({"b": 2, "a": 1});
        let hash = Dm3Hash::of_json(&document);
        let record = ProfileRecord::parse(&ProfileRecord::link("https://h/p?v=1", &hash)).unwrap();
        assert!(
            matches!(&record, ProfileRecord::Link { url, .. } if url.starts_with("https://h/p?v=1&dm3Hash=0x"))
        );
        assert_eq!(record.check_fetched(&json!({"a": 1, "b": 2})), Ok(()));
        assert_eq!(
            record.check_fetched(&json!({"a": 1, "b": 3})),
            Err(RecordError::HashMismatch {
                expected: hash,
                actual: Dm3Hash::of_json(&json!({"a": 1, "b": 3}))
            })
        );
    }

    #[test]
    fn refuses_other_records() {
        assert_eq!(ProfileRecord::parse(""), Err(RecordError::UnknownKind));
        assert_eq!(ProfileRecord::parse("ftp://x"), Err(RecordError::UnknownKind));
        assert_eq!(ProfileRecord::parse("{nope"), Err(RecordError::InvalidBareJson));
        assert_eq!(ProfileRecord::parse("ipfs://"), Err(RecordError::MalformedUrl));
        let big = "{".repeat(MAX_RECORD_BYTES + 1);
        assert_eq!(
            ProfileRecord::parse(&big),
            Err(RecordError::TooLarge { len: MAX_RECORD_BYTES + 1, max: MAX_RECORD_BYTES })
        );
    }
}
