//! The hostile client, transport half (issue #15, findings 2 and 3): the real binary in its own
//! process, attacked over raw TCP on 127.0.0.1 with slow, idle, numerous and oversized
//! requests, HTTP/1.1 and HTTP/2. Each test fails on a node without `[limits]` and the bounded
//! body parsing; the limits are short here (set as `DM3_BRIDGE_LIMITS__…`, as an operator
//! would) so that each runs in seconds.
//!
//! Memory is the node's RSS from `/proc/<pid>/status`, against the budget of docs/relay.md
//! ("Memory"): a peak below [`PEAK_BUDGET_MIB`] under any of these attacks, and back within
//! [`RETURN_MARGIN_MIB`] of idle once it is over. Timing assertions leave seconds of margin:
//! the machine's two cores are shared.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/bridge_process.rs"]
mod bridge_process;
#[path = "support/hostile.rs"]
mod hostile;
#[macro_use]
mod support;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request};
use hostile::{HostileNode, USER, closed_within, full_ack_body, health, read_answer};
use support::TestDb;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// docs/relay.md, "Memory": the most the node may hold under these attacks, and how close to
/// idle it must come back.
const PEAK_BUDGET_MIB: f64 = 150.0;
const RETURN_MARGIN_MIB: f64 = 20.0;
/// How soon after an attack the RSS must be back (docs/relay.md: within 10 s; slack for the
/// loaded machine).
const RETURN_WITHIN: Duration = Duration::from_secs(15);
/// Slack on every timing assertion.
const MARGIN: Duration = Duration::from_secs(5);

/// The memory tests one at a time: each measures one process, but they share two cores.
static HEAVY: Mutex<()> = Mutex::const_new(());

on_both_backends!(
    full_acknowledgement_bodies_cost_a_small_multiple_of_their_size_and_are_given_back,
    unfinished_acknowledgement_bodies_on_twenty_connections_stay_within_the_body_budget,
);

