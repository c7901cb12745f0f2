//! The database URL: which backend, and a password that never reaches a log line.
//!
//! `postgres://user:secret@host/db` is the usual way to pass PostgreSQL credentials, so the
//! URL is a secret-bearing value. It is its own type so that `Debug` and `Display` (and with
//! them every `tracing` field and `check` message) show `postgres://user:***@host/db`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The storage backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A `sqlite:` or `postgres://` URL, with its password hidden when printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL as given; [`DatabaseUrl::backend`] tells whether it is usable.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL of a SQLite database file.
    pub fn sqlite_file(path: &Path) -> Self {
        Self(format!("sqlite://{}", path.display()))
    }

    /// The backend the scheme selects, or `None` for anything else.
    pub fn backend(&self) -> Option<Backend> {
        let url = self.0.as_str();
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The full URL, password included: only for handing to the database driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                // set_password only fails for URLs that cannot have one, and this one has one.
                let _ = parsed.set_password(Some("***"));
                parsed.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_printed() {
        let url = DatabaseUrl::new("postgres://bob:hunter2@db.example/relay");
        assert_eq!(url.to_string(), "postgres://bob:***@db.example/relay");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.backend(), Some(Backend::Postgres));
    }

    #[test]
    fn schemes_select_backends() {
        assert_eq!(DatabaseUrl::new("sqlite:///var/lib/x.sqlite").backend(), Some(Backend::Sqlite));
        assert_eq!(DatabaseUrl::new("postgresql://h/db").backend(), Some(Backend::Postgres));
        assert_eq!(DatabaseUrl::new("mysql://h/db").backend(), None);
    }
}
