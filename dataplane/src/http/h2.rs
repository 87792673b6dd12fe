//! HTTP/2 clients (ALPN h2), served by hyper; each request goes to a server
//! over HTTP/1.1 on the same pooled connections as [`super::h1`]. A
//! connection with no open stream for the keep-alive timeout is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;

use super::body::{ServerBody, StreamGuard};
use super::upstream::{self, HeadError};
use super::wire::{self, BodyState};
use super::{Client, Decision, ProxyBody, body, headers, log};
use crate::access_log::RequestLine;
use crate::backend::BackendRuntime;
use crate::balance::SelectKey;
use crate::drain::stop_signal;
use crate::frontend::FrontendRuntime;

/// Serves HTTP/2 on `stream` until the client closes, it idles out, or `stop`.
pub async fn serve<S>(
    current: Arc<ArcSwap<FrontendRuntime>>,
    stream: S,
    client: Client,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let counted = open.clone();
    let config = current.clone();
    let service = service_fn(move |req| {
        let frontend = current.load_full();
        let client = client.clone();
        let guard = StreamGuard::new(&counted);
        async move {
            let (resp, request) = proxy(&frontend, req, &client).await;
            let open = OpenStream::new(guard, request, frontend.spec.client_timeout());
            Ok::<_, std::convert::Infallible>(resp.map(|b| ProxyBody::Stream(Box::new((b, open)))))
        }
    });
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    let conn = h2.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut idle_since = Some(Instant::now());
    let tick = Duration::from_millis(250);
    let idle = loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop_signal(&mut stop) => break false,
            _ = tokio::time::sleep(tick) => {
                if open.load(Ordering::Relaxed) > 0 {
                    idle_since = None;
                    continue;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= config.load().spec.http_keep_alive_timeout() {
                    break true;
                }
            }
        }
    };
    // GOAWAY; an idle connection gets a moment for the client's PING
    // answer that ends it cleanly, then it is closed.
    conn.as_mut().graceful_shutdown();
    if idle {
        let _ = tokio::time::timeout(GOAWAY_GRACE, conn).await;
    } else {
        let _ = conn.await;
    }
}

/// How long an idle connection that was sent GOAWAY stays open.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Applies the rules and forwards (or answers) one request; hands back the
/// request body too, which may still be open.
async fn proxy(
    frontend: &FrontendRuntime,
    req: Request<Incoming>,
    client: &Client,
) -> (Response<ProxyBody>, Incoming) {
    let counters = &frontend.counters;
    counters
        .traffic
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    let (parts, mut body) = req.into_parts();
    let mut req = Request::from_parts(parts, ());
    let mut trace = log::Trace::new(frontend.log.is_some());
    let line = frontend.log.as_ref().map(|_| RequestLine::of(&req));
    let (mut resp, mask) = match super::decide(frontend, &mut req, client, &mut trace) {
        Decision::Local(resp, mask) => (resp, mask),
        Decision::Forward(backend, mask) => (
            forward(frontend, &backend, req, &mut body, client, &mut trace).await,
            mask,
        ),
    };
    frontend.rules.on_response(mask, &mut resp);
    counters.traffic.response(resp.status().as_u16());
    let resp = match &frontend.log {
        Some(l) => log::logged(resp, l, trace, line, client.peer, client.tls),
        None => resp,
    };
    (resp, body)
}

