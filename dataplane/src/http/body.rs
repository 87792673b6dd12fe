//! The response body of HTTP/2 clients: streamed from a server connection
//! (returned to its pool once the body ended cleanly), or a short local
//! response; and the local responses of both HTTP versions.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use super::h2::OpenStream;
use super::upstream::READ_SIZE;
use super::wire::BodyState;
use crate::backend::ActiveGuard;
use crate::tls::client::Upstream;

/// A response body as an HTTP/2 client sees it.
pub enum ProxyBody {
    /// Streamed from a server.
    Upstream(Box<ServerBody>),
    /// Generated here (errors); `None` once sent.
    Local(Option<Bytes>),
    /// Another body whose request is logged when it ends (access logs).
    Logged(Box<super::log::Logged>),
    /// Another body, with its stream's count and request body (see [`OpenStream`]).
    Stream(Box<(ProxyBody, OpenStream)>),
}

/// Counts an open HTTP/2 stream while it lives.
pub struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    pub fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(open.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body read from a server connection, without its framing.
pub struct ServerBody {
    io: Option<Box<dyn Upstream>>,
    buf: BytesMut,
    state: BodyState,
    keep: bool,
    guard: ActiveGuard,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl ServerBody {
    /// The body after a response head; its first bytes are in `buf`. The
    /// connection goes back to the pool at the end when `keep`; each read
    /// waits at most `idle`.
    pub fn new(
        io: Box<dyn Upstream>,
        buf: BytesMut,
        state: BodyState,
        keep: bool,
        guard: ActiveGuard,
        idle: Duration,
    ) -> Self {
        let keep = keep && !matches!(state, BodyState::UntilClose);
        let mut this = ServerBody {
            io: Some(io),
            buf,
            state,
            keep,
            guard,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        };
        this.release_if_done();
        this
    }

    fn release_if_done(&mut self) {
        if self.state.done()
            && let Some(io) = self.io.take()
            && self.keep
            && self.buf.is_empty()
        {
            self.guard.server().shared.pool.put(io);
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if !self.buf.is_empty() {
                let mut data = BytesMut::new();
                let n = (self.state)
                    .feed(&self.buf, &mut |p| data.extend_from_slice(p))
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk from server")
                    })?;
                let _ = self.buf.split_to(n);
                self.release_if_done();
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(data.freeze())));
                }
            }
            if self.state.done() {
                self.release_if_done();
                return Poll::Ready(None);
            }
            let Some(io) = self.io.as_mut() else {
                return Poll::Ready(None);
            };
            let start = self.buf.len();
            self.buf.resize(start + READ_SIZE, 0);
            let mut rb = ReadBuf::new(&mut self.buf[start..]);
            match Pin::new(io).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    self.buf.truncate(start);
                    ready!(self.timer.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(io::ErrorKind::TimedOut.into())));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    self.buf.truncate(start + n);
                    let deadline = tokio::time::Instant::now() + self.idle;
                    self.timer.as_mut().reset(deadline);
                    if n == 0 {
                        if matches!(self.state, BodyState::UntilClose) {
                            self.state = BodyState::Done;
                            self.io = None;
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                    }
                }
            }
        }
    }
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> Self {
        ProxyBody::Local(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => body.poll_data(cx).map(|d| d.map(|r| r.map(Frame::data))),
            ProxyBody::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Logged(logged) => logged.poll_frame(cx),
            ProxyBody::Stream(inner) => Pin::new(&mut inner.0).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.state.done() && body.buf.is_empty(),
            ProxyBody::Local(bytes) => bytes.is_none(),
            ProxyBody::Logged(logged) => logged.is_end_stream(),
            ProxyBody::Stream(inner) => inner.0.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => match body.state {
                BodyState::Length(n) if body.buf.is_empty() => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            },
            ProxyBody::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Logged(logged) => logged.size_hint(),
            ProxyBody::Stream(inner) => inner.0.size_hint(),
        }
    }
}

/// A short plain-text response generated by the proxy.
pub fn local(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n{message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(ProxyBody::Local(Some(Bytes::from(text))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// 400 or 422 for a request the proxy refuses; the connection closes after it.
pub fn refused(status: StatusCode) -> Response<ProxyBody> {
    let message = match status {
        StatusCode::UNPROCESSABLE_ENTITY => {
            "The request uses a transfer coding that is not supported."
        }
        _ => "Your browser sent an invalid request.",
    };
    let mut resp = local(status, message);
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}
