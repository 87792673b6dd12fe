//! One HTTP/1 client connection, served in its own task: read a request
//! head, apply the rules, forward it on a pooled (or new) server connection
//! in this same task, relay the response, repeat. Bodies stream through a
//! bounded buffer with their framing checked; the read buffer exists only
//! while a message is being read. Every phase has a timeout: request head
//! (`http-request`), idle keep-alive (`http-keep-alive`), client body and
//! writes (`client`), server (`server`), tunnels (`tunnel`).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, ready};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::timeout;

use super::upstream::{self, HeadError, READ_SIZE, ServerConn};
use super::wire::{self, BodyState, Framing, Parsed};
use super::{Client, Decision, body, headers, log};
use crate::access_log::RequestLine;
use crate::backend::{ActiveGuard, BackendRuntime};
use crate::balance::SelectKey;
use crate::drain::stop_signal;
use crate::frontend::FrontendRuntime;
use crate::tls::client::Upstream;

thread_local! {
    /// Where an idle connection's first bytes land before it gets a buffer.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}

/// Serves HTTP/1 requests on `io` until either side closes, a timeout, or `stop`.
pub async fn serve<S>(
    current: Arc<ArcSwap<FrontendRuntime>>,
    mut io: S,
    client: Client,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::new();
    let mut first = true;
    let mut idle_since = Instant::now();
    loop {
        let frontend = current.load_full();
        let spec = &frontend.spec;
        if buf.is_empty() {
            // Idle: no buffer until bytes arrive.
            drop(std::mem::take(&mut buf));
            let limit = if first {
                spec.http_request_timeout()
            } else {
                spec.http_keep_alive_timeout()
            };
            let read = tokio::select! {
                r = timeout(limit, read_fresh(&mut io)) => r,
                _ = stop_signal(&mut stop) => return,
            };
            match read {
                Ok(Ok(Some(bytes))) => buf = bytes,
                _ => return,
            }
        }
        first = false;
        let started = Instant::now();
        let idle_ms = crate::access_log::ms(started - idle_since);
        let keep = Box::pin(request(
            &frontend, &mut io, &mut buf, &client, started, idle_ms,
        ))
        .await;
        idle_since = Instant::now();
        if !keep || *stop.borrow() {
            let _ = timeout(spec.client_timeout(), io.shutdown()).await;
            linger(&mut io).await;
            return;
        }
    }
}

/// Reads whatever arrives into a new buffer; `None` at end of stream.
async fn read_fresh<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Option<BytesMut>> {
    poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if got.is_empty() {
                return Poll::Ready(Ok(None));
            }
            let mut b = BytesMut::with_capacity(got.len().max(4096));
            b.extend_from_slice(got);
            Poll::Ready(Ok(Some(b)))
        })
    })
    .await
}

/// Reads and drops what the client still sends after the close, for a
/// moment, so that a response it has not read yet is not lost to a reset.
async fn linger<S: AsyncRead + Unpin>(io: &mut S) {
    let _ = timeout(LINGER.0, async {
        for _ in 0..LINGER.1 {
            if !matches!(discard(io).await, Ok(n) if n > 0) {
                return;
            }
        }
    })
    .await;
}

/// Reads whatever arrives and drops it; how many bytes.
async fn discard<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<usize> {
    poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            Poll::Ready(Ok(rb.filled().len()))
        })
    })
    .await
}

/// Lingering after a close: at most this long, and this many reads.
const LINGER: (Duration, usize) = (Duration::from_millis(500), 16);

/// Reads more into `buf`, growing it by a read's worth when full.
async fn read_more<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_SIZE);
    }
    io.read_buf(buf).await
}

