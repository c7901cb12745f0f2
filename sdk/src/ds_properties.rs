//! What a DS tells clients about itself and about a user: the JSON-RPC getters of §9.1.
//!
//! `dm3_getDeliveryServiceProperties` and `dm3_getProfileExtension` answer
//! `{"jsonrpc":"2.0","result":"<stringify(value)>"}`: no `id`, and `result` is
//! a JSON *string* that clients parse again (P10).
//!
//! The reference DS returns its whole config as the properties, notification
//! channel secrets included (P11). [`DeliveryServiceProperties`] can only hold
//! what is safe to publish: the limits and the channel *types*. `messageTTL`
//! is in milliseconds, 0 meaning "keep forever", as the reference DS computes
//! it (P12); `sizeLimit` is in bytes of the canonical envelope (§7.3).

use serde_json::{Map, Value, json};

use crate::canonical;
use crate::message::MessageType;

/// Why a remote answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    #[error("the body is not {{jsonrpc, result: <JSON string>}}")]
    NotARpcResult,
    #[error("field `{0}` is missing or malformed")]
    Field(&'static str),
}

/// The public part of a DS's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryServiceProperties {
    /// Milliseconds a message is kept; 0 keeps it until acknowledged (P12).
    pub message_ttl_ms: u64,
    /// Largest accepted envelope, in bytes of its canonical form (§7.3).
    pub size_limit: u64,
    /// `EMAIL`, `PUSH`: the kinds of notification the DS can send.
    pub notification_channel_types: Vec<String>,
    pub metrics_collection_interval_in_seconds: u64,
    pub metrics_retention_duration_in_seconds: u64,
}

impl Default for DeliveryServiceProperties {
    /// The reference defaults (`getDeliveryServiceProperties.ts`).
    fn default() -> Self {
        Self {
            message_ttl_ms: 0,
            size_limit: 100_000,
            notification_channel_types: Vec::new(),
            metrics_collection_interval_in_seconds: 86_400,
            metrics_retention_duration_in_seconds: 864_000,
        }
    }
}

impl DeliveryServiceProperties {
    /// The published object. Channels appear as `{type}` only, never with their config (P11).
    pub fn to_value(&self) -> Value {
        let channels: Vec<Value> =
            self.notification_channel_types.iter().map(|kind| json!({"type": kind})).collect();
        json!({
            "messageTTL": self.message_ttl_ms,
            "sizeLimit": self.size_limit,
            "notificationChannel": channels,
            "metricsCollectionIntervalInSeconds": self.metrics_collection_interval_in_seconds,
            "metricsRetentionDurationInSeconds": self.metrics_retention_duration_in_seconds,
        })
    }

    /// Reads another DS's properties. Only `messageTTL` and `sizeLimit` are
    /// required; channel configs, if a reference DS leaks them, are dropped.
    pub fn from_value(value: &Value) -> Result<Self, PropertiesError> {
        let number =
            |name: &'static str| value.get(name).and_then(Value::as_u64).ok_or(PropertiesError::Field(name));
        let defaults = Self::default();
        let channel_types = match value.get("notificationChannel") {
            None => Vec::new(),
            Some(Value::Array(channels)) => channels
                .iter()
                .filter_map(|channel| channel.get("type").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            Some(_) => return Err(PropertiesError::Field("notificationChannel")),
        };
        Ok(Self {
            message_ttl_ms: number("messageTTL")?,
            size_limit: number("sizeLimit")?,
            notification_channel_types: channel_types,
            metrics_collection_interval_in_seconds: number("metricsCollectionIntervalInSeconds")
                .unwrap_or(defaults.metrics_collection_interval_in_seconds),
            metrics_retention_duration_in_seconds: number("metricsRetentionDurationInSeconds")
                .unwrap_or(defaults.metrics_retention_duration_in_seconds),
        })
    }

    /// The `dm3_getDeliveryServiceProperties` response body.
    pub fn rpc_response_body(&self) -> String {
        rpc_result_body(&self.to_value())
    }

    /// Reads a `dm3_getDeliveryServiceProperties` response body.
    pub fn from_rpc_response_body(body: &str) -> Result<Self, PropertiesError> {
        Self::from_value(&parse_rpc_result_body(body)?)
    }
}

/// `ProfileExtension`: what a user's DS says the user does not accept (§4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileExtension {
    pub not_supported_message_types: Vec<MessageType>,
    pub encryption_algorithm: Option<Vec<String>>,
}

