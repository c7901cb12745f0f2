//! What the node tells its operator: log lines ([`logging`]) and Prometheus metrics
//! ([`metrics`]).
//!
//! Both follow one rule: nothing secret and no message content. Log fields are names, routes,
//! counts and durations; secrets have types that print `[redacted]`; request bodies are never
//! logged; metric labels are bounded sets (route templates, method names), never names of
//! users or paths with names in them.

pub mod logging;
pub mod metrics;
