//! The body of `syncAcknowledgements`, parsed straight from its bytes into borrowed entries.
//!
//! The body is `{"acknowledgements":[{"contactAddress":NAME,"messageHash":HASH}, …]}` and may
//! be 16 MiB: a client acknowledges a whole `incoming` answer (101 × 1001 envelopes) at once.
//! As a `serde_json::Value` that is over half a gigabyte (a map per entry); as [`Raw`] entries
//! whose strings point into the body it is the body plus 48 bytes an entry, reserved once from
//! the body's size. At most [`MAX_ACKS`] entries are kept: the rest of a longer list is skipped
//! without being stored and the request is refused, so no list grows past that bound whatever
//! the body holds.
//!
//! The answers are the ones the route gave when it parsed a `Value`: not JSON is 400 -32700,
//! any other shape 400 -32602 with [`SCHEMA`], a longer list 400 -32602 naming the bound.
//! Unknown fields are ignored, as before.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use std::borrow::Cow;
use std::fmt;

use crate::http::error::ApiError;

/// The most acknowledgements one request may carry: one full `incoming` answer.
pub const MAX_ACKS: usize = 101 * 1001;

/// The shape the route expects, for its error answers.
pub const SCHEMA: &str = "expected {\"acknowledgements\":[{\"contactAddress\":NAME,\"messageHash\":HASH}]}";

/// One acknowledgement as sent; the strings borrow from the body unless they hold escapes.
#[derive(Debug, Deserialize)]
pub struct Raw<'a> {
    #[serde(rename = "contactAddress", borrow)]
    contact_address: Cow<'a, str>,
    #[serde(rename = "messageHash", borrow)]
    message_hash: Cow<'a, str>,
}

impl Raw<'_> {
    /// The sender's name as sent (`contactAddress`, P8).
    pub fn sender(&self) -> &str {
        &self.contact_address
    }

    pub fn message_hash(&self) -> &str {
        &self.message_hash
    }
}

/// The smallest entry: `{"contactAddress":"","messageHash":""},`.
const MIN_ENTRY_BYTES: usize = 39;

/// The entries of `body`, or the answer to give.
pub fn parse(body: &[u8]) -> Result<Vec<Raw<'_>>, ApiError> {
    // Room for every entry the body can hold, reserved once: a list grown by doubling would
    // leave its earlier buffers behind, freed but still resident until the allocator returns
    // them, as much again as the list.
    let capacity = (body.len() / MIN_ENTRY_BYTES + 1).min(MAX_ACKS);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed { capacity }.deserialize(&mut deserializer).and_then(|list| {
        deserializer.end()?;
        Ok(list)
    });
    match parsed {
        Ok(Bounded { too_many: true, .. }) => {
            Err(ApiError::invalid_params(format!("at most {MAX_ACKS} acknowledgements per request")))
        }
        Ok(Bounded { entries, .. }) => Ok(entries),
        // A wrong shape is reported as such only if the body is JSON at all: `[1, 2` is not.
        Err(e) if e.classify() == Category::Data => match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(ApiError::invalid_params(SCHEMA)),
            Err(syntax) => Err(ApiError::parse_error(syntax)),
        },
        Err(e) => Err(ApiError::parse_error(e)),
    }
}

/// At most [`MAX_ACKS`] entries, and whether the list had more.
struct Bounded<'a> {
    entries: Vec<Raw<'a>>,
    too_many: bool,
}

/// The body object: `acknowledgements` is read, any other field skipped.
struct BodySeed {
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Bounded<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Bounded<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = Bounded<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with acknowledgements")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bounded<'de>, A::Error> {
        let mut list = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != "acknowledgements" {
                map.next_value::<IgnoredAny>()?;
            } else if list.is_some() {
                return Err(de::Error::duplicate_field("acknowledgements"));
            } else {
                list = Some(map.next_value_seed(ListSeed { capacity: self.capacity })?);
            }
        }
        list.ok_or_else(|| de::Error::missing_field("acknowledgements"))
    }
}

/// The list: entries kept up to [`MAX_ACKS`], the rest only read.
struct ListSeed {
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Bounded<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Bounded<'de>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Bounded<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of acknowledgements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bounded<'de>, A::Error> {
        let mut entries = Vec::with_capacity(self.capacity);
        while entries.len() < MAX_ACKS {
            match seq.next_element::<Raw<'de>>()? {
                Some(entry) => entries.push(entry),
                None => return Ok(Bounded { entries, too_many: false }),
            }
        }
        // Past the bound: the rest is read (it must still be JSON) but not kept.
        let mut too_many = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            too_many = true;
        }
        Ok(Bounded { entries, too_many })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn error(body: &str) -> ApiError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn entries_borrow_from_the_body_unless_escaped() {
        let body = br#"{"x":1,"acknowledgements":[{"contactAddress":"a.eth","messageHash":"0x1","y":[]},
            {"contactAddress":"\u0062.eth","messageHash":"0x2"}]}"#;
        let acks = parse(body).unwrap();
        assert_eq!((acks[0].sender(), acks[0].message_hash()), ("a.eth", "0x1"));
        assert!(matches!(acks[0].contact_address, Cow::Borrowed(_)));
        assert_eq!(acks[1].sender(), "b.eth");
    }

    #[test]
    fn wrong_shapes_get_the_answers_of_the_value_parser() {
        assert_eq!(error("{").code, crate::http::error::PARSE_ERROR);
        assert_eq!(error("[1, 2").code, crate::http::error::PARSE_ERROR);
        for shape in [
            r#"{"acks":[]}"#,
            r#"[[{"contactAddress":"a.eth","messageHash":"0x1"}]]"#,
            r#"{"acknowledgements":{}}"#,
            r#"{"acknowledgements":[{"contactAddress":"a.eth"}]}"#,
            r#"{"acknowledgements":[{"contactAddress":1,"messageHash":"0x1"}]}"#,
            "12",
        ] {
            let e = error(shape);
            assert_eq!((e.code, e.message.as_str()), (crate::http::error::INVALID_PARAMS, SCHEMA), "{shape}");
        }
    }

    #[test]
    fn a_list_past_the_bound_is_refused_without_being_kept() {
        let entry = r#"{"contactAddress":"a.eth","messageHash":"0x1"}"#;
        let list = vec![entry; MAX_ACKS + 1].join(",");
        let e = error(&format!(r#"{{"acknowledgements":[{list}]}}"#));
        assert!(e.message.contains("at most 101101"), "{}", e.message);
        let list = vec![entry; MAX_ACKS].join(",");
        assert_eq!(parse(format!(r#"{{"acknowledgements":[{list}]}}"#).as_bytes()).unwrap().len(), MAX_ACKS);
    }
}
