//! Reading a request body with a hard size limit, before any parsing.
//!
//! The limit is checked twice: against `Content-Length` up front (a declared oversized body
//! is refused without reading a byte), and while streaming (a chunked or lying body is cut off
//! at the limit). Only a body that fits is handed to the JSON parser, so an oversized request
//! costs at most `limit` bytes of memory and no parsing (docs/design.md: check size before parsing).
//!
//! What a body costs while it is read is bounded by the server as well
//! (`crate::server::body_guard`): it must arrive in time, and its bytes come out of the
//! connection's and the node's body budgets, so that many bodies at once cannot exhaust memory
//! either. A body that fails there fails here as unreadable, and the server answers for it.
//!
//! The bytes go into one buffer as they arrive ([`BodyBuffer`]). A large one (a route that
//! takes [`MAPPED_FROM`] or more) is an anonymous memory mapping rather than a heap
//! allocation: unmapping gives its pages back to the OS the moment the request is done or
//! refused. The allocator would keep freed pages resident for a while (docs/relay.md,
//! "Memory"), and twenty refused 15 MB bodies in a row would then hold hundreds of megabytes
//! that no budget counts any more.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use memmap2::MmapMut;

use super::error::{ApiError, UNAVAILABLE};
use super::json::{MAX_VALUES, parse_value};

/// Reads at most `limit` bytes; more is a 413 [`ApiError::body_too_large`], which closes the
/// connection (the rest of the body is never read).
pub async fn read_limited(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large());
    }
    // At most `limit`, as just checked; a chunked body may take up to `limit`.
    let expected = declared.and_then(|len| usize::try_from(len).ok()).unwrap_or(limit);
    let mut buffer: Option<BodyBuffer> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::invalid_request(format!("the request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        let filled = buffer.as_ref().map_or(0, BodyBuffer::len);
        if filled.saturating_add(data.len()) > limit {
            return Err(ApiError::body_too_large());
        }
        // Made at the first byte, not before: a client that declares much and sends nothing
        // costs nothing.
        let buffer = match &mut buffer {
            Some(buffer) => buffer,
            None => buffer.insert(BodyBuffer::new(expected, declared.is_some()).ok_or_else(out_of_memory)?),
        };
        buffer.extend(&data).ok_or_else(out_of_memory)?;
    }
    match buffer {
        Some(buffer) => buffer.into_bytes().ok_or_else(out_of_memory),
        None => Ok(Bytes::new()),
    }
}

/// Bodies expected to be at least this large are read into a memory mapping.
pub const MAPPED_FROM: usize = 1024 * 1024;

/// The memory a body is read into. Allocation is fallible here, so that a node short of memory
/// refuses the request (503) rather than aborting.
enum BodyBuffer {
    Heap(Vec<u8>),
    /// Mapped at the expected size; untouched pages cost nothing.
    Mapped {
        map: MmapMut,
        len: usize,
    },
}

impl BodyBuffer {
    /// A buffer for a body of up to `expected` bytes (`exact` when it was declared).
    fn new(expected: usize, exact: bool) -> Option<Self> {
        if expected >= MAPPED_FROM {
            return MmapMut::map_anon(expected).ok().map(|map| Self::Mapped { map, len: 0 });
        }
        let mut heap = Vec::new();
        // Reserved once when the size is known; grown by doubling when it is not.
        if exact {
            heap.try_reserve_exact(expected).ok()?;
        }
        Some(Self::Heap(heap))
    }

    fn len(&self) -> usize {
        match self {
            Self::Heap(heap) => heap.len(),
            Self::Mapped { len, .. } => *len,
        }
    }

    /// Appends `data`; `None` if it does not fit (the caller checked the limit).
    fn extend(&mut self, data: &[u8]) -> Option<()> {
        match self {
            Self::Heap(heap) => {
                heap.try_reserve(data.len()).ok()?;
                heap.extend_from_slice(data);
            }
            Self::Mapped { map, len } => {
                let end = len.checked_add(data.len())?;
                map.get_mut(*len..end)?.copy_from_slice(data);
                *len = end;
            }
        }
        Some(())
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self {
            Self::Heap(heap) => Some(Bytes::from(heap)),
            Self::Mapped { map, len } => Some(Bytes::from_owner(map.make_read_only().ok()?).slice(..len)),
        }
    }
}

fn out_of_memory() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "out of memory; retry later")
}

/// Reads a JSON body of at most `limit` bytes and [`MAX_VALUES`] values.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<serde_json::Value, ApiError> {
    let bytes = read_limited(headers, body, limit).await?;
    parse_value(&bytes, MAX_VALUES).map_err(ApiError::from)
}
