//! What the connector says in its logs and errors: the privacy-mode warning, and never the token.

use std::io::Write;
use std::sync::{Arc, Mutex};

use dm3_bridge_connector::{Connector as _, ConnectorError};

use crate::support::bot_api::TOKEN;
use crate::support::{Harness, outbound, text_message};

/// Collects everything logged on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

// Single-threaded runtime: the poller task runs on this thread and logs to the capture.
#[tokio::test(flavor = "current_thread")]
async fn privacy_mode_is_warned_about_and_the_token_is_never_logged() {
    let (logs, _guard) = capture();
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    h.api.user_text(42, "hello");
    h.sink.wait_for(2).await;
    h.api.fail_next("sendMessage", crate::support::bot_api::Failure::too_many(1));
    let _ = h.connector.send_message(&outbound(42, "alice.eth", "k1", text_message("x"))).await;
    h.connector.stop().await.unwrap();
    let text = logs.text();
    assert!(text.contains("privacy mode is on"), "{text}");
    assert!(text.contains("polling Telegram for updates"), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains("TEST-token"), "the token leaked into the logs:\n{text}");

    let (logs, _guard) = capture();
    let quiet = Harness::new().await;
    quiet.api.set_privacy_mode(false);
    quiet.connector.start().await.unwrap();
    quiet.connector.stop().await.unwrap();
    assert!(!logs.text().contains("privacy mode"), "{}", logs.text());
}

#[tokio::test]
async fn network_errors_are_transient_and_never_show_the_token() {
    let h = Harness::new().await;
    let mut config = crate::support::config(&h.api);
    config.api_url = Some(url::Url::parse("http://127.0.0.1:1").unwrap());
    let unreachable = dm3_bridge_telegram::TelegramConnector::new(
        config,
        h.sink.clone(),
        h.state.clone(),
        h.accounts.clone(),
    )
    .unwrap();
    match unreachable.send_message(&outbound(42, "alice.eth", "k1", text_message("x"))).await {
        Err(ConnectorError::Transient(reason)) => {
            assert!(reason.contains("unreachable"), "{reason}");
            assert!(!reason.contains("TEST-token"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match unreachable.start().await {
        Err(e) => assert!(!e.to_string().contains("TEST-token"), "{e}"),
        Ok(()) => panic!("started against nothing"),
    }
}
