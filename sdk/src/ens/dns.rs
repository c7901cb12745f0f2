//! DNS wire encoding of ENS names (ENSIP-10 `resolve(bytes name, …)`).
//!
//! Wildcard resolution passes the name as RFC 1035 labels: a length byte and the
//! label's bytes, repeated, ending with a zero byte. ethers' `dnsEncode` refuses
//! labels over 63 bytes, and so does [`EnsName`], so encoding cannot fail.
//!
//! Decoding reads bytes from the network (the `resolve` calldata, §12.3), so it
//! is strict where the reference's `decodeDnsName` is not: that one reads past
//! the end, ignores trailing bytes and turns bad UTF-8 into U+FFFD. Here every
//! malformation is a [`DnsError`]: compression pointers (which have no meaning
//! in calldata), reserved length bytes, labels containing a dot (the reference
//! would silently split them), missing terminator, trailing garbage, names over
//! 255 bytes. The decoded labels then go through [`EnsName::parse`], as the
//! handler's `namehash` would normalize them.

use super::{EnsName, EnsNameError, MAX_DNS_ENCODED_LEN, MAX_LABEL_LEN};

/// Why bytes are not a DNS-encoded ENS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("the DNS-encoded name ends before its terminating zero byte")]
    Truncated,
    #[error("the DNS-encoded name is longer than {MAX_DNS_ENCODED_LEN} bytes")]
    TooLong,
    #[error("the DNS-encoded name uses a compression pointer at byte {offset}")]
    CompressionPointer { offset: usize },
    #[error("label length byte {length:#04x} at byte {offset} is over {MAX_LABEL_LEN}")]
    LabelTooLong { offset: usize, length: u8 },
    #[error("{extra} bytes follow the terminating zero byte")]
    TrailingBytes { extra: usize },
    #[error("label {index} is not UTF-8")]
    NotUtf8 { index: usize },
    #[error("label {index} contains a dot")]
    DotInLabel { index: usize },
    #[error("the decoded name is not a valid ENS name: {0}")]
    Name(#[from] EnsNameError),
}

/// The DNS wire encoding of `name`: `len ‖ label` for each label, then `0x00`.
pub fn dns_encode(name: &EnsName) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.dns_encoded_len());
    for label in name.labels() {
        // EnsName guarantees labels of at most 63 bytes, so the length fits a byte.
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Decodes a DNS wire-format name and normalizes it into an [`EnsName`].
pub fn dns_decode(bytes: &[u8]) -> Result<EnsName, DnsError> {
    let mut labels: Vec<&str> = Vec::new();
    let mut offset = 0;
    loop {
        if offset >= MAX_DNS_ENCODED_LEN {
            return Err(DnsError::TooLong);
        }
        let length = *bytes.get(offset).ok_or(DnsError::Truncated)?;
        match length {
            0 => break,
            0xC0..=0xFF => return Err(DnsError::CompressionPointer { offset }),
            _ if usize::from(length) > MAX_LABEL_LEN => {
                return Err(DnsError::LabelTooLong { offset, length });
            }
            _ => {}
        }
        let start = offset + 1;
        let end = start + usize::from(length);
        let raw = bytes.get(start..end).ok_or(DnsError::Truncated)?;
        let index = labels.len();
        let label = std::str::from_utf8(raw).map_err(|_| DnsError::NotUtf8 { index })?;
        if label.contains('.') {
            return Err(DnsError::DotInLabel { index });
        }
        labels.push(label);
        offset = end;
    }
    let used = offset + 1;
    if used > MAX_DNS_ENCODED_LEN {
        return Err(DnsError::TooLong);
    }
    if bytes.len() > used {
        return Err(DnsError::TrailingBytes { extra: bytes.len() - used });
    }
    Ok(EnsName::parse(&labels.join("."))?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(text: &str) -> EnsName {
        EnsName::parse(text).unwrap()
    }

    #[test]
    fn encodes_like_ethers() {
        assert_eq!(dns_encode(&name("")), [0]);
        assert_eq!(dns_encode(&name("foo.eth")), b"\x03foo\x03eth\x00");
    }

    #[test]
    fn decodes_and_normalizes() {
        assert_eq!(dns_decode(b"\x03foo\x03eth\x00").unwrap(), name("foo.eth"));
        assert_eq!(dns_decode(b"\x03FOO\x03eth\x00").unwrap(), name("foo.eth"));
        assert_eq!(dns_decode(b"\x00").unwrap(), EnsName::root());
    }

    #[test]
    fn rejects_malformed_wire_names() {
        let cases: &[(&[u8], DnsError)] = &[
            (b"", DnsError::Truncated),
            (b"\x03foo", DnsError::Truncated),
            (b"\x05foo\x00", DnsError::Truncated),
            (b"\x03foo\xc0\x00", DnsError::CompressionPointer { offset: 4 }),
            (b"\x40", DnsError::LabelTooLong { offset: 0, length: 0x40 }),
            (b"\x03foo\x00\x00", DnsError::TrailingBytes { extra: 1 }),
            (b"\x02\xff\xfe\x00", DnsError::NotUtf8 { index: 0 }),
            (b"\x03a.b\x00", DnsError::DotInLabel { index: 0 }),
            (b"\x03A B\x00", DnsError::Name(EnsNameError::DisallowedCharacter { index: 0, ch: ' ' })),
        ];
        for (bytes, expected) in cases {
            assert_eq!(&dns_decode(bytes).unwrap_err(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn rejects_names_over_255_bytes() {
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(dns_decode(&long), Err(DnsError::TooLong));
        // 3 × 64 + 62 + 1 = 255 bytes: the longest accepted encoding.
        let mut fits = Vec::new();
        for _ in 0..3 {
            fits.push(63);
            fits.extend_from_slice(&[b'a'; 63]);
        }
        fits.push(61);
        fits.extend_from_slice(&[b'a'; 61]);
        fits.push(0);
        assert_eq!(fits.len(), 255);
        assert_eq!(dns_encode(&dns_decode(&fits).unwrap()), fits);
    }
}
