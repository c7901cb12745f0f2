//! JSON bodies that become a `serde_json::Value` only after their values were counted.
//!
//! Bodies that carry signed DM3 objects must stay raw JSON, unknown fields included (P2), so
//! their routes parse them into a [`Value`]. A `Value` costs about 32 to 100 bytes per JSON value
//! whatever the value's text costs: `[[],[],…]` is 3 bytes a value on the wire, so a body within
//! its byte limit could take 10 to 30 times its size in memory, and hold it while the request
//! waits for the database or a name lookup. The values are therefore counted first, in one
//! pass that allocates nothing; only a body with at most [`MAX_VALUES`] values is built. A
//! counted body costs at most its own size (the strings) plus ~100 bytes per value.
//!
//! Bodies with many values by design (an acknowledgement list) are not `Value`s at all: they
//! are parsed into typed, borrowed structs (`routes::delivery`).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The most JSON values a `Value` body may have. A signed profile has about ten, an envelope
/// about twenty, a login five: a thousand is room for anything a client sends in earnest.
pub const MAX_VALUES: usize = 1024;

/// Why a body did not become a [`Value`].
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON; serde_json's error, as it would be for a plain parse.
    #[error(transparent)]
    Syntax(serde_json::Error),
    #[error("the JSON has more than {max} values")]
    TooManyValues { max: usize },
}

/// `bytes` as a [`Value`], if it is one JSON text of at most `max` values.
pub fn parse_value(bytes: &[u8], max: usize) -> Result<Value, JsonError> {
    count(bytes, max)?;
    serde_json::from_slice(bytes).map_err(JsonError::Syntax)
}

/// Checks that `bytes` is one JSON text of at most `max` values, without building it.
pub fn count(bytes: &[u8], max: usize) -> Result<(), JsonError> {
    let left = Cell::new(max);
    let exceeded = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let counted = Counter { left: &left, exceeded: &exceeded }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match counted {
        Ok(()) => Ok(()),
        Err(_) if exceeded.get() => Err(JsonError::TooManyValues { max }),
        Err(e) => Err(JsonError::Syntax(e)),
    }
}

/// Counts one value and, through itself, every value inside it.
#[derive(Clone, Copy)]
struct Counter<'c> {
    left: &'c Cell<usize>,
    exceeded: &'c Cell<bool>,
}

impl Counter<'_> {
    fn take_one<E: de::Error>(self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("too many JSON values"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.take_one()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.take_one()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.take_one()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.take_one()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.take_one()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.take_one()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.take_one()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.take_one()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn values_are_counted_at_every_depth() {
        assert!(count(br#"{"a":[1,{"b":null}],"c":"x"}"#, 6).is_ok());
        assert!(matches!(
            count(br#"{"a":[1,{"b":null}],"c":"x"}"#, 5),
            Err(JsonError::TooManyValues { max: 5 })
        ));
    }

    #[test]
    fn a_body_within_the_count_parses_as_serde_json_would() {
        let text = br#"{"profile":{"deliveryServices":["a.eth"]},"signature":"0x12"}"#;
        assert_eq!(parse_value(text, MAX_VALUES).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
    }

    #[test]
    fn not_json_is_the_same_syntax_error_as_a_plain_parse() {
        for text in [&b"{"[..], b"[1,]", b"{} x", b""] {
            let plain = serde_json::from_slice::<Value>(text).unwrap_err().to_string();
            match count(text, MAX_VALUES) {
                Err(JsonError::Syntax(e)) => assert_eq!(e.to_string(), plain),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn many_tiny_values_are_refused_before_any_is_built() {
        let body = format!("[{}[]]", "[],".repeat(100_000));
        assert!(matches!(parse_value(body.as_bytes(), MAX_VALUES), Err(JsonError::TooManyValues { .. })));
    }
}
