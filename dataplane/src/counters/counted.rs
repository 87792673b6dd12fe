//! A stream that counts the bytes it moves into counters resolved when it
//! was made: one relaxed atomic add per read or write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{FrontendCounters, ServerCounters};

/// Where a stream's bytes are counted.
pub trait ByteSink: Unpin {
    /// `n` bytes were read from the stream.
    fn read(&self, n: u64);
    /// `n` bytes were written to the stream.
    fn wrote(&self, n: u64);
}

/// A client connection: reads are request bytes (in), writes response bytes (out).
impl ByteSink for Arc<FrontendCounters> {
    fn read(&self, n: u64) {
        self.traffic.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    fn wrote(&self, n: u64) {
        self.traffic.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
}

/// A server connection: writes are request bytes (in), reads response bytes (out).
impl ByteSink for Arc<ServerCounters> {
    fn read(&self, n: u64) {
        self.both(|c| {
            c.traffic.bytes_out.fetch_add(n, Ordering::Relaxed);
        });
    }
    fn wrote(&self, n: u64) {
        self.both(|c| {
            c.traffic.bytes_in.fetch_add(n, Ordering::Relaxed);
        });
    }
}

/// `inner`, counting into `sink`.
pub struct Counted<S, C> {
    inner: S,
    sink: C,
}

impl<S, C> Counted<S, C> {
    pub fn new(inner: S, sink: C) -> Self {
        Counted { inner, sink }
    }
}

impl<S: AsyncRead + Unpin, C: ByteSink> AsyncRead for Counted<S, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.sink.read(n as u64);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin, C: ByteSink> AsyncWrite for Counted<S, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.sink.wrote(n as u64);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.sink.wrote(n as u64);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