/// The HTTP/2 connection preface and an empty SETTINGS frame: what a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_and_silent_connections_are_closed_within_the_header_timeout() {
    let node = HostileNode::start(None, &[("DM3_BRIDGE_LIMITS__HEADER_TIMEOUT_SECS", "1")]).await;
    let mut attackers = Vec::new();
    for i in 0..40 {
        // A head that never ends: one more header line every 250 ms.
        let (mut reader, mut writer) = node.connect().await.into_split();
        tokio::spawn(async move {
            let _ = writer.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n").await;
            while writer.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        attackers.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
            ("slow head", started.elapsed())
        }));
    }
    for _ in 0..10 {
        let mut silent = node.connect().await;
        attackers.push(tokio::spawn(async move {
            ("silent", closed_within(&mut silent, Duration::from_secs(60)).await.unwrap())
        }));
    }
    for _ in 0..5 {
        let mut h2 = node.connect().await;
        h2.write_all(H2_PREFACE).await.unwrap();
        attackers.push(tokio::spawn(async move {
            ("HTTP/2 without a stream", closed_within(&mut h2, Duration::from_secs(60)).await.unwrap())
        }));
    }
    for attacker in attackers {
        let (kind, open_for) = tokio::time::timeout(Duration::from_secs(1) + MARGIN, attacker)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "a connection was still open {:?} after a 1 s header timeout",
                    Duration::from_secs(1) + MARGIN
                )
            })
            .unwrap();
        assert!(open_for <= Duration::from_secs(1) + MARGIN, "{kind}: open for {open_for:?}");
    }
    let mut fresh = node.connect().await;
    assert_eq!(health(&mut fresh, MARGIN).await, Some(200), "the node still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_with_408() {
    let node = HostileNode::start(None, &[("DM3_BRIDGE_LIMITS__BODY_TIMEOUT_SECS", "1")]).await;
    // 100 kB declared at 64 KiB/s minimum: 1 s + 1 s allowed. Sent at 500 bytes/s.
    let declared = "POST /rpc HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    let chunked = "POST /rpc HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (head, frame) in
        [(declared, b"[".repeat(100)), (chunked, [b"64\r\n".as_slice(), &b"[".repeat(100), b"\r\n"].concat())]
    {
        let (mut reader, mut writer) = node.connect().await.into_split();
        writer.write_all(head.as_bytes()).await.unwrap();
        let trickle = tokio::spawn(async move {
            while writer.write_all(&frame).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let started = std::time::Instant::now();
        let status = read_answer(&mut reader, Duration::from_secs(2) + MARGIN).await;
        assert_eq!(status, Some(408), "{head:?}: no 408 within {:?}", started.elapsed());
        assert!(closed_within(&mut reader, MARGIN).await.is_some(), "the connection closes after the 408");
        trickle.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let node = HostileNode::start(
        None,
        &[("DM3_BRIDGE_LIMITS__HEADER_TIMEOUT_SECS", "60"), ("DM3_BRIDGE_LIMITS__IDLE_TIMEOUT_SECS", "2")],
    )
    .await;
    // HTTP/1.1 kept alive after one request.
    let mut http1 = node.connect().await;
    assert_eq!(health(&mut http1, MARGIN).await, Some(200));
    let open_for = closed_within(&mut http1, Duration::from_secs(2) + MARGIN).await;
    assert!(open_for.is_some(), "an idle HTTP/1.1 connection stayed open");

    // HTTP/2 after one request: GOAWAY, then the connection ends.
    let (mut client, connection) = h2::client::handshake(node.connect().await).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::builder().uri(node.process.url("/health")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(2) + MARGIN, connection).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_served_connections_keep_answering() {
    let node = HostileNode::start(
        None,
        &[
            ("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS", "8"),
            ("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS_PER_IP", "0"),
            ("DM3_BRIDGE_LIMITS__HEADER_TIMEOUT_SECS", "60"),
            ("DM3_BRIDGE_LIMITS__IDLE_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let mut served = Vec::new();
    for _ in 0..8 {
        let mut stream = node.connect().await;
        assert_eq!(health(&mut stream, MARGIN).await, Some(200));
        served.push(stream);
    }
    // The kernel completes the handshake, but the node does not take them.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let mut stream = node.connect().await;
        assert_eq!(
            health(&mut stream, Duration::from_millis(500)).await,
            None,
            "a connection past the cap was served"
        );
        waiting.push(stream);
    }
    for stream in served.iter_mut().take(2) {
        assert_eq!(health(stream, MARGIN).await, Some(200), "a served connection goes on being answered");
    }
    // Room again: the waiting ones are served, their requests answered.
    served.truncate(4);
    for stream in &mut waiting {
        assert_eq!(
            read_answer(stream, MARGIN).await,
            Some(200),
            "a waiting connection was not served once room was made"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let node = HostileNode::start(
        None,
        &[("DM3_BRIDGE_LIMITS__MAX_CONNECTIONS_PER_IP", "3"), ("DM3_BRIDGE_LIMITS__IDLE_TIMEOUT_SECS", "60")],
    )
    .await;
    // The node frees a slot when it sees a connection end, which on a busy machine comes a
    // little after the client closed it (the registration's, in `start`): a refused connect
    // is tried again until the deadline.
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(served(&node).await);
    }
    let mut fourth = node.connect().await;
    assert_eq!(health(&mut fourth, MARGIN).await, None, "a fourth connection from one address was served");
    let mut other = node.connect_from([127, 0, 0, 2]).await;
    assert_eq!(health(&mut other, MARGIN).await, Some(200), "another address is served");
    mine.pop();
    let _again = served(&node).await; // a closed connection's slot is given back
}

/// A new connection from 127.0.0.1 that the node serves, tried again while refused for up to
/// [`MARGIN`].
async fn served(node: &HostileNode) -> tokio::net::TcpStream {
    let deadline = tokio::time::Instant::now() + MARGIN;
    loop {
        let mut stream = node.connect().await;
        if health(&mut stream, MARGIN).await == Some(200) {
            return stream;
        }
        assert!(tokio::time::Instant::now() < deadline, "no connection from 127.0.0.1 was served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_is_held_to_its_stream_limit() {
    let node = HostileNode::start(None, &[("DM3_BRIDGE_LIMITS__HTTP2_MAX_STREAMS", "16")]).await;
    let idle = node.settled_rss_mib(Duration::from_secs(10)).await;
    node.reset_peak();
    // Two hundred unfinished submits on one connection, before any authentication (finding 2),
    // written frame by frame: a hostile client does not wait for the announced limit as a
    // client library would.
    let mut stream = node.connect().await;
    stream.write_all(H2_PREFACE).await.unwrap();
    let mut frames = h2_frames::Reader::default();
    let settings = frames.next_of_type(&mut stream, h2_frames::SETTINGS).await;
    assert_eq!(
        settings.setting(h2_frames::MAX_CONCURRENT_STREAMS),
        Some(16),
        "the node announces its stream limit"
    );
    stream.write_all(&h2_frames::settings_ack()).await.unwrap();
    let mut attack = Vec::new();
    for i in 0..200u32 {
        let id = 2 * i + 1;
        attack.extend(h2_frames::post_headers(id, "/rpc", 200_000));
        // 256 bytes each stay within the connection's initial window of 65535 bytes.
        attack.extend(h2_frames::data(id, &[b'['; 256]));
    }
    // Whatever the node makes of it, its answer says (a GOAWAY is reported below).
    let _ = stream.write_all(&attack).await;
    let mut refused = std::collections::HashSet::new();
    while refused.len() < 200 - 16 {
        let frame = tokio::time::timeout(MARGIN, frames.next(&mut stream)).await;
        let Ok(frame) = frame else { break };
        match frame.kind {
            h2_frames::RST_STREAM if frame.error_code() == Some(h2_frames::REFUSED_STREAM) => {
                refused.insert(frame.stream);
            }
            h2_frames::GOAWAY => panic!(
                "the node ended the connection: {:?} after {} refusals",
                frame.error_code(),
                refused.len()
            ),
            _ => {}
        }
    }
    assert_eq!(refused.len(), 200 - 16, "streams past the limit of 16 must be refused");
    let peak = node.peak_rss_mib();
    assert!(peak - idle < 20.0 && peak < PEAK_BUDGET_MIB, "idle {idle:.1} MiB, peak {peak:.1} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_large_body_on_one_http2_connection_is_refused() {
    // Two 15 MB acknowledgement bodies on one connection: the second does not fit the
    // connection's budget (16 MiB here) and is refused, whichever it is.
    let node = HostileNode::start(None, &[("DM3_BRIDGE_LIMITS__CONNECTION_BODY_BYTES", "16777216")]).await;
    let (client, connection) = h2::client::handshake(node.connect().await).await.unwrap();
    tokio::spawn(connection);
    let mut answers = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let mut client = client.clone().ready().await.unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri(node.process.url(&format!("/delivery/messages/{USER}/syncAcknowledgements")))
            .header("authorization", format!("Bearer {}", node.token))
            .header("content-length", "16000000")
            .body(())
            .unwrap();
        let (response, body) = client.send_request(request, false).unwrap();
        answers.push(response);
        bodies.push(body);
    }
    for _ in 0..(15_000_000 / 100_000) {
        for body in &mut bodies {
            let _ = body.send_data(Bytes::from(vec![b' '; 100_000]), false);
        }
    }
    let (first, second) = (answers.remove(0), answers.remove(0));
    let refused = tokio::select! {
        answer = first => answer,
        answer = second => answer,
        () = tokio::time::sleep(Duration::from_secs(20)) => panic!("neither body was refused"),
    }
    .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
}

async fn full_acknowledgement_bodies_cost_a_small_multiple_of_their_size_and_are_given_back(db: &TestDb) {
    let _heavy = HEAVY.lock().await;
    let node = HostileNode::start(Some(&db.url), &[]).await;
    let url = node.process.url(&format!("/delivery/messages/{USER}/syncAcknowledgements"));
    let client = reqwest::Client::new();
    let acknowledge = |body: Vec<u8>| {
        let request = client.post(&url).bearer_auth(&node.token).header("content-type", "application/json");
        async move { request.body(body).send().await.unwrap().status() }
    };
    // Idle: started, and every path of the route warmed up by a small acknowledgement.
    assert_eq!(
        acknowledge(br#"{"acknowledgements":[{"contactAddress":"a.eth","messageHash":"0x1"}]}"#.to_vec())
            .await,
        200
    );
    let idle = node.settled_rss_mib(Duration::from_secs(10)).await;
    let body = full_ack_body();
    let size_mib = body.len() as f64 / (1024.0 * 1024.0);

    // One (finding 3: 64 -> 608 MB, and kept).
    node.reset_peak();
    assert_eq!(acknowledge(body.clone()).await, 200);
    let peak = node.peak_rss_mib();
    assert!(
        peak - idle <= 3.0 * size_mib,
        "a {size_mib:.1} MiB body took the node from {idle:.1} to {peak:.1} MiB"
    );
    let after = node.rss_falls_to(idle + RETURN_MARGIN_MIB, RETURN_WITHIN).await;
    assert!(after - idle <= RETURN_MARGIN_MIB, "idle {idle:.1} MiB, {after:.1} MiB after one body");

    // Four at once (finding 3: 1.03 GB).
    node.reset_peak();
    let answers = futures_join_all((0..4).map(|_| acknowledge(body.clone()))).await;
    assert_eq!(answers, vec![200; 4]);
    let peak = node.peak_rss_mib();
    assert!(
        peak < PEAK_BUDGET_MIB,
        "four {size_mib:.1} MiB bodies took the node from {idle:.1} to {peak:.1} MiB"
    );
    let after = node.rss_falls_to(idle + RETURN_MARGIN_MIB, RETURN_WITHIN).await;
    assert!(after - idle <= RETURN_MARGIN_MIB, "idle {idle:.1} MiB, {after:.1} MiB after four bodies");
}

async fn unfinished_acknowledgement_bodies_on_twenty_connections_stay_within_the_body_budget(db: &TestDb) {
    let _heavy = HEAVY.lock().await;
    let node = HostileNode::start(Some(&db.url), &[]).await;
    let idle = node.settled_rss_mib(Duration::from_secs(10)).await;
    node.reset_peak();
    // Each declares 16 MB and sends 15 MB of it (finding 2: 65 -> 420 MB).
    let mut senders = Vec::new();
    for _ in 0..20 {
        let mut stream = node.connect().await;
        let head = node.ack_head(16_000_000);
        senders.push(tokio::spawn(async move {
            let mut sent = 0;
            if stream.write_all(head.as_bytes()).await.is_ok() {
                let chunk = vec![b' '; 64 * 1024];
                while sent < 15_000_000 && stream.write_all(&chunk).await.is_ok() {
                    sent += chunk.len();
                }
            }
            (stream, sent >= 15_000_000)
        }));
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for sender in senders {
        let (mut stream, all_sent) = sender.await.unwrap();
        match read_answer(&mut stream, Duration::from_millis(200)).await {
            Some(status) => {
                assert_eq!(status, 503, "an unfinished body was answered");
                refused += 1;
            }
            None if !all_sent => refused += 1,
            None => held.push(stream),
        }
    }
    let peak = node.peak_rss_mib();
    // The node-wide budget (64 MiB) holds four such bodies.
    assert!(held.len() <= 4 && refused >= 16, "{} held, {refused} refused", held.len());
    assert!(peak < PEAK_BUDGET_MIB, "twenty unfinished bodies took the node from {idle:.1} to {peak:.1} MiB");
    drop(held);
    let after = node.rss_falls_to(idle + RETURN_MARGIN_MIB, RETURN_WITHIN).await;
    assert!(after - idle <= RETURN_MARGIN_MIB, "idle {idle:.1} MiB, {after:.1} MiB after the attack");
}

/// Runs the futures at once and answers their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// Just enough HTTP/2 framing (RFC 9113) to open streams without a client library's manners.
mod h2_frames {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const REFUSED_STREAM: u32 = 0x7;

    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        pub fn error_code(&self) -> Option<u32> {
            let code = match self.kind {
                RST_STREAM => self.payload.get(0..4)?,
                GOAWAY => self.payload.get(4..8)?,
                _ => return None,
            };
            Some(u32::from_be_bytes(code.try_into().ok()?))
        }

        pub fn setting(&self, id: u16) -> Option<u32> {
            self.payload
                .chunks_exact(6)
                .find(|s| u16::from_be_bytes([s[0], s[1]]) == id)
                .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![length[1], length[2], length[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub fn settings_ack() -> Vec<u8> {
        frame(SETTINGS, 0x1, 0, &[])
    }

    /// `POST path` with a `content-length`, HPACK-coded from the static table without any
    /// dynamic state (RFC 7541 6.1, 6.2.2).
    pub fn post_headers(stream: u32, path: &str, content_length: usize) -> Vec<u8> {
        let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
        let mut literal = |name_index: &[u8], value: &str| {
            block.extend_from_slice(name_index);
            block.push(u8::try_from(value.len()).unwrap());
            block.extend_from_slice(value.as_bytes());
        };
        literal(&[0x04], path); // :path
        literal(&[0x01], "node"); // :authority
        literal(&[0x0f, 0x0d], &content_length.to_string()); // content-length (index 28)
        frame(HEADERS, 0x4, stream, &block) // END_HEADERS
    }

    pub fn data(stream: u32, bytes: &[u8]) -> Vec<u8> {
        frame(DATA, 0, stream, bytes)
    }

    /// Reads whole frames off a stream.
    #[derive(Default)]
    pub struct Reader {
        buffer: Vec<u8>,
    }

    impl Reader {
        pub async fn next(&mut self, stream: &mut TcpStream) -> Frame {
            loop {
                if self.buffer.len() >= 9 {
                    let length =
                        u32::from_be_bytes([0, self.buffer[0], self.buffer[1], self.buffer[2]]) as usize;
                    if self.buffer.len() >= 9 + length {
                        let head: Vec<u8> = self.buffer.drain(..9).collect();
                        let payload = self.buffer.drain(..length).collect();
                        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                        return Frame { kind: head[3], flags: head[4], stream, payload };
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the node closed the connection");
                self.buffer.extend_from_slice(&chunk[..n]);
            }
        }

        /// The next frame of `kind` that is not an acknowledgement.
        pub async fn next_of_type(&mut self, stream: &mut TcpStream, kind: u8) -> Frame {
            loop {
                let frame = self.next(stream).await;
                if frame.kind == kind && frame.flags & 0x1 == 0 {
                    return frame;
                }
            }
        }
    }
}
