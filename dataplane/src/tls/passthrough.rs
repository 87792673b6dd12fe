//! TLS passthrough: read the client's ClientHello without consuming it, route
//! on its SNI, and relay the whole TLS session to a server untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::sni::{self, Hello};
use crate::frontend::FrontendRuntime;
use crate::tcp;

/// Serves one client connection of a passthrough frontend: the first route
/// whose `sni` matches picks the backend, else the default backend (also for
/// a hello without SNI). A client that does not start with a ClientHello
/// within the client timeout is closed.
pub async fn serve<C>(frontend: Arc<FrontendRuntime>, mut client: C, peer: SocketAddr)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Some((hello, name)) = read_hello(&mut client, frontend.spec.client_timeout()).await else {
        tracing::debug!(frontend = %frontend.spec.name, %peer, "no TLS ClientHello; closing");
        return;
    };
    let Some(backend) = frontend.route_sni(name.as_deref()).cloned() else {
        tracing::debug!(frontend = %frontend.spec.name, %peer, sni = ?name, "no backend for this server name; closing");
        return;
    };
    tcp::serve_to(&frontend, backend, client, peer, &hello).await;
}

/// Reads until the bytes hold a whole ClientHello; returns them (to be sent
/// on first) and the server name.
async fn read_hello<C: AsyncRead + Unpin>(
    client: &mut C,
    limit: Duration,
) -> Option<(Vec<u8>, Option<String>)> {
    let read = async {
        let mut buf = Vec::with_capacity(2048);
        loop {
            match sni::parse(&buf) {
                Hello::Complete(name) => return Some((buf, name)),
                Hello::NotTls => return None,
                Hello::Incomplete => {}
            }
            // A valid prefix is never longer than this; stop a peer that says otherwise.
            if buf.len() > 2 * sni::MAX_HELLO {
                return None;
            }
            buf.reserve(2048);
            if client.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}
