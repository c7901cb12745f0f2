//! Log output: human-readable text by default, one JSON object per line by config switch.
//!
//! Logs go to stderr (systemd and container runtimes collect it). The filter is the config's
//! `log.level`, a `tracing` filter directive, so that `DM3_BRIDGE_LOG__LEVEL=debug` works
//! like any other override.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log.level {level:?} is not a valid filter: {message}")]
    Filter { level: String, message: String },
}

/// Installs the global subscriber. A second call (tests start several nodes in one process)
/// keeps the first subscriber.
pub fn init(config: &LogConfig) -> Result<(), LoggingError> {
    let filter = EnvFilter::try_new(&config.level)
        .map_err(|e| LoggingError::Filter { level: config.level.clone(), message: e.to_string() })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    // try_init fails only when a subscriber is already installed, which is fine.
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    Ok(())
}
