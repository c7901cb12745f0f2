//! Files against a real Synapse: uploads and bounded downloads through the media repository,
//! attachments sent to a Matrix user, and a user's file arriving as an attachment by URL that
//! the connector can fetch; encrypted files (attachment encryption v2) both ways with an
//! encrypting client's own code (matrix-sdk) on the other side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/matrix_bridge.rs"]
mod matrix_bridge;
#[path = "support/synapse.rs"]
mod synapse;

use dm3_bridge_connector::{
    Attachment, AttachmentSource, Connector as _, ConnectorError, Content, ConversationId, EventKind,
    IdempotencyKey, Inbound, InboundEvent, Message, MimeType, Outbound, PortalRequest, Text, Unsupported,
    deliver,
};
use dm3_bridge_matrix::{DEFAULT_MAX_MEDIA_BYTES, MatrixConnector};
use dm3_matrix_client::Credentials;
use matrix_bridge::Bridge;
use serde_json::json;

/// Bytes that are not all the same, so a truncated or shifted copy is noticed.
fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_round_trips_within_the_limit_and_is_refused_past_it() {
    let bridge = Bridge::start().await;
    // Configured above the homeserver's 50 MiB default: start lowers it to the homeserver's.
    let connector = bridge.connector().with_max_media_bytes(DEFAULT_MAX_MEDIA_BYTES * 4);
    connector.start().await.unwrap();
    assert_eq!(connector.max_media_bytes(), 50 * 1024 * 1024, "m.upload.size of the homeserver");
    let room = ConversationId::new("!any").unwrap();
    let capabilities = connector.capabilities(&room).await.unwrap();
    assert_eq!(capabilities.media.unwrap().max_bytes, 50 * 1024 * 1024);

    let media = connector.media().expect("the Matrix connector moves files");
    let content = bytes(100_000);
    let file = Attachment::inline("data.bin", MimeType::octet_stream(), content.clone()).unwrap();
    let stored = media.upload(&file).await.unwrap();
    let AttachmentSource::Url(url) = stored.source() else { panic!("not by URL: {stored:?}") };
    assert_eq!(url.scheme(), "mxc");
    assert_eq!((stored.name(), stored.size()), ("data.bin", 100_000));

    assert_eq!(media.download(url, 100_000).await.unwrap(), content, "exactly at the limit");
    let error = media.download(url, 99_999).await.unwrap_err();
    assert!(
        matches!(&error, ConnectorError::Permanent(m) if m.contains("larger than the 99999 bytes")),
        "{error:?}"
    );
    let missing = url::Url::parse(&format!("{}x", url.as_str())).unwrap();
    assert!(matches!(media.download(&missing, 10).await, Err(ConnectorError::Permanent(_))));
    let not_matrix = url::Url::parse("https://example.org/file").unwrap();
    assert!(matches!(media.download(&not_matrix, 10).await, Err(ConnectorError::Permanent(_))));

    let small = bridge.connector().with_max_media_bytes(10);
    let eleven = Attachment::inline("a.txt", MimeType::new("text/plain").unwrap(), bytes(11)).unwrap();
    assert_eq!(
        small.media().unwrap().upload(&eleven).await,
        Err(ConnectorError::Unsupported(Unsupported::AttachmentTooLarge { size: 11, max: 10 }))
    );
}

/// bob's direct room with alice.eth's ghost, joined by the ghost: (bob, the room, the portal
/// request, a started connector).
async fn portal_with_bob(bridge: &Bridge) -> (synapse::MatrixUser, String, PortalRequest, MatrixConnector) {
    let bob = bridge.synapse.register_user("bob").await.unwrap();
    let ghost = bridge.ghost("alice.eth");
    let room = bob.create_room(json!({"is_direct": true, "invite": [ghost.as_str()]})).await.unwrap();
    let request = bridge
        .wait_for_item(
            "the invite",
            |i| matches!(i, Inbound::PortalRequest(r) if r.conversation.as_str() == room),
        )
        .await;
    let Inbound::PortalRequest(request) = request else { unreachable!() };
    let connector = bridge.connector();
    connector.start().await.unwrap();
    connector.portals().unwrap().join_portal(&request).await.unwrap();
    (bob, room, request, connector)
}

