//! TCP mode: pick a server, connect with retries, relay bytes both ways with
//! half-close, close on inactivity.

mod log;
mod proxy_header;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::backend::BackendRuntime;
use crate::balance::SelectKey;
use crate::frontend::FrontendRuntime;

const BUFFER: usize = 16 * 1024;

/// Serves one client connection of a tcp-mode frontend (plain TCP, or the
/// decrypted stream of a TLS-terminating frontend).
pub async fn serve<C>(frontend: Arc<FrontendRuntime>, client: C, peer: SocketAddr)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Some(backend) = frontend.default_backend.clone() else {
        tracing::debug!(frontend = %frontend.spec.name, %peer, "no default backend; closing");
        return;
    };
    serve_to(&frontend, backend, client, peer, &[]).await;
}

/// Connects to a server of `backend`, sends the PROXY v2 header when the
/// backend asks for it (the client's address, and the frontend's bind
/// address as the destination), then `first` (bytes already read from the
/// client), then relays.
pub async fn serve_to<C>(
    frontend: &FrontendRuntime,
    backend: Arc<BackendRuntime>,
    client: C,
    peer: SocketAddr,
    first: &[u8],
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = log::Session::start(frontend, peer);
    let key = SelectKey {
        client_ip: peer.ip(),
        path: None,
    };
    let b = &backend;
    let Some((server, guard)) = backend
        .try_servers(&key, |s| async move { b.connect_upstream(&s).await })
        .await
    else {
        tracing::warn!(frontend = %frontend.spec.name, backend = %backend.spec.name, %peer, "no server available");
        session.end(&backend, None, first.len() as u64, 0, b"SC");
        return;
    };
    session.connected();
    let mut server = server;
    if backend.spec.send_proxy_v2 {
        let header = proxy_header::header(peer, frontend.spec.bind);
        if server.write_all(&header).await.is_err() {
            return;
        }
    }
    if !first.is_empty() && server.write_all(first).await.is_err() {
        return;
    }
    let (up, down) = relay(
        client,
        server,
        frontend.spec.client_timeout(),
        backend.spec.server_timeout(),
    )
    .await;
    tracing::debug!(frontend = %frontend.spec.name, server = %guard.server().label(), %peer, up, down, "tcp session closed");
    let sent = up + first.len() as u64;
    session.end(&backend, Some(guard.server()), sent, down, b"--");
}

/// Relays until both directions have ended, or until nothing moved in either
/// direction for the timeout of the side being waited on. Returns the bytes
/// sent client→server and server→client.
pub async fn relay<C, S>(
    client: C,
    server: S,
    client_idle: Duration,
    server_idle: Duration,
) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let up = pipe(&mut cr, &mut sw, client_idle, start, &last);
    let down = pipe(&mut sr, &mut cw, server_idle, start, &last);
    tokio::pin!(up, down);
    // When one direction fails or times out, the whole session ends.
    let (mut up_n, mut down_n) = (None, None);
    while up_n.is_none() || down_n.is_none() {
        tokio::select! {
            r = &mut up, if up_n.is_none() => match r { Ok(n) => up_n = Some(n), Err(n) => return (n, down_n.unwrap_or(0)) },
            r = &mut down, if down_n.is_none() => match r { Ok(n) => down_n = Some(n), Err(n) => return (up_n.unwrap_or(0), n) },
        }
    }
    (up_n.unwrap_or(0), down_n.unwrap_or(0))
}

/// Copies until EOF (then half-closes the writer): Ok(bytes). On an error or
/// when idle too long: Err(bytes copied so far).
async fn pipe<R, W>(
    r: &mut R,
    w: &mut W,
    idle: Duration,
    start: Instant,
    last: &AtomicU64,
) -> Result<u64, u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let n = match tokio::time::timeout(idle, r.read(&mut buf)).await {
            Ok(Ok(0)) => {
                let _ = w.shutdown().await;
                return Ok(total);
            }
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return Err(total),
            Err(_) => {
                // Idle on this side; the session lives on while the other direction moves.
                let since = Duration::from_millis(last.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(since) >= idle {
                    return Err(total);
                }
                continue;
            }
        };
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        // A peer that stops reading holds the write; the same idle limit applies.
        match tokio::time::timeout(idle, w.write_all(&buf[..n])).await {
            Ok(Ok(())) => {}
            _ => return Err(total),
        }
        total += n as u64;
    }
}
