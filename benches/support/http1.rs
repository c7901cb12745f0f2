//! A minimal HTTP/1.1 keep-alive client for the load generator.
//!
//! Why not reqwest: the load generator runs on the same two cores as the node, so every
//! microsecond it spends per request is taken from the node and shows up as lower node
//! throughput. This client writes a request that was serialized once, before the clock
//! started, in one `write_all`, and reads the answer with one small buffer: no header maps, no
//! body streams, no connection-pool bookkeeping.
//!
//! It stays honest: the status line is parsed and only `200` counts as accepted; the body is
//! read to its `Content-Length` so that the next request on the connection starts clean; any
//! answer it does not understand (no length, chunked, `Connection: close`, a broken
//! connection) is a failure of that request and the connection is dropped.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head we accept; the node's answers are a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

/// `POST path` with a JSON body, as the bytes that go on the wire.
pub fn post_request(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut request = Vec::with_capacity(head.len() + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(body);
    request
}

/// `GET path`, as the bytes that go on the wire.
#[allow(dead_code)] // relay_load only posts
pub fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n").into_bytes()
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// The answer to one request.
pub struct Answer {
    pub status: u16,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

impl Connection {
    pub async fn open(address: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buffer: Vec::with_capacity(1024) })
    }

    /// Sends a pre-serialized request and reads the whole answer.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let head_end = loop {
            if let Some(end) = find_head_end(&self.buffer) {
                break end;
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(invalid("response head too large"));
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).map_err(|_| invalid("head not UTF-8"))?;
        let (status, content_length, close) = parse_head(head)?;
        let body_end = head_end + content_length;
        while self.buffer.len() < body_end {
            self.read_more().await?;
        }
        // No pipelining: anything past this answer means the stream is out of step.
        let reusable = !close && self.buffer.len() == body_end;
        Ok(Answer { status, reusable })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let start = self.buffer.len();
        self.buffer.resize(start + 4096, 0);
        let read = self.stream.read(&mut self.buffer[start..]).await?;
        self.buffer.truncate(start + read);
        if read == 0 {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
        } else {
            Ok(())
        }
    }
}

/// The index just past `\r\n\r\n`, if the head is complete.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Status, `Content-Length` (required: the node always sends it) and `Connection: close`.
fn parse_head(head: &str) -> io::Result<(u16, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked answers are not expected from the node"));
        }
    }
    let content_length = content_length.ok_or_else(|| invalid("no content-length"))?;
    Ok((status, content_length, close))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