/// Serves one request whose first bytes are in `buf`; true to keep the
/// connection for another.
async fn request<S>(
    frontend: &FrontendRuntime,
    io: &mut S,
    buf: &mut BytesMut,
    client: &Client,
    started: Instant,
    idle_ms: i64,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let spec = &frontend.spec;
    let counters = &frontend.counters;
    let mut end = Ending::new(frontend, client, started, idle_ms);
    // The head, within the http-request timeout from its first byte.
    let deadline = tokio::time::Instant::from_std(started) + spec.http_request_timeout();
    let max = spec.max_header_bytes as usize;
    let head_len = loop {
        if let Some(n) = upstream::head_end(buf) {
            break n;
        }
        if buf.len() > max {
            return end
                .refuse(io, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, b"PR")
                .await;
        }
        match tokio::time::timeout_at(deadline, read_more(io, buf)).await {
            Err(_) => return end.refuse(io, StatusCode::REQUEST_TIMEOUT, b"cR").await,
            Ok(Ok(0) | Err(_)) => return end.aborted(b"CR"),
            Ok(Ok(_)) => {}
        }
    };
    if head_len > max {
        return end
            .refuse(io, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, b"PR")
            .await;
    }
    let head = buf.split_to(head_len).freeze();
    let mut req = match wire::request(&head) {
        Parsed::Complete(req, _) => req,
        Parsed::Invalid(status) => return end.refuse(io, status, b"PR").await,
        Parsed::Partial => return end.refuse(io, StatusCode::BAD_REQUEST, b"PR").await,
    };
    end.received();
    counters
        .traffic
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    end.line = end.trace.on().then(|| RequestLine::of(&req));
    let framing = match wire::request_framing(req.headers()) {
        Ok(f) => f,
        Err(status) => return end.refuse(io, status, b"PR").await,
    };
    let keep = wire::keeps_alive(req.version(), req.headers());
    let continue_100 = req
        .headers_mut()
        .remove(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    end.head_request = req.method() == Method::HEAD;
    end.client_version = req.version();
    match super::decide(frontend, &mut req, client, &mut end.trace) {
        Decision::Local(resp, mask) => {
            let keep = keep && framing == Framing::Empty;
            end.local(io, resp, mask, keep).await
        }
        Decision::Forward(backend, mask) => {
            let ex = Exchange {
                frontend,
                backend: &backend,
                client,
                framing,
                continue_100,
                keep,
                mask,
            };
            ex.run(io, buf, req, &mut end).await
        }
    }
}

/// One request on its way to a server and back.
struct Exchange<'a> {
    frontend: &'a FrontendRuntime,
    backend: &'a Arc<BackendRuntime>,
    client: &'a Client,
    framing: Framing,
    continue_100: bool,
    keep: bool,
    mask: u128,
}

