//! Whether a failed step is worth trying again.
//!
//! Every error of this module answers [`FailureKind`], so the job handler maps it to the
//! worker's outcome in one line: `Retryable` → retry with backoff (not before `after`, when the
//! other side said so with `Retry-After`), `Permanent` → the job fails and its sender is told
//! why (the error's `Display` is written for that).
//!
//! The rule of thumb: retryable when the cause is outside the message and may go away (a name
//! source, a delivery service or the database not answering, a rate limit); permanent when the
//! message itself is the problem (a bad signature, an undecryptable envelope, a reference
//! nobody knows) or when the other side refused it for good.

use std::time::Duration;

/// What the worker should do with a job whose step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Try again later, and not before `after` when the other side asked for a pause.
    Retryable { after: Option<Duration> },
    /// Trying again cannot help.
    Permanent,
}

impl FailureKind {
    /// Retryable, with no pause asked for.
    pub const RETRY: FailureKind = FailureKind::Retryable { after: None };

    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The longer pause of two retryable failures; permanent wins over retryable.
    pub fn combine(self, other: FailureKind) -> FailureKind {
        match (self, other) {
            (Self::Permanent, _) | (_, Self::Permanent) => Self::Permanent,
            (Self::Retryable { after: a }, Self::Retryable { after: b }) => {
                Self::Retryable { after: a.max(b) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longer_pause_and_permanence_win() {
        let short = FailureKind::Retryable { after: Some(Duration::from_secs(1)) };
        let long = FailureKind::Retryable { after: Some(Duration::from_secs(9)) };
        assert_eq!(short.combine(long), long);
        assert_eq!(FailureKind::RETRY.combine(short), short);
        assert_eq!(long.combine(FailureKind::Permanent), FailureKind::Permanent);
        assert!(!FailureKind::Permanent.is_retryable());
    }
}