impl Default for ProfileExtension {
    /// The reference default claims NEW is unsupported. That is a bug clients
    /// ignore (P20); it is reproduced so our answers match the reference's.
    fn default() -> Self {
        Self { not_supported_message_types: vec![MessageType::New], encryption_algorithm: None }
    }
}

impl ProfileExtension {
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        let types = self.not_supported_message_types.iter().map(|kind| Value::from(kind.as_str())).collect();
        map.insert("notSupportedMessageTypes".into(), Value::Array(types));
        if let Some(algorithms) = &self.encryption_algorithm {
            map.insert("encryptionAlgorithm".into(), json!(algorithms));
        }
        Value::Object(map)
    }

    /// Reads an extension; message types we do not know are skipped, since
    /// we never send them anyway.
    pub fn from_value(value: &Value) -> Result<Self, PropertiesError> {
        let types = value
            .get("notSupportedMessageTypes")
            .and_then(Value::as_array)
            .ok_or(PropertiesError::Field("notSupportedMessageTypes"))?
            .iter()
            .filter_map(|kind| kind.as_str()?.parse().ok())
            .collect();
        let encryption_algorithm = match value.get("encryptionAlgorithm") {
            None => None,
            Some(Value::Array(items)) => {
                Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            }
            Some(_) => return Err(PropertiesError::Field("encryptionAlgorithm")),
        };
        Ok(Self { not_supported_message_types: types, encryption_algorithm })
    }

    /// The `dm3_getProfileExtension` response body.
    pub fn rpc_response_body(&self) -> String {
        rpc_result_body(&self.to_value())
    }

    pub fn from_rpc_response_body(body: &str) -> Result<Self, PropertiesError> {
        Self::from_value(&parse_rpc_result_body(body)?)
    }
}

/// `{"jsonrpc":"2.0","result":"<stringify(result)>"}`, as the reference getters answer (P10).
pub fn rpc_result_body(result: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","result":{}}}"#, canonical::stringify_str(&canonical::stringify(result)))
}

/// The value inside a getter's response: `JSON.parse(body.result)`.
pub fn parse_rpc_result_body(body: &str) -> Result<Value, PropertiesError> {
    let value: Value = serde_json::from_str(body).map_err(|_| PropertiesError::NotARpcResult)?;
    let result = value.get("result").and_then(Value::as_str).ok_or(PropertiesError::NotARpcResult)?;
    serde_json::from_str(result).map_err(|_| PropertiesError::NotARpcResult)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leaked_channel_configs_are_dropped() {
        let leaked = json!({"messageTTL": 5, "sizeLimit": 7,
            "notificationChannel": [{"type": "EMAIL", "config": {"smtpPassword": "secret"}}]});
        let properties = DeliveryServiceProperties::from_value(&leaked).unwrap();
        assert_eq!(properties.notification_channel_types, vec!["EMAIL".to_owned()]);
        assert!(!properties.rpc_response_body().contains("secret"));
        assert_eq!(
            DeliveryServiceProperties::from_rpc_response_body(&properties.rpc_response_body()).unwrap(),
            properties
        );
        assert_eq!(
            DeliveryServiceProperties::from_value(&json!({"sizeLimit": 1})),
            Err(PropertiesError::Field("messageTTL"))
        );
    }

    #[test]
    fn profile_extension_round_trips_and_skips_unknown_types() {
        let extension = ProfileExtension {
            not_supported_message_types: vec![MessageType::Edit],
            encryption_algorithm: Some(vec!["x".into()]),
        };
        assert_eq!(
            ProfileExtension::from_rpc_response_body(&extension.rpc_response_body()).unwrap(),
            extension
        );
        let parsed =
            ProfileExtension::from_value(&json!({"notSupportedMessageTypes": ["NEW", "SHOUT"]})).unwrap();
        assert_eq!(parsed, ProfileExtension::default());
        assert_eq!(parse_rpc_result_body(r#"{"result":{}}"#), Err(PropertiesError::NotARpcResult));
    }
}