impl Exchange<'_> {
    async fn run<S>(
        self,
        io: &mut S,
        buf: &mut BytesMut,
        mut req: Request<()>,
        end: &mut Ending<'_>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (frontend, backend, client) = (self.frontend, self.backend, self.client);
        let upgrade = headers::is_upgrade(&req);
        headers::prepare_request(
            &mut req,
            frontend,
            &client.peer_header,
            client.peer,
            upgrade,
        );
        if self.framing == Framing::Chunked {
            let h = req.headers_mut();
            h.remove(header::CONTENT_LENGTH);
            h.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        let key = SelectKey {
            client_ip: client.peer.ip(),
            path: Some(req.uri().path()),
        };
        end.trace.backend(backend);
        let Some((mut conn, mut guard)) = upstream::connect(backend, &key, !upgrade).await else {
            return end.no_server(io, self.mask, self.framing).await;
        };
        end.trace.connected(guard.server());
        // The head and the body bytes already here go in one write.
        let mut out = Vec::with_capacity(512);
        wire::write_request(&mut out, &req);
        drop(req);
        let mut body = BodyState::new(self.framing);
        let mut bad_chunk = false;
        match body.feed(buf, &mut |_| {}) {
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                buf.advance(n);
            }
            Err(_) => bad_chunk = true,
        }
        let replayable = body.done() && !bad_chunk;
        let server_timeout = backend.spec.server_timeout();
        let client_timeout = frontend.spec.client_timeout();
        let sent_at = Instant::now();
        // A pooled connection may turn out closed by the server: when the
        // whole request is in `out`, send it again on a new connection.
        let mut server_buf = upstream::response_buf();
        let (resp, resp_head) = loop {
            let wrote = timeout(server_timeout, conn.io.write_all(&out)).await;
            let mut failed_early = !matches!(wrote, Ok(Ok(())));
            if !failed_early && !body.done() && !bad_chunk {
                if self.continue_100 && end.client_version == Version::HTTP_11 {
                    let _ = timeout(
                        client_timeout,
                        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
                    )
                    .await;
                }
                let mut sent = 0;
                let copied = copy_body(
                    io,
                    buf,
                    &mut *conn.io,
                    &mut body,
                    (client_timeout, server_timeout),
                    false,
                    &mut sent,
                );
                match copied.await {
                    Ok(()) => {}
                    Err(Broke::Chunk) => bad_chunk = true,
                    Err(Broke::Reader(timed_out)) => {
                        return end.client_gone(guard, if timed_out { b"cD" } else { b"CD" });
                    }
                    Err(Broke::Writer(_)) => failed_early = false,
                }
            }
            if bad_chunk {
                // The client's body broke: its fault, not the server's.
                frontend
                    .counters
                    .request_errors
                    .fetch_add(1, Ordering::Relaxed);
                end.trace.ended(b"CD");
                return end
                    .local(io, body::refused(StatusCode::BAD_REQUEST), self.mask, false)
                    .await;
            }
            let head = if failed_early {
                Err(HeadError::ClosedEarly)
            } else {
                upstream::read_head(&mut conn.io, &mut server_buf, server_timeout).await
            };
            match head {
                Ok((resp, head))
                    if resp.status().is_informational()
                        && resp.status() != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    // 100 Continue, 103 Early Hints: passed on to HTTP/1.1 clients.
                    if end.client_version == Version::HTTP_11
                        && timeout(client_timeout, io.write_all(&head)).await.is_err()
                    {
                        return end.client_gone(guard, b"cD");
                    }
                    // Nothing more goes to the server.
                    out.clear();
                    continue;
                }
                Ok(ok) => break ok,
                Err(HeadError::ClosedEarly) if conn.pooled && replayable && !out.is_empty() => {
                    end.trace.retried();
                    let key = SelectKey {
                        client_ip: client.peer.ip(),
                        path: None,
                    };
                    let Some((fresh, fresh_guard)) = upstream::connect(backend, &key, false).await
                    else {
                        return end.no_server(io, self.mask, Framing::Empty).await;
                    };
                    (conn, guard) = (fresh, fresh_guard);
                    end.trace.connected(guard.server());
                    server_buf.clear();
                }
                Err(HeadError::Timeout) => {
                    end.trace.ended(b"sH");
                    return end
                        .local(
                            io,
                            super::timeout_response(backend, guard.server()),
                            self.mask,
                            false,
                        )
                        .await;
                }
                Err(HeadError::ClosedEarly | HeadError::Broken | HeadError::Invalid) => {
                    end.trace.ended(b"SH");
                    return end
                        .local(
                            io,
                            super::bad_gateway(backend, guard.server()),
                            self.mask,
                            false,
                        )
                        .await;
                }
            }
        };
        drop(out);
        end.trace.responded();
        let code = resp.status().as_u16();
        let took = sent_at.elapsed();
        guard.server().counters.both(|c| {
            c.traffic.http_requests.fetch_add(1, Ordering::Relaxed);
            c.traffic.response(code);
            c.response_time.add(took);
        });
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if !upgrade {
                end.trace.ended(b"SH");
                return end
                    .local(
                        io,
                        super::bad_gateway(backend, guard.server()),
                        self.mask,
                        false,
                    )
                    .await;
            }
            let tunnel = frontend.spec.tunnel_timeout();
            return end
                .tunnel(
                    io,
                    buf,
                    conn.io,
                    &resp_head,
                    &server_buf,
                    guard,
                    resp.status(),
                    tunnel,
                )
                .await;
        }
        // Reused only when the whole request went out.
        let server_keeps =
            wire::keeps_alive(resp.version(), resp.headers()) && !upgrade && body.done();
        self.relay(
            io,
            resp,
            resp_head,
            conn,
            server_buf,
            server_keeps,
            guard,
            end,
        )
        .await
    }

    /// Sends the response head and streams its body to the client.
    #[allow(clippy::too_many_arguments)]
    async fn relay<S>(
        &self,
        io: &mut S,
        mut resp: Response<()>,
        resp_head: Bytes,
        mut conn: ServerConn,
        mut server_buf: BytesMut,
        server_keeps: bool,
        guard: ActiveGuard,
        end: &mut Ending<'_>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Some(framing) = wire::response_framing(end.head_request, resp.status(), resp.headers())
        else {
            end.trace.ended(b"SH");
            return end
                .local(
                    io,
                    super::bad_gateway(self.backend, guard.server()),
                    self.mask,
                    false,
                )
                .await;
        };
        headers::clean_response(&mut resp);
        drop(resp_head);
        // Chunked goes through as it is, except to HTTP/1.0 clients (which
        // get the data and a close); a body that ends with the close ends
        // the client's connection too.
        let strip = framing == Framing::Chunked && end.client_version == Version::HTTP_10;
        let mut keep = self.keep && framing != Framing::UntilClose && !strip;
        let hdrs = resp.headers_mut();
        if framing == Framing::Chunked && !strip {
            hdrs.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        if !keep {
            hdrs.insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else if end.client_version == Version::HTTP_10 {
            hdrs.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        self.frontend.rules.on_response(self.mask, &mut resp);
        self.frontend
            .counters
            .traffic
            .response(resp.status().as_u16());
        let mut out = Vec::with_capacity(256);
        wire::write_response(&mut out, resp.status(), resp.headers());
        end.status = resp.status().as_u16();
        let mut body = BodyState::new(framing);
        let fed = body.feed(&server_buf, &mut |p| {
            if strip {
                out.extend_from_slice(p)
            }
        });
        let client_timeout = self.frontend.spec.client_timeout();
        let server_timeout = self.backend.spec.server_timeout();
        // The head and the body bytes already read go in one vectored write.
        let first = match fed {
            Ok(n) if !strip => server_buf.split_to(n),
            Ok(n) => {
                server_buf.advance(n);
                BytesMut::new()
            }
            Err(_) => {
                // Head sent, body broken: nothing more to tell the client.
                keep = false;
                body = BodyState::Done;
                end.trace.ended(b"SD");
                BytesMut::new()
            }
        };
        if !matches!(
            timeout(client_timeout, write_both(io, &out, &first)).await,
            Ok(Ok(()))
        ) {
            return end.client_gone(guard, b"CD");
        }
        end.bytes = (out.len() + first.len()) as u64;
        drop((out, first));
        let mut server_done = body.done();
        if !body.done() {
            let copied = copy_body(
                &mut conn.io,
                &mut server_buf,
                io,
                &mut body,
                (server_timeout, client_timeout),
                strip,
                &mut end.bytes,
            );
            match copied.await {
                Ok(()) => server_done = true,
                Err(Broke::Reader(timed_out)) => {
                    (guard.server().counters)
                        .both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
                    end.trace.ended(if timed_out { b"sD" } else { b"SD" });
                    keep = false;
                }
                Err(Broke::Chunk) => {
                    (guard.server().counters)
                        .both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
                    end.trace.ended(b"SD");
                    keep = false;
                }
                Err(Broke::Writer(timed_out)) => {
                    return end.client_gone(guard, if timed_out { b"cD" } else { b"CD" });
                }
            }
        }
        if server_done && server_keeps && framing != Framing::UntilClose && server_buf.is_empty() {
            guard.server().shared.pool.put(conn.io);
        }
        drop(guard);
        drop(resp);
        upstream::recycle(server_buf);
        end.finish();
        keep
    }
}

/// Writes `a` then `b`, both in one call where `io` takes vectored writes.
async fn write_both<W>(io: &mut W, mut a: &[u8], mut b: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    // Each turn writes at least one byte or fails.
    while !a.is_empty() || !b.is_empty() {
        let n = if a.is_empty() {
            io.write(b).await?
        } else {
            io.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// How a body copy broke (`true`: a timeout).
enum Broke {
    Reader(bool),
    Writer(bool),
    Chunk,
}

/// Copies a body from `from` (its first bytes in `buf`) to `to` until its
/// framing says it ended; without chunk framing when `strip`.
async fn copy_body<R, W>(
    from: &mut R,
    buf: &mut BytesMut,
    to: &mut W,
    body: &mut BodyState,
    (read_limit, write_limit): (Duration, Duration),
    strip: bool,
    written: &mut u64,
) -> Result<(), Broke>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut payload = Vec::new();
    loop {
        if !buf.is_empty() {
            payload.clear();
            let n = body
                .feed(buf, &mut |p| {
                    if strip {
                        payload.extend_from_slice(p)
                    }
                })
                .map_err(|_| Broke::Chunk)?;
            let chunk = if strip { &payload[..] } else { &buf[..n] };
            match timeout(write_limit, to.write_all(chunk)).await {
                Err(_) => return Err(Broke::Writer(true)),
                Ok(Err(_)) => return Err(Broke::Writer(false)),
                Ok(Ok(())) => *written += chunk.len() as u64,
            }
            buf.advance(n);
        }
        if body.done() {
            return Ok(());
        }
        if buf.is_empty() {
            buf.clear();
        }
        match timeout(read_limit, read_more(from, buf)).await {
            Err(_) => return Err(Broke::Reader(true)),
            Ok(Err(_)) => return Err(Broke::Reader(false)),
            Ok(Ok(0)) if matches!(body, BodyState::UntilClose) => {
                *body = BodyState::Done;
                return Ok(());
            }
            Ok(Ok(0)) => return Err(Broke::Reader(false)),
            Ok(Ok(_)) => {}
        }
    }
}

/// How a request ends: the answer's status and size, its log line.
struct Ending<'a> {
    frontend: &'a FrontendRuntime,
    client: &'a Client,
    trace: log::Trace,
    line: Option<RequestLine>,
    started: Instant,
    received: Option<Instant>,
    idle_ms: i64,
    status: u16,
    bytes: u64,
    head_request: bool,
    client_version: Version,
    logged: bool,
}

impl<'a> Ending<'a> {
    fn new(
        frontend: &'a FrontendRuntime,
        client: &'a Client,
        started: Instant,
        idle_ms: i64,
    ) -> Self {
        Ending {
            frontend,
            client,
            trace: log::Trace::new(frontend.log.is_some()),
            line: None,
            started,
            received: None,
            idle_ms,
            status: 0,
            bytes: 0,
            head_request: false,
            client_version: Version::HTTP_11,
            logged: false,
        }
    }

    /// The head is all here.
    fn received(&mut self) {
        if self.trace.on() {
            self.received = Some(Instant::now());
            self.trace.restart();
        }
    }

    /// A request that cannot be served: counted, answered, closed.
    async fn refuse<S>(&mut self, io: &mut S, status: StatusCode, state: &[u8; 2]) -> bool
    where
        S: AsyncWrite + Unpin,
    {
        if status != StatusCode::REQUEST_TIMEOUT {
            (self.frontend.counters.request_errors).fetch_add(1, Ordering::Relaxed);
        }
        self.trace.ended(state);
        let resp = body::refused(status);
        self.local(io, resp, 0, false).await;
        false
    }

    /// The client went away before its request was whole.
    fn aborted(&mut self, state: &[u8; 2]) -> bool {
        self.trace.ended(state);
        self.status = 400;
        self.finish();
        false
    }

    async fn no_server<S>(&mut self, io: &mut S, mask: u128, framing: Framing) -> bool
    where
        S: AsyncWrite + Unpin,
    {
        self.trace.ended(b"SC");
        let resp = body::local(
            StatusCode::SERVICE_UNAVAILABLE,
            "No server is available to handle this request.",
        );
        self.local(io, resp, mask, framing == Framing::Empty).await
    }

    /// The client broke off while the server was serving it.
    fn client_gone(&mut self, guard: ActiveGuard, state: &[u8; 2]) -> bool {
        drop(guard);
        self.trace.ended(state);
        self.finish();
        false
    }

    /// Answers here: response rules, counters, the log.
    async fn local<S>(
        &mut self,
        io: &mut S,
        mut resp: Response<super::ProxyBody>,
        mask: u128,
        keep: bool,
    ) -> bool
    where
        S: AsyncWrite + Unpin,
    {
        let body = match resp.body_mut() {
            super::ProxyBody::Local(b) => b.take().unwrap_or_default(),
            _ => Bytes::new(),
        };
        let keep = keep && !resp.headers().contains_key(header::CONNECTION);
        self.frontend.rules.on_response(mask, &mut resp);
        self.frontend
            .counters
            .traffic
            .response(resp.status().as_u16());
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if !keep {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut out = Vec::with_capacity(256 + body.len());
        wire::write_response(&mut out, resp.status(), resp.headers());
        if !self.head_request {
            out.extend_from_slice(&body);
        }
        self.status = resp.status().as_u16();
        self.bytes = out.len() as u64;
        let sent = timeout(self.frontend.spec.client_timeout(), io.write_all(&out)).await;
        if !matches!(sent, Ok(Ok(()))) {
            self.trace.ended(b"CD");
            self.finish();
            return false;
        }
        self.finish();
        keep
    }

    /// Relays an upgraded connection both ways until both ends close or
    /// nothing moves for `idle`.
    #[allow(clippy::too_many_arguments)]
    async fn tunnel<S>(
        &mut self,
        io: &mut S,
        client_buf: &mut BytesMut,
        mut server: Box<dyn Upstream>,
        head: &Bytes,
        server_buf: &BytesMut,
        guard: ActiveGuard,
        status: StatusCode,
        idle: Duration,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.status = status.as_u16();
        self.frontend.counters.traffic.response(self.status);
        // The server's head goes as it came: the Upgrade pair is hop-by-hop
        // but belongs to this answer.
        let mut first = Vec::with_capacity(head.len() + server_buf.len());
        first.extend_from_slice(head);
        first.extend_from_slice(server_buf);
        self.bytes = head.len() as u64;
        if !matches!(timeout(idle, io.write_all(&first)).await, Ok(Ok(())))
            || !matches!(
                timeout(idle, server.write_all(client_buf)).await,
                Ok(Ok(()))
            )
        {
            return self.client_gone(guard, b"CD");
        }
        client_buf.clear();
        *client_buf = BytesMut::new();
        drop(first);
        let state = relay_both(io, &mut server, idle).await;
        drop(guard);
        self.trace.ended(state);
        self.finish();
        false
    }

    /// Logs the request (once), when the frontend logs.
    fn finish(&mut self) {
        if self.logged {
            return;
        }
        self.logged = true;
        if let Some(l) = &self.frontend.log {
            let trace = std::mem::replace(&mut self.trace, log::Trace::new(false));
            log::finished(
                l,
                trace,
                self.line.take(),
                self.client,
                log::Times {
                    idle_ms: self.idle_ms,
                    started: self.started,
                    received: self.received,
                },
                self.status,
                self.bytes,
            );
        }
    }
}

/// Copies both ways until both sides closed, or neither moved for `idle`;
/// the termination state for the log.
async fn relay_both<S>(
    client: &mut S,
    server: &mut Box<dyn Upstream>,
    idle: Duration,
) -> &'static [u8; 2]
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut up = vec![0u8; READ_SIZE];
    let mut down = vec![0u8; READ_SIZE];
    let (mut client_open, mut server_open) = (true, true);
    while client_open || server_open {
        tokio::select! {
            r = client.read(&mut up), if client_open => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let _ = timeout(idle, server.shutdown()).await;
                }
                Ok(n) => if !matches!(timeout(idle, server.write_all(&up[..n])).await, Ok(Ok(()))) {
                    return b"SD";
                },
            },
            r = server.read(&mut down), if server_open => match r {
                Ok(0) | Err(_) => {
                    server_open = false;
                    let _ = timeout(idle, client.shutdown()).await;
                }
                Ok(n) => if !matches!(timeout(idle, client.write_all(&down[..n])).await, Ok(Ok(()))) {
                    return b"CD";
                },
            },
            _ = tokio::time::sleep(idle) => return b"cD",
        }
    }
    b"--"
}
