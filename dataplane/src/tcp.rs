//! TCP mode: pick a server, connect with retries, relay bytes both ways with
//! half-close (splice(2) between plain sockets), close on inactivity, log
//! the session with HAProxy's termination state.

mod log;
mod proxy_header;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{BackendRuntime, ServerRuntime};
use crate::balance::SelectKey;
use crate::counters::{ByteSink, Counted, FrontendCounters, ServerCounters};
use crate::frontend::FrontendRuntime;
use crate::tls::client::Upstream;
pub use log::Session;
use relay::{End, Timeouts, Traffic};

/// A client connection of a tcp-mode or passthrough frontend.
pub enum Client<S> {
    /// A plain socket, not counted yet: relayed with splice(2) when the
    /// server connection is plain too.
    Plain(TcpStream),
    /// Any other stream (the decrypted side of TLS), counted already.
    Stream(S),
}

/// Serves one client connection of a tcp-mode frontend.
pub async fn serve<S>(frontend: Arc<FrontendRuntime>, client: Client<S>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(backend) = frontend.default_backend.clone() else {
        tracing::debug!(frontend = %frontend.spec.name, %peer, "no default backend; closing");
        return;
    };
    let session = Session::start(&frontend, peer);
    serve_to(&frontend, backend, client, session, &[]).await;
}

/// A server connection: plain (splice-able) or through the backend's TLS.
enum Server {
    Plain(TcpStream),
    Stream(Box<dyn Upstream>),
}

/// Connects to a server of `backend`, sends the PROXY v2 header when the
/// backend asks for it (the client's address, and the frontend's bind
/// address as the destination), then `first` (bytes already read from the
/// client), then relays and logs the session.
pub async fn serve_to<S>(
    frontend: &FrontendRuntime,
    backend: Arc<BackendRuntime>,
    client: Client<S>,
    mut session: Session<'_>,
    first: &[u8],
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer();
    let key = SelectKey {
        client_ip: peer.ip(),
        path: None,
    };
    let b = &backend;
    let connected = backend
        .try_servers(&key, |s| async move {
            match b.tls {
                None => connect_plain(b, &s).await.map(Server::Plain),
                Some(_) => b.connect_upstream(&s).await.map(Server::Stream),
            }
        })
        .await;
    let Some((mut server, guard)) = connected else {
        tracing::warn!(frontend = %frontend.spec.name, backend = %backend.spec.name, %peer, "no server available");
        session.end(Some(&backend), None, first.len() as u64, 0, b"SC");
        return;
    };
    session.connected();
    let counters = &guard.server().counters;
    let mut header = Vec::new();
    if backend.spec.send_proxy_v2 {
        header = proxy_header::header(peer, frontend.spec.bind);
    }
    header.extend_from_slice(first);
    if !header.is_empty() && write_first(&mut server, &header, counters).await.is_err() {
        session.end(
            Some(&backend),
            Some(guard.server()),
            0,
            0,
            End::ServerAborted.code(),
        );
        return;
    }
    let timeouts = Timeouts {
        client: frontend.spec.client_timeout(),
        server: backend.spec.server_timeout(),
    };
    let traffic = relay(client, server, timeouts, &frontend.counters, counters).await;
    tracing::debug!(frontend = %frontend.spec.name, server = %guard.server().label(), %peer, up = traffic.up, down = traffic.down, end = ?traffic.end, "tcp session closed");
    let sent = traffic.up + first.len() as u64;
    session.end(
        Some(&backend),
        Some(guard.server()),
        sent,
        traffic.down,
        traffic.end.code(),
    );
}

/// Relays `client` ⇄ `server`, counting bytes into both sides' counters.
async fn relay<S>(
    client: Client<S>,
    server: Server,
    timeouts: Timeouts,
    frontend: &Arc<FrontendCounters>,
    server_counters: &Arc<ServerCounters>,
) -> Traffic
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server = match (client, server) {
        (Client::Plain(c), Server::Plain(s)) => {
            // A read from one side is a write to the other.
            let from_client = |n| {
                frontend.read(n);
                server_counters.wrote(n);
            };
            let from_server = |n| {
                server_counters.read(n);
                frontend.wrote(n);
            };
            return relay::splice_sockets(&c, &s, timeouts, from_client, from_server).await;
        }
        (client, Server::Plain(s)) => (client, counted_server(s, server_counters)),
        (client, Server::Stream(s)) => (client, s),
    };
    match server {
        (Client::Plain(c), s) => {
            let c = Counted::new(c, frontend.clone());
            relay::copy_streams(c, s, timeouts).await
        }
        (Client::Stream(c), s) => relay::copy_streams(c, s, timeouts).await,
    }
}

fn counted_server(stream: TcpStream, counters: &Arc<ServerCounters>) -> Box<dyn Upstream> {
    Box::new(Counted::new(stream, counters.clone()))
}

/// Writes the bytes that go before the relayed ones.
async fn write_first(
    server: &mut Server,
    bytes: &[u8],
    counters: &Arc<ServerCounters>,
) -> std::io::Result<()> {
    match server {
        Server::Plain(s) => {
            s.write_all(bytes).await?;
            counters.wrote(bytes.len() as u64);
            Ok(())
        }
        Server::Stream(s) => s.write_all(bytes).await,
    }
}

/// A plain connection to `server`, counted in its counters like
/// [`BackendRuntime::connect_upstream`] counts its own.
async fn connect_plain(backend: &BackendRuntime, server: &ServerRuntime) -> Option<TcpStream> {
    let counters = &server.counters;
    counters.both(|c| c.connection_attempts.fetch_add(1, Ordering::Relaxed));
    let started = Instant::now();
    let connected = backend.connect_to(server).await;
    match &connected {
        Some(_) => counters.both(|c| c.connect_time.add(started.elapsed())),
        None => counters.both(|c| c.connection_errors.fetch_add(1, Ordering::Relaxed)),
    }
    connected
}