/// Sends `content` as bob's `m.room.message` and waits until the bridge hands it over.
async fn bobs_event(
    bridge: &Bridge,
    bob: &synapse::MatrixUser,
    room: &str,
    txn: &str,
    content: serde_json::Value,
) -> InboundEvent {
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", synapse::encode(room));
    let sent = bob.call(reqwest::Method::PUT, &path, Some(content)).await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = bridge
        .wait_for_item(
            "bob's event",
            |i| matches!(i, Inbound::Event(e) if e.network_event_id.as_str() == sent),
        )
        .await;
    let Inbound::Event(event) = item else { unreachable!() };
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_reach_the_user_and_the_users_files_come_back_by_url() {
    let bridge = Bridge::start_with_engine().await;
    let (bob, room, request, connector) = portal_with_bob(&bridge).await;
    let ghost = bridge.ghost("alice.eth");

    // DM3 → Matrix: an inline image with a caption becomes an m.image bob can download.
    let picture = bytes(5_000);
    let image = Attachment::inline("cat.png", MimeType::new("image/png").unwrap(), picture.clone()).unwrap();
    let outbound = Outbound {
        conversation: ConversationId::new(room.as_str()).unwrap(),
        sender: request.remote.clone(),
        idempotency_key: IdempotencyKey::new("image-1").unwrap(),
        timestamp_ms: None,
        retry: false,
        payload: EventKind::Message(Message::new(Content::Attachment {
            attachment: image,
            caption: Some(Text::plain("my cat")),
        })),
    };
    let sent = deliver(&connector, &outbound).await.unwrap().unwrap();
    let again = deliver(&connector, &outbound).await.unwrap().unwrap();
    assert_eq!(sent, again, "a retried send is the same event");
    let timeline = bob.messages(&room).await.unwrap();
    let images: Vec<_> = timeline.iter().filter(|e| e["content"]["msgtype"] == "m.image").collect();
    assert_eq!(images.len(), 1, "shown once");
    let event = images[0];
    assert_eq!(event["event_id"], sent.as_str());
    assert_eq!(event["sender"], ghost.as_str());
    assert_eq!(
        (event["content"]["body"].as_str(), event["content"]["filename"].as_str()),
        (Some("my cat"), Some("cat.png"))
    );
    assert_eq!(event["content"]["info"], json!({"mimetype": "image/png", "size": 5000}));
    assert_eq!(bob.download(event["content"]["url"].as_str().unwrap()).await.unwrap(), picture);

    // Matrix → DM3: bob's file arrives as an attachment by URL, and its bytes can be fetched.
    let report = bytes(3_000);
    let uri = bob.upload(report.clone(), "application/pdf", "report.pdf").await.unwrap();
    let event = bobs_event(
        &bridge,
        &bob,
        &room,
        "f1",
        json!({"msgtype": "m.file", "body": "report.pdf", "url": uri, "info": {"mimetype": "application/pdf", "size": 3000}}),
    )
    .await;
    let EventKind::Message(Message { content: Content::Attachment { attachment, caption: None }, .. }) =
        event.kind
    else {
        panic!("not an attachment: {:?}", event.kind)
    };
    assert_eq!(
        (attachment.name(), attachment.mime().as_str(), attachment.size()),
        ("report.pdf", "application/pdf", 3000)
    );
    let AttachmentSource::Url(url) = attachment.source() else { panic!("not by URL") };
    assert_eq!(url.as_str(), uri);
    assert_eq!(connector.media().unwrap().download(url, connector.max_media_bytes()).await.unwrap(), report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_files_are_ciphertext_on_the_homeserver_and_open_on_the_other_side() {
    let bridge = Bridge::start_with_engine().await;
    let (bob, room, _, connector) = portal_with_bob(&bridge).await;

    // DM3 → Matrix, as for an encrypted room: the homeserver gets ciphertext only, and the
    // `file` object (what the encrypted event carries) opens it.
    let contract = bytes(20_000);
    let attachment =
        Attachment::inline("contract.pdf", MimeType::new("application/pdf").unwrap(), contract.clone())
            .unwrap();
    let ghost = bridge.ghost("alice.eth");
    let file = connector.stored_sealed(&attachment, &ghost).await.unwrap();
    let stored = bob.download(file.url.as_str()).await.unwrap();
    assert_eq!(stored.len(), contract.len());
    assert_ne!(stored, contract, "the media repository holds no plaintext");
    assert!(stored.windows(64).all(|w| !contract.windows(64).any(|c| c == w)), "not even a piece of it");
    assert_eq!(dm3_bridge_matrix::media_cipher::open(&file, stored).unwrap(), contract);
    // An encrypting client (matrix-sdk, its own attachment code) opens it.
    let password = bridge.synapse.register_account("carol").await.unwrap();
    let credentials =
        Credentials { homeserver: bridge.synapse.url().to_owned(), user: "carol".into(), password };
    let carol = credentials.login("carol-phone").await.unwrap();
    assert_eq!(carol.open_sealed_file(&serde_json::to_value(&file).unwrap()).await.unwrap(), contract);

    // Matrix → DM3: a file sealed by matrix-sdk, its `file` object sent in bob's message.
    let notes = bytes(4_000);
    let file = carol.upload_sealed_file(&notes).await.unwrap();
    assert_ne!(
        bob.download(file["url"].as_str().unwrap()).await.unwrap(),
        notes,
        "ciphertext on the homeserver"
    );
    let event = bobs_event(
        &bridge,
        &bob,
        &room,
        "sealed-1",
        json!({"msgtype": "m.file", "body": "notes.txt", "file": file, "info": {"mimetype": "text/plain", "size": 4000}}),
    )
    .await;
    let EventKind::Message(Message { content: Content::Attachment { attachment, .. }, .. }) = event.kind
    else {
        panic!("not an attachment: {:?}", event.kind)
    };
    assert_eq!((attachment.name(), attachment.mime().as_str()), ("notes.txt", "text/plain"));
    let AttachmentSource::Url(url) = attachment.source() else { panic!("not by URL") };
    let media = connector.media().unwrap();
    assert_eq!(media.download(url, connector.max_media_bytes()).await.unwrap(), notes, "opened on download");

    // A file swapped on the way does not open, and the error does not show the key.
    let other = bob.upload(bytes(4_000), "application/octet-stream", "file").await.unwrap();
    let mut swapped = url.clone();
    swapped.set_path(url::Url::parse(&other).unwrap().path());
    let error = media.download(&swapped, connector.max_media_bytes()).await.unwrap_err();
    let ConnectorError::Permanent(message) = &error else { panic!("{error:?}") };
    assert!(message.contains("do not match its hash"), "{message}");
    assert!(!message.contains(url.fragment().unwrap()), "the key stays out of errors: {message}");
}
