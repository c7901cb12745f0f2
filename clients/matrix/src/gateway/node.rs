//! What the bridge's node tells anyone, read over HTTP: the name it gives a network user
//! (`GET /names/lookup`, docs/names.md section 3) and the records its CCIP-read gateway serves
//! (docs/names.md section 4): the profiles of the names under its parent and its own delivery
//! service's profile. That is enough to write to any user of the bridge, gateway or bridged.
//!
//! The client asks the node's gateway directly instead of going through ENS and the resolver
//! contract, so the gateway's signature is not checked against the contract's signer: this
//! trusts the node the user chose, over TLS. A profile is still checked as every DM3 client
//! checks it (the schema and keys, docs/protocol.md §4.1). A name the node does not serve (a
//! DM3 user on ENS elsewhere) is resolved by the caller and handed in as a [`Recipient`].

use std::time::Duration;

use dm3::ccip::{Answer, GatewayResponse, Query, ResolveRequest};
use dm3::data_uri::decode_json;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::encoding::hex_encode;
use dm3::ens::EnsName;
use dm3::profile::SignedUserProfile;
use matrix_sdk::reqwest;
use serde::Deserialize;

use super::envelopes::Recipient;
use super::error::GatewayClientError;

/// The text record of a user's profile.
use dm3::ccip::PROFILE_TEXT_KEY as PROFILE_KEY;
/// The text record of a delivery service's profile.
const DELIVERY_SERVICE_KEY: &str = "network.dm3.deliveryService";
/// A resolver address for the gateway's signature; the node signs for whoever asks, and this
/// client does not check the signature (see the module's docs).
const ANY_RESOLVER: &str = "0x0000000000000000000000000000000000000000";
/// No answer of the node is larger than a profile; this bounds what is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The node's answer to `GET /names/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookedUp {
    pub name: String,
    pub network: String,
    pub user_id: String,
    /// The identity exists on the node and is enabled.
    pub exists: bool,
}

/// The bridge's node, by its public URL.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: url::Url,
    http: reqwest::Client,
}

impl NodeClient {
    pub fn new(public_url: &str) -> Result<Self, GatewayClientError> {
        let error = |reason: String| GatewayClientError::Node { url: public_url.to_owned(), reason };
        let base = url::Url::parse(public_url).map_err(|e| error(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| error(e.to_string()))?;
        Ok(Self { base, http })
    }

    fn error(&self, reason: impl Into<String>) -> GatewayClientError {
        GatewayClientError::Node { url: self.base.to_string(), reason: reason.into() }
    }

    /// The name the node gives `user` of `network` (`matrix`, `telegram`).
    pub async fn lookup(&self, network: &str, user: &str) -> Result<LookedUp, GatewayClientError> {
        let mut url = self.base.join("names/lookup").map_err(|e| self.error(e.to_string()))?;
        url.query_pairs_mut().append_pair("network", network).append_pair("user", user);
        let body = self.get(url).await?;
        serde_json::from_str(&body).map_err(|e| self.error(format!("the lookup's answer: {e}")))
    }

    /// A text record of `name` as the node's gateway answers it; `None` when it has none.
    pub async fn text_record(&self, name: &EnsName, key: &str) -> Result<Option<String>, GatewayClientError> {
        let query = Query::text(name, key);
        let request =
            ResolveRequest::new(name.clone(), query.clone(), None).map_err(|e| self.error(e.to_string()))?;
        let path = format!("ccip/{ANY_RESOLVER}/{}.json", hex_encode(&request.encode()));
        let url = self.base.join(&path).map_err(|e| self.error(e.to_string()))?;
        let body = self.get(url).await?;
        let response = GatewayResponse::from_json_body(&body).map_err(|e| self.error(e.to_string()))?;
        match Answer::decode(&query, &response.result).map_err(|e| self.error(e.to_string()))? {
            Answer::Text(text) => Ok(Some(text)),
            Answer::NotFound => Ok(None),
            Answer::Addr(_) => Err(self.error("an address where a text record was asked for")),
        }
    }

    /// The signed profile of a name the node serves.
    pub async fn profile(&self, name: &EnsName) -> Result<SignedUserProfile, GatewayClientError> {
        let refuse = |reason: String| GatewayClientError::Profile { name: name.to_string(), reason };
        let record =
            self.text_record(name, PROFILE_KEY).await?.ok_or_else(|| refuse("the node has none".into()))?;
        let value = decode_json(&record).map_err(|e| refuse(e.to_string()))?;
        SignedUserProfile::from_value(value).map_err(|e| refuse(e.to_string()))
    }

    /// The profile of the delivery service `name`, as its own record publishes it.
    pub async fn delivery_service(
        &self,
        name: &EnsName,
    ) -> Result<DeliveryServiceProfile, GatewayClientError> {
        let refuse = |reason: String| GatewayClientError::Profile { name: name.to_string(), reason };
        let record = self
            .text_record(name, DELIVERY_SERVICE_KEY)
            .await?
            .ok_or_else(|| refuse("no delivery service record".into()))?;
        let value = decode_json(&record).map_err(|e| refuse(e.to_string()))?;
        DeliveryServiceProfile::from_value(value).map_err(|e| refuse(e.to_string()))
    }

    /// A recipient the node serves, with each of its delivery services resolved through the
    /// node; one the node cannot resolve fails the whole (a sender seals for every delivery
    /// service of the recipient, P13, or for none).
    pub async fn recipient(&self, name: &EnsName) -> Result<Recipient, GatewayClientError> {
        let profile = self.profile(name).await?;
        let mut delivery_services = Vec::new();
        for ds in profile.profile().delivery_services() {
            let ds_name = EnsName::parse(ds).map_err(|e| GatewayClientError::Profile {
                name: name.to_string(),
                reason: format!("{ds}: {e}"),
            })?;
            let ds_profile = self.delivery_service(&ds_name).await?;
            delivery_services.push((ds_name, ds_profile));
        }
        Ok(Recipient { name: name.clone(), profile, delivery_services })
    }

    async fn get(&self, url: url::Url) -> Result<String, GatewayClientError> {
        let response = self.http.get(url.as_str()).send().await.map_err(|e| self.error(e.to_string()))?;
        let status = response.status();
        if response.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
            return Err(self.error(format!("an answer over {MAX_ANSWER_BYTES} bytes")));
        }
        let bytes = response.bytes().await.map_err(|e| self.error(e.to_string()))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(self.error(format!("an answer of {} bytes, over {MAX_ANSWER_BYTES}", bytes.len())));
        }
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            return Err(self.error(format!("{} {}: {body}", url.path(), status)));
        }
        Ok(body)
    }
}
