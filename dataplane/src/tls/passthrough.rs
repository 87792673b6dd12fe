//! TLS passthrough: read the client's ClientHello without consuming it, route
//! on its SNI, and relay the whole TLS session to a server untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::sni::{self, Hello};
use crate::counters::ByteSink;
use crate::frontend::FrontendRuntime;
use crate::tcp::{self, Client, Session};

/// Why no ClientHello was read.
#[derive(Debug, PartialEq)]
enum NoHello {
    /// The client closed or reset first, or sent something else (`CR`).
    Aborted,
    /// Nothing whole within the client timeout (`cR`).
    TimedOut,
}

/// Serves one client connection of a passthrough frontend: the first route
/// whose `sni` matches picks the backend, else the default backend (also for
/// a hello without SNI). A client that does not send a whole ClientHello
/// within the client timeout is closed (logged `cR`).
pub async fn serve(frontend: Arc<FrontendRuntime>, mut client: TcpStream, peer: SocketAddr) {
    let session = Session::start(&frontend, peer);
    let (hello, name) = match read_hello(&mut client, frontend.spec.client_timeout()).await {
        Ok(hello) => hello,
        Err((no, read)) => {
            tracing::debug!(frontend = %frontend.spec.name, %peer, ?no, "no TLS ClientHello; closing");
            frontend.counters.read(read as u64);
            let code = match no {
                NoHello::Aborted => b"CR",
                NoHello::TimedOut => b"cR",
            };
            session.end(None, None, read as u64, 0, code);
            return;
        }
    };
    frontend.counters.read(hello.len() as u64);
    let Some(backend) = frontend.route_sni(name.as_deref()).cloned() else {
        tracing::debug!(frontend = %frontend.spec.name, %peer, sni = ?name, "no backend for this server name; closing");
        session.end(None, None, hello.len() as u64, 0, b"PR");
        return;
    };
    let client = Client::<TcpStream>::Plain(client);
    tcp::serve_to(&frontend, backend, client, session, &hello).await;
}

/// Reads until the bytes hold a whole ClientHello; returns them (to be sent
/// on first) and the server name, or why not and the bytes read.
async fn read_hello<C: AsyncRead + Unpin>(
    client: &mut C,
    limit: Duration,
) -> Result<(Vec<u8>, Option<String>), (NoHello, usize)> {
    let mut buf = Vec::new();
    let read = async {
        loop {
            match sni::parse(&buf) {
                Hello::Complete(name) => return Ok(name),
                Hello::NotTls => return Err(NoHello::Aborted),
                Hello::Incomplete => {}
            }
            // A valid prefix is never longer than this; stop a peer that says otherwise.
            if buf.len() > 2 * sni::MAX_HELLO {
                return Err(NoHello::Aborted);
            }
            buf.reserve(2048);
            match client.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(NoHello::Aborted),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(name)) => Ok((buf, name)),
        Ok(Err(no)) => Err((no, buf.len())),
        Err(_) => Err((NoHello::TimedOut, buf.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn silence_times_out_and_garbage_aborts() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let silent = read_hello(&mut a, Duration::from_millis(50)).await;
        assert_eq!(silent.unwrap_err(), (NoHello::TimedOut, 0));
        tokio::io::AsyncWriteExt::write_all(&mut b, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let garbage = read_hello(&mut a, Duration::from_secs(5)).await;
        assert_eq!(garbage.unwrap_err().0, NoHello::Aborted);
        drop(b);
        let closed = read_hello(&mut a, Duration::from_secs(5)).await;
        assert_eq!(closed.unwrap_err(), (NoHello::Aborted, 0));
    }
}
