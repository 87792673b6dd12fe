//! HTTP mode: HTTP/1.1 with keep-alive on both sides, routing by host and
//! path, pooled server connections, streamed bodies, Upgrade/WebSocket.

mod body;
mod headers;
mod log;
pub mod rules;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::access_log::RequestLine;
use crate::backend::{ActiveGuard, BackendRuntime, ServerRuntime};
use crate::balance::SelectKey;
use crate::drain::stop_signal;
use crate::frontend::FrontendRuntime;
pub use body::ProxyBody;

/// Serves one client connection of an http-mode frontend. Each request uses
/// the listener's current config; when `stop` fires, the connection finishes
/// its request in flight and closes. A `tls` connection (already decrypted)
/// speaks HTTP/1.1 or HTTP/2, whichever the client starts with, but only
/// HTTP/2 when ALPN chose `h2` (`h2_only`): anything else is closed.
pub async fn serve<S>(
    current: Arc<ArcSwap<FrontendRuntime>>,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    tls: bool,
    h2_only: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counters = current.load().counters.clone();
    let spec = &current.load().spec;
    let (header_timeout, max_header) = (spec.client_timeout(), spec.max_header_bytes as usize);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(true)
        .header_read_timeout(spec.client_timeout())
        .max_header_size(spec.max_header_bytes as usize);
    let client = Client {
        peer,
        peer_header: headers::ip_value(peer.ip()),
        tls,
        log: current
            .load()
            .log
            .as_ref()
            .map(|_| log::ConnectionLog::new()),
    };
    let service = service_fn(move |req| {
        let frontend = current.load_full();
        let client = client.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy(&frontend, req, &client).await) }
    });
    if h2_only {
        // hyper-util's auto builder ignores http2_only with upgrades.
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        let conn = h2.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop_signal(&mut stop) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
        return;
    }
    if tls {
        let mut auto = AutoBuilder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .half_close(true)
            .header_read_timeout(header_timeout)
            .max_buf_size(max_header.max(8192));
        auto.http2().timer(TokioTimer::new());
        let conn = auto.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop_signal(&mut stop) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
        return;
    }
    let count = |result: Result<(), hyper::Error>| {
        if result.is_err_and(|e| e.is_parse() || e.is_parse_too_large()) {
            counters.request_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return count(result),
        _ = stop_signal(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    count(conn.await);
}

/// What a request needs to know about its connection.
#[derive(Clone)]
struct Client {
    peer: SocketAddr,
    peer_header: HeaderValue,
    /// The connection is TLS, terminated here (`ssl_fc`).
    tls: bool,
    /// Request timing for access logs, when the frontend logs.
    log: Option<log::ConnectionLog>,
}

/// Applies the frontend's request rules, forwards the request unless they
/// answer it, and applies the response rules to whatever the client gets.
async fn proxy(
    frontend: &FrontendRuntime,
    mut req: Request<Incoming>,
    client: &Client,
) -> Response<ProxyBody> {
    let counters = &frontend.counters;
    counters
        .traffic
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    if let Some(status) = headers::transfer_encoding_error(req.headers()) {
        counters.request_errors.fetch_add(1, Ordering::Relaxed);
        return body::refused(status);
    }
    let mut trace = log::Trace::new(frontend.log.is_some());
    let line = frontend.log.as_ref().map(|_| RequestLine::of(&req));
    let rules = &frontend.rules;
    let verdict = rules.on_request(&mut req, client);
    let mask = rules.response_mask(&req, client);
    let mut resp = match verdict {
        rules::Verdict::Answer(resp) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            trace.ended(b"LR");
            resp
        }
        rules::Verdict::Deny(resp) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            counters.denied.fetch_add(1, Ordering::Relaxed);
            trace.ended(b"PR");
            resp
        }
        rules::Verdict::Forward(_) if (frontend.stats.as_ref()).is_some_and(|s| s.serves(&req)) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            let stats = frontend.stats.as_ref().expect("checked above");
            trace.stats();
            stats.respond(&req).map(|b| ProxyBody::Local(Some(b)))
        }
        rules::Verdict::Forward(chosen) => forward(frontend, chosen, req, client, &mut trace).await,
    };
    rules.on_response(mask, &mut resp);
    counters.traffic.response(resp.status().as_u16());
    match &frontend.log {
        Some(l) => log::logged(
            resp,
            l,
            trace,
            line,
            client.peer,
            client.tls,
            client.log.as_ref(),
        ),
        None => resp,
    }
}

