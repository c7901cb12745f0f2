//! Linking: `/start` gives the Telegram user their DM3 name, deep links open a conversation,
//! `/to`, `/who`, `/contacts`, and the operator's link policy.

use dm3_bridge_connector::{Connector as _, ConnectorError, Inbound};
use dm3_bridge_telegram::ChatState as _;

use crate::support::bot_api::BOT_USERNAME;
use crate::support::{Harness, only};

#[tokio::test]
async fn start_links_the_user_and_tells_them_their_dm3_name() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    assert_eq!(h.connector.bot_username(), Some(BOT_USERNAME));
    let (update, _) = h.api.user_text(42, "/start");
    let answers = h.api.wait_for_sent(42, 1).await;
    assert!(answers[0].text.contains("<b>tg-42.tg.bridge.eth</b>"), "{}", answers[0].text);
    assert!(
        answers[0].text.contains(&format!("https://t.me/{BOT_USERNAME}?start=tg-42_tg_bridge_eth")),
        "{}",
        answers[0].text
    );
    assert_eq!(answers[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(h.accounts.linked(), [42]);
    let batches = h.sink.wait_for(1).await;
    assert_eq!(batches[0].key.as_str(), format!("update-{update}"));
    assert!(batches[0].items.is_empty(), "a bare /start queues nothing for DM3");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn the_link_policy_refuses_users_outside_the_allow_list() {
    let h = Harness::with(|c| c.link_policy = only(&[7])).await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/start");
    h.api.user_text(42, "/to alice.eth");
    h.api.user_text(42, "hello?");
    let answers = h.api.wait_for_sent(42, 3).await;
    for answer in &answers {
        assert!(answer.text.contains("not open to your Telegram account"), "{}", answer.text);
        assert!(answer.text.contains("<code>42</code>"), "{}", answer.text);
    }
    let batches = h.sink.wait_for(3).await;
    assert!(batches.iter().all(|b| b.items.is_empty()), "nothing from a refused user reaches DM3");
    assert!(h.accounts.linked().is_empty(), "no identity for a refused user");
    // The allowed user is served.
    h.api.user_text(7, "/start");
    let answers = h.api.wait_for_sent(7, 1).await;
    assert!(answers[0].text.contains("tg-7.tg.bridge.eth"));
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_deep_link_opens_a_conversation_with_the_named_dm3_user() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/start alice_eth");
    let answers = h.api.wait_for_sent(42, 2).await;
    assert!(answers[0].text.contains("tg-42.tg.bridge.eth"));
    assert!(answers[1].text.contains("now writing to <b>alice.eth</b>"), "{}", answers[1].text);
    let batches = h.sink.wait_for(1).await;
    match batches[0].items.as_slice() {
        [Inbound::PortalRequest(request)] => {
            assert_eq!(request.conversation.as_str(), "42/alice.eth");
            assert_eq!(request.requester.as_str(), "42");
            assert_eq!(request.remote.as_str(), "alice.eth");
        }
        other => panic!("expected one portal request, got {other:?}"),
    }
    // A non-ASCII name travels in the base64 form.
    h.api.user_text(42, &format!("/start {}", dm3_bridge_telegram::deep_link::encode("zoë.eth").unwrap()));
    let answers = h.api.wait_for_sent(42, 4).await;
    assert!(answers[3].text.contains("now writing to <b>zoë.eth</b>"), "{}", answers[3].text);
    h.api.user_text(42, "/who");
    let answers = h.api.wait_for_sent(42, 5).await;
    assert_eq!(answers[4].text, "You are writing to <b>zoë.eth</b>.");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn to_who_and_contacts() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/who");
    h.api.user_text(42, "/to Alice.ETH");
    h.api.user_text(42, "/to bob.eth");
    h.api.user_text(42, "/contacts");
    h.api.user_text(42, "/to nobody.eth");
    h.api.user_text(42, "/to");
    h.api.user_text(42, "/frobnicate");
    let answers = h.api.wait_for_sent(42, 7).await;
    assert!(answers[0].text.contains("not writing to anyone"));
    assert!(
        answers[1].text.contains("now writing to <b>alice.eth</b>"),
        "names are normalized: {}",
        answers[1].text
    );
    assert!(answers[2].text.contains("now writing to <b>bob.eth</b>"));
    assert!(
        answers[3].text.contains("<code>bob.eth</code> ← current\n• <code>alice.eth</code>"),
        "{}",
        answers[3].text
    );
    assert!(answers[4].text.contains("There is no DM3 user named <b>nobody.eth</b>"), "{}", answers[4].text);
    assert!(answers[5].text.contains("Whom to?"));
    assert!(answers[6].text.contains("There is no command /frobnicate"));
    let portals: Vec<String> = h
        .sink
        .wait_for(7)
        .await
        .iter()
        .flat_map(|b| b.items.clone())
        .map(|item| match item {
            Inbound::PortalRequest(r) => r.conversation.to_string(),
            other => panic!("only portal requests expected, got {other:?}"),
        })
        .collect();
    assert_eq!(portals, ["42/alice.eth", "42/bob.eth"]);
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_name_too_long_for_a_conversation_id_is_refused_clearly() {
    let h = Harness::new().await;
    let long = format!("{}.eth", "a".repeat(250));
    h.accounts.add_name(&long);
    h.connector.start().await.unwrap();
    h.api.user_text(42, &format!("/to {long}"));
    let answers = h.api.wait_for_sent(42, 1).await;
    assert_eq!(
        answers[0].text,
        "the DM3 name is 254 bytes long; this bridge can hold names of at most 252 bytes"
    );
    let batches = h.sink.wait_for(1).await;
    assert!(batches[0].items.is_empty());
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_fails_start_with_a_clear_reason() {
    let h = Harness::new().await;
    let mut config = crate::support::config(&h.api);
    config.token = dm3_bridge_telegram::BotToken::new("999:wrong-token");
    let connector = dm3_bridge_telegram::TelegramConnector::new(
        config,
        h.sink.clone(),
        h.state.clone(),
        h.accounts.clone(),
    )
    .unwrap();
    match connector.start().await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("token"), "{reason}");
            assert!(!reason.contains("wrong-token"), "the token is never printed: {reason}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing polls: the fake saw no getUpdates.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(h.api.calls("getUpdates"), 0);
}

#[tokio::test]
async fn an_unavailable_service_leaves_the_update_for_later_and_a_refusal_is_told() {
    let h = Harness::new().await;
    h.accounts.link_failures.lock().unwrap().extend([
        dm3_bridge_telegram::StateError::Unavailable("database restarting".into()),
        dm3_bridge_telegram::StateError::Refused("new identities are paused by the operator".into()),
    ]);
    h.connector.start().await.unwrap();
    // The first /start meets the outage: not confirmed, handled again, then refused in words.
    h.api.user_text(42, "/start");
    let answers = h.api.wait_for_sent(42, 1).await;
    assert_eq!(answers[0].text, "new identities are paused by the operator");
    h.api.user_text(42, "/start");
    let answers = h.api.wait_for_sent(42, 2).await;
    assert!(answers[1].text.contains("tg-42.tg.bridge.eth"));
    let batches = h.sink.wait_for(2).await;
    assert_eq!(batches.len(), 2, "each update stored once, the outage notwithstanding");
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_name_source_that_stays_down_does_not_hold_up_later_updates() {
    let h = Harness::new().await;
    h.accounts.unavailable.lock().unwrap().insert("down.eth".into(), 0);
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to down.eth");
    h.api.user_text(43, "/start");
    // The lookup is tried a few times, then the user is told to try again; the update after it
    // is handled.
    let answers = h.api.wait_for_sent(42, 1).await;
    assert!(answers[0].text.contains("could not look up <b>down.eth</b> right now"), "{}", answers[0].text);
    let answers = h.api.wait_for_sent(43, 1).await;
    assert!(answers[0].text.contains("tg-43.tg.bridge.eth"), "{}", answers[0].text);
    assert_eq!(h.accounts.unavailable.lock().unwrap()["down.eth"], 3);
    assert_eq!(h.state.current_contact(42).await.unwrap(), None, "no contact was set");
    h.connector.stop().await.unwrap();
}
