//! The accessors every signed JSON object of the SDK shares.
//!
//! Messages, envelopes, profiles, postmarks and the rest keep the object exactly as it was
//! received or built (`raw`), because signatures and hashes cover its canonical form and the
//! reference keeps fields it does not know (docs/protocol.md P3). Each type reads its own
//! fields; how the whole object is handed out is the same for all, written once here.

/// `as_map` and `to_value` over a struct's `raw: Map<String, Value>` field, inside its `impl`.
macro_rules! raw_json_object {
    () => {
        /// The JSON object, exactly as received or built (unknown fields included).
        pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
            &self.raw
        }

        /// A copy of the JSON object as a value.
        pub fn to_value(&self) -> serde_json::Value {
            serde_json::Value::Object(self.raw.clone())
        }
    };
}

pub(crate) use raw_json_object;
