//! HTTP mode: HTTP/1.1 with keep-alive on both sides (our own codec,
//! [`h1`]), HTTP/2 to clients by ALPN (hyper), routing by host and path,
//! pooled server connections, streamed bodies, Upgrade/WebSocket.

mod body;
mod h1;
mod h2;
mod headers;
mod log;
pub mod rules;
mod upstream;
#[doc(hidden)]
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::backend::{BackendRuntime, ServerRuntime};
use crate::frontend::FrontendRuntime;
pub use body::ProxyBody;
pub(crate) use upstream::idle_and_open;

/// Serves one client connection of an http-mode frontend. Each request uses
/// the listener's current config; when `stop` fires, the connection finishes
/// its request in flight and closes. HTTP/1.x, or HTTP/2 alone when ALPN
/// chose `h2` (`h2_only`; without the preface the connection is closed).
pub async fn serve<S>(
    current: Arc<ArcSwap<FrontendRuntime>>,
    stream: S,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    tls: bool,
    h2_only: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Client {
        peer,
        peer_header: headers::ip_value(peer.ip()),
        tls,
    };
    if h2_only {
        // Boxed: hyper's HTTP/2 connection is large, and an idle HTTP/1
        // connection's task should not carry its size.
        Box::pin(h2::serve(current, stream, client, stop)).await
    } else {
        h1::serve(current, stream, client, stop).await
    }
}

/// What a request needs to know about its connection.
#[derive(Clone)]
struct Client {
    peer: SocketAddr,
    peer_header: HeaderValue,
    /// The connection is TLS, terminated here (`ssl_fc`).
    tls: bool,
}

/// Where a request goes, after the rules.
enum Decision {
    /// Answered here (redirect, deny, stats, no backend), with the response rules' mask.
    Local(Response<ProxyBody>, u128),
    /// Forwarded to this backend.
    Forward(Arc<BackendRuntime>, u128),
}

/// Runs the request rules and routing on `req`.
fn decide<B>(
    frontend: &FrontendRuntime,
    req: &mut Request<B>,
    client: &Client,
    trace: &mut log::Trace,
) -> Decision {
    let counters = &frontend.counters;
    let rules = &frontend.rules;
    let verdict = rules.on_request(req, client);
    let mask = rules.response_mask(req, client);
    match verdict {
        rules::Verdict::Answer(resp) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            trace.ended(b"LR");
            Decision::Local(resp, mask)
        }
        rules::Verdict::Deny(resp) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            counters.denied.fetch_add(1, Ordering::Relaxed);
            trace.ended(b"PR");
            Decision::Local(resp, mask)
        }
        rules::Verdict::Forward(_) if (frontend.stats.as_ref()).is_some_and(|s| s.serves(req)) => {
            counters.intercepted.fetch_add(1, Ordering::Relaxed);
            let stats = frontend.stats.as_ref().expect("checked above");
            trace.stats();
            let resp = stats.respond(req).map(|b| ProxyBody::Local(Some(b)));
            Decision::Local(resp, mask)
        }
        rules::Verdict::Forward(chosen) => match chosen.or_else(|| route(frontend, req)) {
            Some(backend) => Decision::Forward(backend.clone(), mask),
            None => {
                trace.ended(b"SC");
                let resp = body::local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "No backend serves this request.",
                );
                Decision::Local(resp, mask)
            }
        },
    }
}

fn timeout_response(backend: &BackendRuntime, server: &ServerRuntime) -> Response<ProxyBody> {
    (server.counters).both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
    tracing::warn!(backend = %backend.spec.name, server = %server.label(), "server timeout waiting for response");
    body::local(
        StatusCode::GATEWAY_TIMEOUT,
        "The server did not respond in time.",
    )
}

fn bad_gateway(backend: &BackendRuntime, server: &ServerRuntime) -> Response<ProxyBody> {
    (server.counters).both(|c| c.response_errors.fetch_add(1, Ordering::Relaxed));
    tracing::warn!(backend = %backend.spec.name, server = %server.label(), "bad response from server");
    body::local(
        StatusCode::BAD_GATEWAY,
        "The server returned an invalid or incomplete response.",
    )
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
