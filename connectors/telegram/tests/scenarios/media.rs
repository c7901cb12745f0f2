//! Files both ways, within and past the Bot API's limits (50 MB up, 20 MB down).

use dm3_bridge_connector::{
    Attachment, AttachmentSource, Connector as _, ConnectorError, Content, EventKind, Inbound, Message,
    MimeType, Text, Unsupported, deliver,
};

use crate::support::bot_api::SentFile;
use crate::support::{Harness, outbound};

fn attachment(name: &str, mime: &str, bytes: Vec<u8>, caption: Option<&str>) -> Message {
    let attachment = Attachment::inline(name, MimeType::new(mime).unwrap(), bytes).unwrap();
    Message::new(Content::Attachment { attachment, caption: caption.map(Text::plain) })
}

#[tokio::test]
async fn attachments_go_up_as_photos_or_documents_with_the_sender_in_the_caption() {
    let h = Harness::new().await;
    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3];
    let pdf = b"%PDF-1.7 tiny".to_vec();
    h.connector
        .send_message(&outbound(
            42,
            "alice.eth",
            "f1",
            attachment("cat.png", "image/png", png.clone(), Some("my cat")),
        ))
        .await
        .unwrap();
    h.connector
        .send_message(&outbound(
            42,
            "alice.eth",
            "f2",
            attachment("doc.pdf", "application/pdf", pdf.clone(), None),
        ))
        .await
        .unwrap();
    let sent = h.api.sent_to(42);
    assert_eq!(sent[0].method, "sendPhoto");
    assert_eq!(sent[0].text, "<b>alice.eth</b>: my cat");
    assert_eq!(sent[0].file, Some(SentFile::Upload { name: "cat.png".into(), bytes: png }));
    assert_eq!(sent[1].method, "sendDocument");
    assert_eq!(sent[1].text, "<b>alice.eth</b>", "a file without a caption is captioned with its sender");
    assert_eq!(sent[1].file, Some(SentFile::Upload { name: "doc.pdf".into(), bytes: pdf }));
}

#[tokio::test]
async fn attachments_past_50_mb_are_refused_before_any_upload() {
    let h = Harness::new().await;
    let big = attachment("big.bin", "application/octet-stream", vec![0; 50 * 1024 * 1024 + 1], None);
    let result =
        deliver(&h.connector, &outbound(42, "alice.eth", "f1", EventKind::Message(big.clone()))).await;
    assert_eq!(
        result,
        Err(ConnectorError::Unsupported(Unsupported::AttachmentTooLarge {
            size: 50 * 1024 * 1024 + 1,
            max: 50 * 1024 * 1024
        }))
    );
    // Even called directly, past the engine's capability check.
    assert!(matches!(
        h.connector.send_message(&outbound(42, "alice.eth", "f2", big)).await,
        Err(ConnectorError::Unsupported(_))
    ));
    assert_eq!(h.api.calls("sendDocument"), 0);
}

#[tokio::test]
async fn files_from_telegram_come_down_within_the_limit() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    let bytes: Vec<u8> = (0..=255).cycle().take(3000).collect();
    h.api.user_document(42, "notes.txt", "text/plain", bytes.clone(), bytes.len() as u64);
    let batches = h.sink.wait_for(2).await;
    let Inbound::Event(event) = &batches[1].items[0] else { panic!("{:?}", batches[1].items) };
    let EventKind::Message(Message { content: Content::Attachment { attachment, caption }, .. }) =
        &event.kind
    else {
        panic!("{:?}", event.kind)
    };
    assert_eq!(
        (attachment.name(), attachment.mime().as_str(), attachment.size()),
        ("notes.txt", "text/plain", 3000)
    );
    assert_eq!(caption.as_ref().map(|c| c.body.as_str()), Some("see attached"));
    let AttachmentSource::Url(url) = attachment.source() else {
        panic!("files stay on Telegram until fetched")
    };
    assert_eq!(url.scheme(), "telegram-file");
    assert!(!url.as_str().contains("TEST-token"), "the token never goes into an attachment");
    let media = h.connector.media().unwrap();
    assert_eq!(media.download(url, 10 * 1024 * 1024).await.unwrap(), bytes);
    match media.download(url, 1000).await {
        Err(ConnectorError::Permanent(reason)) => assert!(reason.contains("at most"), "{reason}"),
        other => panic!("{other:?}"),
    }
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn files_past_20_mb_are_reported_not_fetched() {
    let h = Harness::new().await;
    h.connector.start().await.unwrap();
    h.api.user_text(42, "/to bob.eth");
    h.api.user_document(42, "movie.mp4", "video/mp4", vec![1, 2, 3], 25 * 1024 * 1024);
    let batches = h.sink.wait_for(2).await;
    match &batches[1].items[0] {
        Inbound::Unbridgeable(u) => {
            assert_eq!(
                u.reason,
                "the file is 25.0 MB; a Telegram bot can fetch at most 20.0 MB, so it was not sent"
            )
        }
        other => panic!("{other:?}"),
    }
    // Asked anyway (an old attachment), getFile's "file is too big" becomes the same kind of refusal.
    let file_id = h.api.add_file("huge.bin", vec![0], 21 * 1024 * 1024);
    let url = dm3_bridge_telegram::content::file_url(&file_id).unwrap();
    match h.connector.media().unwrap().download(&url, u64::MAX).await {
        Err(ConnectorError::Permanent(reason)) => assert!(reason.contains("20.0 MB"), "{reason}"),
        other => panic!("{other:?}"),
    }
    h.connector.stop().await.unwrap();
}

#[tokio::test]
async fn a_telegram_file_is_resent_by_id() {
    let h = Harness::new().await;
    let file_id = h.api.add_file("x.bin", vec![9; 10], 10);
    let url = dm3_bridge_telegram::content::file_url(&file_id).unwrap();
    let remote = Attachment::remote("x.bin", MimeType::octet_stream(), url, 10).unwrap();
    let message = Message::new(Content::Attachment { attachment: remote, caption: None });
    h.connector.send_message(&outbound(42, "alice.eth", "f1", message)).await.unwrap();
    assert_eq!(h.api.sent_to(42)[0].file, Some(SentFile::Reference(file_id)));
}
