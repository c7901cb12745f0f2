//! Messages from DM3 users into bot chats: the sender's name, formatting, replies, edits,
//! deletes, reactions, and the failures a sender must hear about.

use dm3_bridge_connector::{
    Connector as _, ConnectorError, Content, Delete, Edit, EventKind, Message, NetworkMessageId, Reaction,
    ReactionKey, Text, deliver,
};

use crate::support::bot_api::Failure;
use crate::support::{Harness, outbound, text_message};

#[tokio::test]
async fn relayed_messages_name_their_sender_and_keep_formatting() {
    let h = Harness::new().await;
    let html =
        Text::formatted("Hi there\n\n- one", "<p>Hi <strong>there</strong></p>\n<ul>\n<li>one</li>\n</ul>");
    let id = h
        .connector
        .send_message(&outbound(42, "alice.eth", "k1", Message::new(Content::Text(html))))
        .await
        .unwrap();
    h.connector
        .send_message(&outbound(42, "bob.eth", "k2", text_message("1 < 2 & <b>not bold</b>")))
        .await
        .unwrap();
    let sent = h.api.sent_to(42);
    assert_eq!(sent[0].text, "<b>alice.eth</b>: Hi <b>there</b>\n\n• one");
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(id.as_str(), format!("42:{}", sent[0].message_id));
    assert_eq!(sent[1].text, "<b>bob.eth</b>: 1 &lt; 2 &amp; &lt;b&gt;not bold&lt;/b&gt;");
    assert_eq!(h.state.route(id.as_str()).as_deref(), Some("42/alice.eth"), "replies to it will find alice");
}

#[tokio::test]
async fn a_dm3_user_cannot_pass_a_line_of_their_message_off_as_another_senders() {
    let h = Harness::new().await;
    // What alice's client renders from "hi\n\n**bob.eth**: send me your code".
    let mimic = Text::formatted(
        "hi\n\n**bob.eth**: send me your code",
        "<p>hi</p>\n<p><strong>bob.eth</strong>: send me your code</p>",
    );
    h.connector
        .send_message(&outbound(42, "alice.eth", "k1", Message::new(Content::Text(mimic))))
        .await
        .unwrap();
    let sent = h.api.sent_to(42);
    assert_eq!(sent[0].text, "<b>alice.eth</b>: hi\n\nbob.eth: send me your code");
}

#[tokio::test]
async fn a_custom_sender_format_and_a_reply() {
    let h = Harness::with(|c| c.sender_format = dm3_bridge_telegram::SenderFormat::new("{body}\n— {sender}"))
        .await;
    let (_, user_message) = h.api.user_text(42, "question?");
    let reply = Message::new(Content::Text(Text::plain("answer")))
        .replying_to(NetworkMessageId::new(format!("42:{user_message}")).unwrap());
    h.connector.send_message(&outbound(42, "alice.eth", "k1", reply)).await.unwrap();
    let sent = h.api.sent_to(42);
    assert_eq!(sent[0].text, "answer\n— <b>alice.eth</b>");
    assert_eq!(sent[0].reply_to, Some(user_message));
}

#[tokio::test]
async fn a_retried_send_is_not_posted_twice() {
    let h = Harness::new().await;
    let request = outbound(42, "alice.eth", "same-key", text_message("once"));
    let first = h.connector.send_message(&request).await.unwrap();
    let second = h.connector.send_message(&request).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(h.api.sent_to(42).len(), 1);
}

#[tokio::test]
async fn edits_and_deletes_of_relayed_messages() {
    let h = Harness::new().await;
    let original =
        deliver(&h.connector, &outbound(42, "alice.eth", "m1", EventKind::Message(text_message("helo"))))
            .await
            .unwrap()
            .unwrap();
    let edit = EventKind::Edit(Edit { target: original.clone(), text: Text::plain("hello") });
    let edit_id =
        deliver(&h.connector, &outbound(42, "alice.eth", "e1", edit.clone())).await.unwrap().unwrap();
    assert_eq!(edit_id.as_str(), format!("{original}:edit-e1"));
    // A retry of the same edit: Telegram says "not modified", which is success.
    deliver(&h.connector, &outbound(42, "alice.eth", "e1", edit)).await.unwrap();
    let (message, _) = dm3_bridge_telegram::ids::parse_message_id(&original).unwrap();
    assert_eq!(h.api.edits(), [(42, message.message, "<b>alice.eth</b>: hello".to_owned())]);

    let delete = EventKind::Delete(Delete { target: original.clone(), reason: None });
    assert_eq!(deliver(&h.connector, &outbound(42, "alice.eth", "d1", delete.clone())).await.unwrap(), None);
    // A retry after the message is gone: "message to delete not found" is success too.
    deliver(&h.connector, &outbound(42, "alice.eth", "d1", delete)).await.unwrap();
    assert_eq!(h.api.deleted(), [(42, message.message)]);
}

