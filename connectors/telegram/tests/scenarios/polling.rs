//! Long polling: updates are confirmed to Telegram only after the sink stored them, a
//! restarted poller delivers nothing twice, an update teloxide cannot read is skipped, a
//! loop that dies is reported and restarted, and with several processes sharing the bot it
//! polls only in its turns.

use dm3_bridge_connector::{Connector as _, Health, Inbound};

use crate::support::Harness;
use crate::support::bot_api::wait_until;

#[tokio::test]
async fn a_restarted_poller_with_the_same_sink_delivers_nothing_twice() {
    let h = Harness::new().await;
    h.api.user_text(42, "/to bob.eth");
    h.api.user_text(42, "one");
    h.api.user_text(42, "two");
    // The first getUpdates is served; every later one fails, so nothing gets confirmed: as if
    // the process died right after handing the updates to the engine.
    h.api.outage_after("getUpdates", 1);
    h.connector.start().await.unwrap();
    let batches = h.sink.wait_for(3).await;
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.pending_updates(), 3, "Telegram still holds the unconfirmed updates");
    assert_eq!(h.api.sent_to(42).len(), 1, "the /to was answered once");

    h.api.end_outage();
    let restarted = h.restarted();
    restarted.start().await.unwrap();
    wait_until(|| (h.api.pending_updates() == 0).then_some(())).await;
    restarted.stop().await.unwrap();
    assert_eq!(h.sink.batches(), batches, "the re-served updates were duplicates");
    assert_eq!(h.sink.duplicates(), 3);
    assert_eq!(h.api.sent_to(42).len(), 1, "a duplicate is not answered again");
    let texts: Vec<String> = batches
        .iter()
        .flat_map(|b| b.items.clone())
        .filter_map(|i| match i {
            Inbound::Event(e) => Some(format!("{:?}", e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(texts[0].contains("\"one\"") && texts[1].contains("\"two\""), "{texts:?}");
}

#[tokio::test]
async fn an_update_the_sink_could_not_store_is_retried_in_order() {
    let h = Harness::new().await;
    h.sink.fail_next(2);
    h.api.user_text(42, "/to bob.eth");
    h.api.user_text(42, "after the outage");
    h.connector.start().await.unwrap();
    let batches = h.sink.wait_for(2).await;
    assert!(matches!(batches[0].items[0], Inbound::PortalRequest(_)), "the first update first");
    assert!(matches!(batches[1].items[0], Inbound::Event(_)));
    wait_until(|| (h.api.pending_updates() == 0).then_some(())).await;
    h.connector.stop().await.unwrap();
    assert_eq!(h.sink.batches().len(), 2);
}

#[tokio::test]
async fn a_clean_stop_confirms_what_was_handled() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/help");
    h.sink.wait_for(1).await;
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.pending_updates(), 0);
    let offsets = h.api.get_updates_offsets();
    assert!(offsets.iter().any(Option::is_some), "the offset moved past the handled update: {offsets:?}");
}

#[tokio::test]
async fn polling_removes_a_webhook_left_set() {
    let h = Harness::new().await;
    let webhook = dm3_bridge_telegram::WebhookConfig {
        public_base_url: url::Url::parse("https://bridge.example.org").unwrap(),
        secret: dm3_bridge_telegram::WebhookSecret::new("s".repeat(32)),
        max_update_bytes: 1 << 20,
    };
    let mut config = crate::support::config(&h.api);
    config.mode = dm3_bridge_telegram::ReceiveMode::Webhook;
    config.webhook = Some(webhook);
    let hooked = dm3_bridge_telegram::TelegramConnector::new(
        config,
        h.sink.clone(),
        h.state.clone(),
        h.accounts.clone(),
    )
    .unwrap();
    hooked.start().await.unwrap();
    assert!(h.api.webhook().is_some());
    h.connector.start().await.unwrap();
    assert!(h.api.webhook().is_none(), "polling deleted the webhook");
    h.api.user_text(42, "/help");
    h.sink.wait_for(1).await;
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn the_long_poll_waits_for_updates_and_wakes_on_one() {
    let h = Harness::new().await; // poll timeout 1 s
    h.connector.start().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let idle_calls = h.api.calls("getUpdates");
    assert!(idle_calls <= 3, "a held poll, not a busy loop: {idle_calls} calls in 1.5 s");
    let sent_at = std::time::Instant::now();
    h.api.user_text(42, "/help");
    h.sink.wait_for(1).await;
    assert!(sent_at.elapsed() < std::time::Duration::from_millis(800), "the held poll answered at once");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_reaction_teloxide_cannot_read_is_skipped_and_the_updates_around_it_are_handled() {
    let h = Harness::new().await;
    let (to, _) = h.api.user_text(42, "/to bob.eth");
    let (before, _) = h.api.user_text(42, "before");
    // Telegram always names who reacted; teloxide 0.13 panics on a reaction that does not.
    let bad = h.api.reaction_without_actor(42, 2);
    let (other, _) = h.api.user_text(43, "/help");
    let (after, _) = h.api.user_text(42, "after");
    h.connector.start().await.unwrap();
    for update in [to, before, other, after] {
        h.sink.wait_for_update(update).await;
    }
    wait_until(|| (h.api.pending_updates() == 0).then_some(())).await;
    assert!(h.sink.batch_of(bad).is_none(), "nothing was made of the bad update");
    let help = &h.api.wait_for_sent(43, 1).await[0].text;
    assert!(help.starts_with("This bot connects you with DM3 users"), "{help}");

    // The loop goes on.
    let (later, _) = h.api.user_text(42, "later");
    h.sink.wait_for_update(later).await;
    assert!(h.connector.health().is_healthy());
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_polling_loop_that_dies_is_reported_unhealthy_and_restarted() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    let (to, _) = h.api.user_text(42, "/to bob.eth");
    h.sink.wait_for_update(to).await;
    assert!(h.connector.health().is_healthy());

    // A bug anywhere in handling an update: the loop ends.
    h.sink.panic_next(1);
    let (message, _) = h.api.user_text(42, "through the crash");
    let reason = wait_until(|| match h.connector.health() {
        Health::Unhealthy(reason) => Some(reason),
        Health::Healthy => None,
    })
    .await;
    assert!(reason.contains("scripted panic"), "{reason}");

    // Restarted: the update it died on is served again and stored, and all is well again.
    h.sink.wait_for_update(message).await;
    wait_until(|| h.connector.health().is_healthy().then_some(())).await;
    let (later, _) = h.api.user_text(42, "later");
    h.sink.wait_for_update(later).await;
    assert_eq!(h.sink.batches().len(), 3, "each update stored once");
    h.connector.stop().await.unwrap();
    assert_eq!(h.api.pending_updates(), 0);
}

/// Turns granted by the test, one per token sent; cancelling a token ends its turn (as a
/// replica's lost lease does, docs/scaling.md).
struct TestTurns(
    tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<tokio_util::sync::CancellationToken>>,
);

struct TestTurn(tokio_util::sync::CancellationToken);

impl dm3_bridge_telegram::PollingTurn for TestTurns {
    fn wait_for_turn<'a>(
        &'a self,
        stop: &'a tokio_util::sync::CancellationToken,
    ) -> dm3_bridge_connector::BoxFuture<'a, Option<Box<dyn dm3_bridge_telegram::Turn>>> {
        Box::pin(async move {
            let granted = tokio::select! {
                () = stop.cancelled() => return None,
                granted = async { self.0.lock().await.recv().await } => granted?,
            };
            let ended = stop.child_token();
            let end = ended.clone();
            tokio::spawn(async move {
                granted.cancelled().await;
                end.cancel();
            });
            Some(Box::new(TestTurn(ended)) as Box<dyn dm3_bridge_telegram::Turn>)
        })
    }
}

impl dm3_bridge_telegram::Turn for TestTurn {
    fn ended(&self) -> tokio_util::sync::CancellationToken {
        self.0.clone()
    }

    fn release(self: Box<Self>) -> dm3_bridge_connector::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn polling_runs_only_in_its_turns() {
    let h = Harness::new().await; // poll timeout 1 s
    let (grant, turns) = tokio::sync::mpsc::unbounded_channel();
    let connector = dm3_bridge_telegram::TelegramConnector::new(
        crate::support::config(&h.api),
        h.sink.clone(),
        h.state.clone(),
        h.accounts.clone(),
    )
    .unwrap()
    .with_polling_turns(std::sync::Arc::new(TestTurns(tokio::sync::Mutex::new(turns))));
    let idle = std::time::Duration::from_millis(1500);
    connector.start().await.unwrap();
    h.api.user_text(42, "/help");
    tokio::time::sleep(idle).await;
    assert_eq!(h.api.calls("getUpdates"), 0, "no turn, no poll");
    assert!(h.sink.batches().is_empty());

    let first = tokio_util::sync::CancellationToken::new();
    grant.send(first.clone()).unwrap();
    h.sink.wait_for(1).await;
    assert_eq!(connector.health(), Health::Healthy);

    // The turn ends (another process took it): the loop stops, having confirmed what it handled.
    first.cancel();
    tokio::time::sleep(idle).await;
    let polls = h.api.calls("getUpdates");
    assert!(polls > 0, "the turn was polled in");
    assert_eq!(h.api.pending_updates(), 0, "what was handled was confirmed when the turn ended");
    h.api.user_text(42, "/help");
    tokio::time::sleep(idle).await;
    assert_eq!(h.api.calls("getUpdates"), polls, "no poll between turns");
    assert_eq!(h.sink.batches().len(), 1);

    grant.send(tokio_util::sync::CancellationToken::new()).unwrap();
    h.sink.wait_for(2).await;
    connector.stop().await.unwrap();
    assert_eq!(connector.health(), Health::Healthy);
}