/// Proxies one request to `chosen` or the routed backend; every failure
/// becomes an HTTP error response.
async fn forward(
    frontend: &FrontendRuntime,
    chosen: Option<&Arc<BackendRuntime>>,
    mut req: Request<Incoming>,
    client: &Client,
    trace: &mut log::Trace,
) -> Response<ProxyBody> {
    let Some(backend) = chosen.or_else(|| route(frontend, &req)) else {
        trace.ended(b"SC");
        return body::local(
            StatusCode::SERVICE_UNAVAILABLE,
            "No backend serves this request.",
        );
    };
    let upgrade = headers::is_upgrade(&req);
    headers::prepare_request(
        &mut req,
        frontend,
        &client.peer_header,
        client.peer,
        upgrade,
    );
    let key = SelectKey {
        client_ip: client.peer.ip(),
        path: Some(req.uri().path()),
    };
    trace.backend(backend);
    let Some((mut sender, mut guard)) = connect(backend, &key, upgrade, true).await else {
        trace.ended(b"SC");
        return body::local(
            StatusCode::SERVICE_UNAVAILABLE,
            "No server is available to handle this request.",
        );
    };
    trace.connected(guard.server());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let timeout = backend.spec.server_timeout();
    let sent_at = tokio::time::Instant::now();
    let sent = tokio::time::timeout(timeout, sender.try_send_request(req)).await;
    let result = match sent {
        Err(_) => {
            trace.ended(b"sH");
            return timeout_response(backend, guard.server());
        }
        Ok(Ok(resp)) => Ok(resp),
        // A pooled connection the server closed (idle, or because it went
        // away): the request was not sent, so send it once more on a new
        // connection, with the backend's retries and redispatch.
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => {
                let key = SelectKey {
                    client_ip: client.peer.ip(),
                    path: Some(req.uri().path()),
                };
                trace.retried();
                let Some((mut fresh, fresh_guard)) = connect(backend, &key, upgrade, false).await
                else {
                    trace.ended(b"SC");
                    return body::local(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "No server is available to handle this request.",
                    );
                };
                guard = fresh_guard;
                trace.connected(guard.server());
                let sent = tokio::time::timeout(timeout, fresh.send_request(req)).await;
                sender = fresh;
                match sent {
                    Err(_) => {
                        trace.ended(b"sH");
                        return timeout_response(backend, guard.server());
                    }
                    Ok(r) => r,
                }
            }
            None => Err(e.into_error()),
        },
    };
    let counters = &guard.server().counters;
    let mut resp = match result {
        Ok(resp) => {
            trace.responded();
            let (took, code) = (sent_at.elapsed(), resp.status().as_u16());
            counters.both(|c| {
                c.traffic.http_requests.fetch_add(1, Ordering::Relaxed);
                c.traffic.response(code);
                c.response_time.add(took);
            });
            resp
        }
        // The client's request body broke (a bad chunk, or the client went
        // away): its fault, not the server's.
        Err(e) if e.is_user() => {
            trace.ended(b"CD");
            frontend
                .counters
                .request_errors
                .fetch_add(1, Ordering::Relaxed);
            return body::refused(StatusCode::BAD_REQUEST);
        }
        Err(e) => {
            trace.ended(b"SH");
            counters.both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
            tracing::warn!(backend = %backend.spec.name, server = %guard.server().label(), error = %e, "bad response from server");
            return body::local(
                StatusCode::BAD_GATEWAY,
                "The server returned an invalid or incomplete response.",
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            tunnel(client_upgrade, hyper::upgrade::on(&mut resp), guard);
        }
        return resp.map(|_| ProxyBody::empty());
    }
    headers::clean_response(&mut resp);
    let reuse = (!upgrade).then_some(sender);
    resp.map(|b| ProxyBody::upstream(b, reuse, guard))
}

fn timeout_response(backend: &BackendRuntime, server: &ServerRuntime) -> Response<ProxyBody> {
    (server.counters).both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
    tracing::warn!(backend = %backend.spec.name, server = %server.label(), "server timeout waiting for response");
    body::local(
        StatusCode::GATEWAY_TIMEOUT,
        "The server did not respond in time.",
    )
}

/// A sender for one request: a pooled connection when one is idle, else a new
/// one, with the backend's retries and redispatch.
/// `pooled: false` skips the pool (after a pooled connection turned out dead).
async fn connect(
    backend: &BackendRuntime,
    key: &SelectKey<'_>,
    upgrade: bool,
    pooled: bool,
) -> Option<(SendRequest<Incoming>, ActiveGuard)> {
    backend
        .try_servers(key, |server| async move {
            if pooled
                && !upgrade
                && let Some(sender) = server.shared.pool.take().await
            {
                (server.counters).both(|c| c.connection_reuses.fetch_add(1, Ordering::Relaxed));
                return Some(sender);
            }
            new_connection(&server, backend, upgrade).await
        })
        .await
}

/// Connects and handshakes; the connection's task lives as long as it is used.
async fn new_connection(
    server: &ServerRuntime,
    backend: &BackendRuntime,
    upgrade: bool,
) -> Option<SendRequest<Incoming>> {
    let stream = backend.connect_upstream(server).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .ok()?;
    if upgrade {
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    Some(sender)
}

/// Joins both upgraded halves and relays bytes until either side closes.
fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    server: hyper::upgrade::OnUpgrade,
    guard: ActiveGuard,
) {
    tokio::spawn(async move {
        let (Ok(c), Ok(s)) = tokio::join!(client, server) else {
            return;
        };
        let mut c = TokioIo::new(c);
        let mut s = TokioIo::new(s);
        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
        drop(guard);
    });
}

/// The backend for a request: the first matching route's, else the default.
fn route<'a, B>(
    frontend: &'a FrontendRuntime,
    req: &Request<B>,
) -> Option<&'a Arc<BackendRuntime>> {
    if frontend.routes.is_empty() {
        return frontend.default_backend.as_ref();
    }
    frontend.route(headers::request_host(req), req.uri().path())
}