#[tokio::test]
async fn a_contact_cannot_delete_what_belongs_to_another_conversation() {
    let h = Harness::new().await;
    let alices =
        h.connector.send_message(&outbound(42, "alice.eth", "m1", text_message("mine"))).await.unwrap();
    let delete = EventKind::Delete(Delete { target: alices, reason: None });
    match deliver(&h.connector, &outbound(42, "bob.eth", "d1", delete)).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("another conversation"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(h.api.deleted().is_empty());
}

/// A bot may delete the user's own messages in a private chat, so Telegram would carry out a
/// DM3 user's DELETE_REQUEST that names one; the connector refuses it.
#[tokio::test]
async fn a_dm3_user_cannot_delete_the_telegram_users_own_message() {
    let h = Harness::new().await;
    h.api.user_text(42, "/to alice.eth");
    let (_, message) = h.api.user_text(42, "my words");
    let target = NetworkMessageId::new(format!("42:{message}")).unwrap();
    let delete = EventKind::Delete(Delete { target, reason: None });
    match deliver(&h.connector, &outbound(42, "alice.eth", "d1", delete)).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("not theirs to delete"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(h.api.deleted().is_empty());
}

#[tokio::test]
async fn reactions_with_telegram_emoji_and_a_clear_refusal_for_others() {
    let h = Harness::new().await;
    h.api.user_text(42, "/to alice.eth"); // a user message to react to
    let (_, message) = h.api.user_text(42, "good news");
    let target = NetworkMessageId::new(format!("42:{message}")).unwrap();
    let thumbs =
        EventKind::Reaction(Reaction { target: target.clone(), key: ReactionKey::new("👍").unwrap() });
    let reaction_id = deliver(&h.connector, &outbound(42, "alice.eth", "r1", thumbs)).await.unwrap().unwrap();
    assert_eq!(h.api.reactions(), [(42, message, vec!["👍".to_owned()])]);

    let unicorn = EventKind::Reaction(Reaction { target, key: ReactionKey::new("🦄").unwrap() });
    match deliver(&h.connector, &outbound(42, "alice.eth", "r2", unicorn)).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("standard reaction emoji"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Taking the reaction back removes the bot's reaction.
    let undo = EventKind::Delete(Delete { target: reaction_id, reason: None });
    deliver(&h.connector, &outbound(42, "alice.eth", "r3", undo)).await.unwrap();
    assert_eq!(h.api.reactions().last(), Some(&(42, message, Vec::new())));
    assert!(h.api.deleted().is_empty(), "the message itself stays");
}

#[tokio::test]
async fn too_long_text_is_refused_with_the_limit() {
    let h = Harness::new().await;
    let long = "x".repeat(4090);
    match h.connector.send_message(&outbound(42, "alice.eth", "k1", text_message(&long))).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert_eq!(
                reason,
                "the text is 4101 characters long with the sender's name; Telegram takes at most 4096"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(h.api.sent().is_empty());
}

#[tokio::test]
async fn a_blocked_bot_is_a_permanent_failure_with_the_reason() {
    let h = Harness::new().await;
    h.api.fail_next("sendMessage", Failure::blocked());
    match h.connector.send_message(&outbound(42, "alice.eth", "k1", text_message("hi"))).await {
        Err(ConnectorError::Permanent(reason)) => {
            assert!(reason.contains("blocked the bridge's bot"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(h.api.sent().is_empty());
}

#[tokio::test]
async fn capabilities_say_no_read_receipts_and_50_mb_files() {
    let h = Harness::new().await;
    let caps = h
        .connector
        .capabilities(&dm3_bridge_connector::ConversationId::new("42/alice.eth").unwrap())
        .await
        .unwrap();
    assert!(!caps.read_receipts && caps.edits && caps.reactions && caps.deletes && caps.replies);
    assert_eq!(caps.media.unwrap().max_bytes, 50 * 1024 * 1024);
    let receipt = EventKind::ReadReceipt(dm3_bridge_connector::ReadReceipt {
        up_to: NetworkMessageId::new("42:1").unwrap(),
    });
    assert!(matches!(
        deliver(&h.connector, &outbound(42, "alice.eth", "rr", receipt)).await,
        Err(ConnectorError::Unsupported(_))
    ));
    assert!(
        h.connector.capabilities(&dm3_bridge_connector::ConversationId::new("!room").unwrap()).await.is_err()
    );
}
