//! Server connections of the HTTP proxy path: taken from the server's pool
//! (checked alive) or opened, with the backend's retries and redispatch;
//! reading a response head with the server timeout.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::wire::{self, Parsed};
use crate::backend::{ActiveGuard, BackendRuntime};
use crate::balance::SelectKey;
use crate::tls::client::Upstream;

/// Bytes read at once from either side (bodies).
pub const READ_SIZE: usize = 16 * 1024;
/// Room for a response head beside a read's worth of body.
const HEAD_ROOM: usize = 4096;

/// Spare response buffers kept per thread.
const SPARES: usize = 64;

thread_local! {
    /// Response buffers of finished requests, reused on this thread: a fresh
    /// allocation per response costs page faults when glibc has returned the
    /// memory, and an idle connection holds none of them.
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer to read a response into: a spare one when this thread has one.
pub fn response_buf() -> BytesMut {
    SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE + HEAD_ROOM))
}

/// Keeps a response buffer for the next response once nothing else (head,
/// header values) shares its memory; else it is freed.
pub fn recycle(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() <= 4 * READ_SIZE && buf.try_reclaim(READ_SIZE + HEAD_ROOM) {
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < SPARES {
                spare.push(buf);
            }
        });
    }
}

/// A connection to a server, and whether it came from the pool.
pub struct ServerConn {
    pub io: Box<dyn Upstream>,
    pub pooled: bool,
}

/// A connection for one request: a pooled one when one is idle and alive
/// (`pooled`), else a new one, with the backend's retries and redispatch.
pub async fn connect(
    backend: &BackendRuntime,
    key: &SelectKey<'_>,
    pooled: bool,
) -> Option<(ServerConn, ActiveGuard)> {
    backend
        .try_servers(key, |server| async move {
            if pooled && let Some(io) = server.shared.pool.take() {
                (server.counters).both(|c| c.connection_reuses.fetch_add(1, Ordering::Relaxed));
                return Some(ServerConn { io, pooled: true });
            }
            let io = backend.connect_upstream(&server).await?;
            Some(ServerConn { io, pooled: false })
        })
        .await
}

/// True when an idle connection has nothing to read: not closed by the
/// server, no stray bytes. Never blocks.
pub fn idle_and_open(io: &mut Box<dyn Upstream>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut probe = ReadBuf::new(&mut byte);
    matches!(Pin::new(io).poll_read(&mut cx, &mut probe), Poll::Pending)
}

/// Why no response head came.
pub enum HeadError {
    /// Closed before a byte of it (a pooled connection may be retried).
    ClosedEarly,
    /// Closed or failed part way.
    Broken,
    /// Not a valid response.
    Invalid,
    /// The server timeout ran out.
    Timeout,
}

/// Reads a response head into `buf` (which may hold bytes already); the
/// head's bytes are split off, the body's first bytes stay in `buf`.
pub async fn read_head(
    io: &mut Box<dyn Upstream>,
    buf: &mut BytesMut,
    limit: Duration,
) -> Result<(Response<()>, Bytes), HeadError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(end) = head_end(buf) {
            let head = buf.split_to(end).freeze();
            return match wire::response(&head) {
                Parsed::Complete(resp, _) => Ok((resp, head)),
                _ => Err(HeadError::Invalid),
            };
        }
        if buf.len() >= 64 * 1024 {
            return Err(HeadError::Invalid);
        }
        // A head and a 16 KiB body come in one read.
        buf.reserve(READ_SIZE + HEAD_ROOM);
        let was_empty = buf.is_empty();
        match tokio::time::timeout_at(deadline, io.read_buf(buf)).await {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) if was_empty => return Err(HeadError::ClosedEarly),
            Ok(Ok(0)) => {
                return Err(HeadError::Broken);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) if was_empty => {
                tracing::debug!(error = %e, "server connection failed before a response");
                return Err(HeadError::ClosedEarly);
            }
            Ok(Err(_)) => return Err(HeadError::Broken),
        }
    }
}

/// The length of the head at the start of `buf` (through its blank line),
/// once it is all there. Leading empty lines belong to it.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let (mut seen_line, mut line_start) = (false, 0);
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                if seen_line {
                    return Some(i + 1);
                }
            } else {
                seen_line = true;
            }
            line_start = i + 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{HEAD_ROOM, READ_SIZE, head_end, recycle, response_buf};

    #[test]
    fn response_buffers_are_reused_once_unshared() {
        let mut buf = response_buf();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nbody");
        let start = buf.as_ptr();
        let head = buf.split_to(19).freeze();
        // The head still shares the memory: not kept.
        recycle(buf);
        assert_ne!(response_buf().as_ptr(), start);
        drop(head);
        let mut buf = response_buf();
        let start = buf.as_ptr();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nbody");
        drop(buf.split_to(19).freeze());
        recycle(buf);
        let again = response_buf();
        assert_eq!((again.as_ptr(), again.len()), (start, 0));
        assert!(again.capacity() >= READ_SIZE + HEAD_ROOM);
    }

    #[test]
    fn head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\n\r\n"), None);
        assert_eq!(head_end(b"\r\nGET / HTTP/1.1\r\n\r\n"), Some(20));
    }
}
