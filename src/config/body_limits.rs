//! The request body limits the configuration implies: what each route with a large body reads
//! at most, and the largest of them.
//!
//! They are here, in the configuration, because two sides need them: the routes read their
//! bodies within them (`crate::routes::rpc`, `crate::routes::delivery`), and [`Config::problems`]
//! checks that the body budgets of `[limits]` hold at least the largest
//! ([`largest_body_limit`]). Kept in the routes, they made the configuration depend on the HTTP
//! API above it.
//!
//! [`Config::problems`]: super::Config::problems

use super::{Config, RelayConfig};

/// The body of `syncAcknowledgements`: enough to acknowledge a whole `incoming` answer
/// (101 × 1001 entries of ~150 bytes).
pub const ACK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Room for the JSON-RPC wrapper around an envelope, beyond the doubled envelope.
const WRAPPER_HEADROOM: usize = 64 * 1024;

/// The raw body limit of `/rpc` for a given envelope `size_limit`.
///
/// `size_limit` is measured on the canonical envelope after parsing (docs/protocol.md §7.3, done by
/// the protocol code). On the wire, `params[0]` is that envelope JSON-encoded once more, and
/// the envelope's fields are themselves JSON strings of JSON, so escaping can up to double its
/// size (`\"` becomes `\\\"`). The raw limit is therefore twice the envelope limit plus room
/// for the wrapper: large enough never to refuse an envelope the exact check would accept,
/// small enough to bound memory before parsing.
pub fn rpc_body_limit(relay: &RelayConfig) -> usize {
    usize::try_from(relay.size_limit).unwrap_or(usize::MAX).saturating_mul(2).saturating_add(WRAPPER_HEADROOM)
}

/// The largest request body any route of `config` accepts, in bytes: the body budgets of
/// `[limits]` must hold at least one such body (`crate::config::limits`).
pub fn largest_body_limit(config: &Config) -> u64 {
    let matrix = config.matrix.as_ref().map(|_| dm3_bridge_matrix::appservice::DEFAULT_MAX_TRANSACTION_BYTES);
    let telegram =
        config.telegram.as_ref().and_then(|t| t.webhook.as_ref()).map(|webhook| webhook.max_update_bytes);
    [Some(ACK_BODY_LIMIT), Some(rpc_body_limit(&config.relay)), matrix, telegram]
        .into_iter()
        .flatten()
        .map(|bytes| u64::try_from(bytes).unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_limit_leaves_room_for_double_encoding() {
        let relay = RelayConfig::default();
        assert_eq!(rpc_body_limit(&relay), 200_000 + 64 * 1024);
    }
}
