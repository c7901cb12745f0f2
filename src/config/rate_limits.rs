//! `[rate_limits]`: how often one client may call the routes that cost the node work before
//! anyone is authenticated (docs/security.md).
//!
//! The last two classes are not routes but the envelopes for virtual identities, per DM3 sender
//! and per bridged user (`engine::inbox_limits`): what keeps the bridge from being a spam cannon.
//!
//! Each class of route has a sustained rate per minute and a burst: a client (one IP address,
//! or one IPv6 /64) may make `burst` calls at once, and then one more every
//! `60 / per_minute` seconds. `per_minute = 0` turns the limit of that class off. Kept apart
//! from `[relay]` because these numbers are about the node's protection, not about what DM3
//! clients observe: the defaults are far above what a person's client does, and far below
//! what makes the node write or fetch without bound.

use serde::{Deserialize, Serialize};

/// One class's rate and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// `[rate_limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// `GET/POST /auth/{name}`: each challenge is a row written for an unauthenticated caller.
    pub auth_per_minute: u32,
    pub auth_burst: u32,
    /// `POST /profile/{name}`: each registration resolves the name (chain and gateway fetches).
    pub profile_per_minute: u32,
    pub profile_burst: u32,
    /// `POST /rpc`: each submit may resolve its sender's profile and writes an envelope.
    pub rpc_per_minute: u32,
    pub rpc_burst: u32,
    /// `/ccip`: each answer reads the identities and signs.
    pub ccip_per_minute: u32,
    pub ccip_burst: u32,
    /// `GET /names/lookup`: each answer reads the identities.
    pub names_lookup_per_minute: u32,
    pub names_lookup_burst: u32,
    /// Envelopes one DM3 sender may submit for the node's virtual identities, all together
    /// (docs/relay.md, "Block and rate limits"): a DM3 user writing first must not reach every
    /// bridged user at once. Refused with -32010 (spam).
    pub dm3_sender_per_minute: u32,
    pub dm3_sender_burst: u32,
    /// Envelopes one virtual identity (a bridged Matrix or Telegram user) may receive, from all
    /// DM3 senders together. Refused with -32010 (spam).
    pub bridged_user_per_minute: u32,
    pub bridged_user_burst: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry instead of the TCP
    /// peer. Only behind a reverse proxy that sets it: otherwise every client can pick its own.
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            auth_per_minute: 120,
            auth_burst: 20,
            profile_per_minute: 30,
            profile_burst: 10,
            rpc_per_minute: 30_000,
            rpc_burst: 1_000,
            ccip_per_minute: 6_000,
            ccip_burst: 200,
            names_lookup_per_minute: 300,
            names_lookup_burst: 30,
            dm3_sender_per_minute: 60,
            dm3_sender_burst: 20,
            bridged_user_per_minute: 120,
            bridged_user_burst: 30,
            trust_forwarded_for: false,
        }
    }
}

impl RateLimitsConfig {
    pub fn auth(&self) -> Rate {
        Rate { per_minute: self.auth_per_minute, burst: self.auth_burst }
    }

    pub fn profile(&self) -> Rate {
        Rate { per_minute: self.profile_per_minute, burst: self.profile_burst }
    }

    pub fn rpc(&self) -> Rate {
        Rate { per_minute: self.rpc_per_minute, burst: self.rpc_burst }
    }

    pub fn ccip(&self) -> Rate {
        Rate { per_minute: self.ccip_per_minute, burst: self.ccip_burst }
    }

    pub fn names_lookup(&self) -> Rate {
        Rate { per_minute: self.names_lookup_per_minute, burst: self.names_lookup_burst }
    }

    pub fn dm3_sender(&self) -> Rate {
        Rate { per_minute: self.dm3_sender_per_minute, burst: self.dm3_sender_burst }
    }

    pub fn bridged_user(&self) -> Rate {
        Rate { per_minute: self.bridged_user_per_minute, burst: self.bridged_user_burst }
    }

    /// Each class by the key prefix it is configured with, for validation.
    pub fn classes(&self) -> [(&'static str, Rate); 7] {
        [
            ("auth", self.auth()),
            ("profile", self.profile()),
            ("rpc", self.rpc()),
            ("ccip", self.ccip()),
            ("names_lookup", self.names_lookup()),
            ("dm3_sender", self.dm3_sender()),
            ("bridged_user", self.bridged_user()),
        ]
    }
}
