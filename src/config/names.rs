//! `[names]`: names the node resolves from its own configuration instead of ENS.
//!
//! An air-gapped node (or a test) cannot ask ENS who `alice.eth` is, so the operator lists the
//! names it must know, with the records ENS would hold (PROTOCOL.md §4.3, §4.4, P15):
//!
//! ```toml
//! [[names.static]]
//! name = "alice.eth"
//! address = "0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13"
//! profile = 'data:application/json,{"profile":{…},"signature":"0x…"}'
//! ```
//!
//! Records are text exactly as they would be published, so the same verification runs on
//! them as on ENS answers: a static profile is still checked against the static address. The
//! entries are parsed here once ([`StaticName::parse`]), so `dm3-bridge check` reports a typo
//! with its key, and the resolver never sees an invalid entry.

use std::str::FromStr;

use alloy_primitives::Address;
use dm3::ens::EnsName;
use dm3::text_record::ProfileRecord;
use serde::{Deserialize, Serialize};

use super::Problem;

/// `[names]`: where the node looks names up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamesConfig {
    /// Names answered from this file (`[[names.static]]`), never from ENS.
    #[serde(rename = "static")]
    pub static_names: Vec<StaticName>,
}

/// One `[[names.static]]` entry, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticName {
    /// The ENS name, e.g. `alice.eth` (normalized when read).
    pub name: String,
    /// `addr(name)`: the Ethereum address the name resolves to, `0x…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The `network.dm3.profile` text record: `data:application/json,{…}`, bare JSON, or a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The `network.dm3.deliveryService` text record, for a delivery service's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_service: Option<String>,
}

/// One entry, parsed: what a static resolver serves for the name.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticEntry {
    pub name: EnsName,
    pub address: Option<Address>,
    pub profile: Option<String>,
    pub delivery_service: Option<String>,
}

impl StaticName {
    /// Parses the entry; `index` only names it in problems (`names.static[2].address`).
    pub fn parse(&self, index: usize) -> Result<StaticEntry, Vec<Problem>> {
        let key = |field: &str| format!("names.static[{index}].{field}");
        let mut problems = Vec::new();
        let name =
            EnsName::parse(&self.name)
                .map_err(|e| format!("{:?} is not an ENS name: {e}", self.name))
                .and_then(|name| {
                    if name.is_root() { Err("must be set, e.g. alice.eth".to_owned()) } else { Ok(name) }
                })
                .map_err(|message| problems.push(Problem { key: key("name"), message }))
                .ok();
        let address = self
            .address
            .as_deref()
            .map(|text| {
                Address::from_str(text).map_err(|_| Problem {
                    key: key("address"),
                    message: format!("{text:?} is not an Ethereum address (0x and 40 hex digits)"),
                })
            })
            .transpose()
            .map_err(|problem| problems.push(problem))
            .ok()
            .flatten();
        for (field, record) in [("profile", &self.profile), ("delivery_service", &self.delivery_service)] {
            if let Some(record) = record
                && let Err(e) = ProfileRecord::parse(record)
            {
                problems.push(Problem {
                    key: key(field),
                    message: format!("not a DM3 record (data:application/json,{{…}}, JSON, or a link): {e}"),
                });
            }
        }
        match name {
            Some(name) if problems.is_empty() => Ok(StaticEntry {
                name,
                address,
                profile: self.profile.clone(),
                delivery_service: self.delivery_service.clone(),
            }),
            _ => Err(problems),
        }
    }
}

impl NamesConfig {
    /// Every entry parsed, or every problem found.
    pub fn static_entries(&self) -> Result<Vec<StaticEntry>, Vec<Problem>> {
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for (index, entry) in self.static_names.iter().enumerate() {
            match entry.parse(index) {
                Ok(parsed) => records.push(parsed),
                Err(found) => problems.extend(found),
            }
        }
        if problems.is_empty() { Ok(records) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(name: &str, address: Option<&str>, profile: Option<&str>) -> StaticName {
        StaticName {
            name: name.to_owned(),
            address: address.map(str::to_owned),
            profile: profile.map(str::to_owned),
            delivery_service: None,
        }
    }

    #[test]
    fn entries_are_normalized_and_checked() {
        let good = entry("Alice.ETH", Some("0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13"), Some("{}"));
        let parsed = good.parse(0).unwrap();
        assert_eq!(parsed.name.as_str(), "alice.eth");
        assert!(parsed.address.is_some());

        let bad = entry("a b.eth", Some("0x12"), Some("nope"));
        let keys: Vec<String> = bad.parse(3).unwrap_err().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["names.static[3].name", "names.static[3].address", "names.static[3].profile"]);
        assert!(entry("", None, None).parse(0).is_err());
    }
}
