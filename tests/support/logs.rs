//! The node's logs at debug level, captured in memory for tests that assert what they never
//! hold (a key, a message's plaintext). One capture per test binary: the subscriber is global.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

static BUFFER: OnceLock<Shared> = OnceLock::new();

/// A writer into the shared buffer.
#[derive(Clone)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged since the capture began.
pub struct Captured(Shared);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Starts capturing the node's crates at debug level (the rest at info), once per binary.
pub fn capture() -> Captured {
    let shared = BUFFER.get_or_init(|| {
        let shared = Shared(Arc::new(Mutex::new(Vec::new())));
        let writer = shared.clone();
        let filter = "info,dm3=debug,dm3_bridge=debug,dm3_bridge_connector=debug,dm3_bridge_telegram=debug,\
                      dm3_bridge_matrix=debug";
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        shared
    });
    Captured(shared.clone())
}