/// Sends one request to a server over HTTP/1.1; the response body streams
/// from the server connection, which goes back to the pool when it ends.
async fn forward(
    frontend: &FrontendRuntime,
    backend: &Arc<BackendRuntime>,
    mut req: Request<()>,
    body: &mut Incoming,
    client: &Client,
    trace: &mut log::Trace,
) -> Response<ProxyBody> {
    headers::prepare_request(&mut req, frontend, &client.peer_header, client.peer, false);
    let chunked = !hyper::body::Body::is_end_stream(body)
        && !req.headers().contains_key(header::CONTENT_LENGTH);
    if chunked {
        (req.headers_mut()).insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let head_request = req.method() == http::Method::HEAD;
    let key = SelectKey {
        client_ip: client.peer.ip(),
        path: Some(req.uri().path()),
    };
    trace.backend(backend);
    let no_server = || {
        body::local(
            StatusCode::SERVICE_UNAVAILABLE,
            "No server is available to handle this request.",
        )
    };
    let Some((mut conn, mut guard)) = upstream::connect(backend, &key, true).await else {
        trace.ended(b"SC");
        return no_server();
    };
    trace.connected(guard.server());
    let mut head = Vec::with_capacity(512);
    wire::write_request(&mut head, &req);
    let server_timeout = backend.spec.server_timeout();
    let client_timeout = frontend.spec.client_timeout();
    let sent_at = Instant::now();
    let replayable = hyper::body::Body::is_end_stream(body);
    let mut buf = BytesMut::new();
    let (mut sent, mut chunked_ended) = (false, false);
    let (resp, _) = loop {
        let mut failed = false;
        if !sent {
            sent = true;
            failed = !matches!(
                timeout(server_timeout, conn.io.write_all(&head)).await,
                Ok(Ok(()))
            );
        }
        while !failed && !hyper::body::Body::is_end_stream(body) {
            let frame = match timeout(client_timeout, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    trace.ended(b"CD");
                    return body::refused(StatusCode::BAD_REQUEST);
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let mut out = Vec::with_capacity(data.len() + 16);
            if chunked {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            }
            out.extend_from_slice(&data);
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
            if !data.is_empty() {
                failed = !matches!(
                    timeout(server_timeout, conn.io.write_all(&out)).await,
                    Ok(Ok(()))
                );
            }
        }
        if !failed && chunked && !std::mem::replace(&mut chunked_ended, true) {
            failed = !matches!(
                timeout(server_timeout, conn.io.write_all(b"0\r\n\r\n")).await,
                Ok(Ok(()))
            );
        }
        let read = if failed {
            Err(HeadError::ClosedEarly)
        } else {
            upstream::read_head(&mut conn.io, &mut buf, server_timeout).await
        };
        match read {
            Ok((resp, _)) if resp.status().is_informational() => continue,
            Ok(ok) => break ok,
            Err(HeadError::ClosedEarly) if conn.pooled && replayable => {
                trace.retried();
                let Some((fresh, fresh_guard)) = upstream::connect(backend, &key, false).await
                else {
                    trace.ended(b"SC");
                    return no_server();
                };
                (conn, guard) = (fresh, fresh_guard);
                trace.connected(guard.server());
                (sent, chunked_ended) = (false, false);
                buf.clear();
            }
            Err(HeadError::Timeout) => {
                trace.ended(b"sH");
                return super::timeout_response(backend, guard.server());
            }
            Err(_) => {
                trace.ended(b"SH");
                return super::bad_gateway(backend, guard.server());
            }
        }
    };
    trace.responded();
    let (code, took) = (resp.status().as_u16(), sent_at.elapsed());
    guard.server().counters.both(|c| {
        c.traffic.http_requests.fetch_add(1, Ordering::Relaxed);
        c.traffic.response(code);
        c.response_time.add(took);
    });
    let Some(framing) = wire::response_framing(head_request, resp.status(), resp.headers()) else {
        trace.ended(b"SH");
        return super::bad_gateway(backend, guard.server());
    };
    let keep = wire::keeps_alive(resp.version(), resp.headers());
    let mut resp = resp;
    headers::clean_response(&mut resp);
    let body = ServerBody::new(
        conn.io,
        buf,
        BodyState::new(framing),
        keep,
        guard,
        server_timeout,
    );
    resp.map(|()| ProxyBody::Upstream(Box::new(body)))
}

/// The most of a request body read and discarded after its response: 1 MiB,
/// each DATA frame's 9-byte header included (so empty frames count too).
const DRAIN_BYTES: u64 = 1 << 20;

/// A stream's place among its connection's open streams, and its request
/// body. When the response has been sent while the client still sends the
/// body, the rest is read and discarded (at most [`DRAIN_BYTES`], for at
/// most the frontend's client timeout), as HAProxy does, and only then
/// dropped, which makes h2 reset the stream (NO_ERROR, RFC 9113 §8.1):
/// until then the client's frames on the stream get the answers an open
/// stream gives (a flow-control or protocol error, not silence).
pub struct OpenStream(Option<(StreamGuard, Incoming, Duration)>);

impl OpenStream {
    fn new(guard: StreamGuard, request: Incoming, limit: Duration) -> Self {
        OpenStream(Some((guard, request, limit)))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let Some((guard, request, limit)) = self.0.take() else {
            return;
        };
        if hyper::body::Body::is_end_stream(&request) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = timeout(limit, drain(request)).await;
            drop(guard);
        });
    }
}

/// Reads and discards `body` until it ends, fails, or [`DRAIN_BYTES`] passed.
async fn drain(mut body: Incoming) {
    let mut left = DRAIN_BYTES;
    while left > 0
        && let Some(Ok(frame)) = body.frame().await
    {
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        left = left.saturating_sub(len + 9);
    }
}
