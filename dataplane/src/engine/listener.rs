//! A listening socket and its accept loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Mode, TlsMode};
use crate::counters::Counted;
use crate::drain::{Connections, stop_signal};
use crate::frontend::FrontendRuntime;
use crate::log_limit::LogLimit;
use crate::{http, tcp};

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// Pause of the accept loop after a failed accept (out of file descriptors):
/// the first, doubled after each failure up to the second, reset on success.
const ACCEPT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_millis(500));

/// Failed accepts of every proxy listener: a line a second, with a count.
static ACCEPT_FAILED: LogLimit = LogLimit::per_second(1);

/// Opens `count` listening sockets on `addr` (SO_REUSEADDR, and SO_REUSEPORT
/// when more than one; IPv6 sockets are v6-only). `freebind` allows an
/// address this node does not hold yet (a virtual IP), like
/// `net.ipv4.ip_nonlocal_bind=1` for these sockets only.
pub fn bind(
    addr: SocketAddr,
    freebind: bool,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            if count > 1 {
                socket.set_reuse_port(true)?;
            }
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
                socket.set_freebind_v6(freebind)?;
            } else {
                socket.set_freebind_v4(freebind)?;
            }
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(socket.into())
        })
        .collect()
}

/// A running listener: the frontend it serves now, and its stop switch.
pub struct Listener {
    pub current: Arc<ArcSwap<FrontendRuntime>>,
    stop: watch::Sender<bool>,
    accepting: Vec<JoinHandle<()>>,
}

impl Listener {
    /// Starts accepting for `frontend`: socket i on runtime `workers[i]`.
    pub fn start(
        sockets: Vec<std::net::TcpListener>,
        workers: &[Handle],
        frontend: Arc<FrontendRuntime>,
        connections: Arc<Connections>,
    ) -> Listener {
        let current = Arc::new(ArcSwap::new(frontend));
        let (stop, stopped) = watch::channel(false);
        let accepting = (sockets.into_iter().zip(workers.iter().cycle()))
            .map(|(socket, worker)| {
                let (current, stopped, connections) =
                    (current.clone(), stopped.clone(), connections.clone());
                worker.spawn(async move {
                    // Registered with this worker's reactor.
                    match TcpListener::from_std(socket) {
                        Ok(socket) => accept_loop(socket, current, stopped, connections).await,
                        Err(e) => tracing::error!(error = %e, "listener socket not usable"),
                    }
                })
            })
            .collect();
        Listener {
            current,
            stop,
            accepting,
        }
    }

    /// Closes the sockets, returning once they are closed; HTTP connections
    /// finish their request and close, TCP sessions run to their end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for accepting in self.accepting {
            let _ = accepting.await;
        }
    }
}

async fn accept_loop(
    socket: TcpListener,
    current: Arc<ArcSwap<FrontendRuntime>>,
    mut stopped: watch::Receiver<bool>,
    connections: Arc<Connections>,
) {
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        // At maxconn, clients wait in the backlog: accept only while a slot
        // is free, and take it after. Another worker's loop may take it
        // first; then this one connection waits, unserved, for the next.
        let slots = current.load().slots.clone();
        tokio::select! {
            () = slots.wait_free() => {}
            _ = stop_signal(&mut stopped) => return,
        };
        let (stream, peer) = tokio::select! {
            r = socket.accept() => match r {
                Ok(ok) => ok,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    if let Some(suppressed) = ACCEPT_FAILED.check() {
                        tracing::warn!(error = %e, suppressed, ?backoff, "accept failed; backing off");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop_signal(&mut stopped) => return,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            },
            _ = stop_signal(&mut stopped) => return,
        };
        backoff = ACCEPT_BACKOFF.0;
        let slot = tokio::select! {
            s = slots.take() => s,
            _ = stop_signal(&mut stopped) => return,
        };
        let frontend = current.load_full();
        let guard = connections.open();
        let open = frontend.counters.open();
        let stop = stopped.clone();
        let current = current.clone();
        tokio::spawn(async move {
            serve(frontend, current, stream, peer, stop).await;
            // The slot last: the connection counts stay within maxconn.
            drop((open, guard));
            drop(slot);
        });
    }
}

/// Each protocol's future is boxed: a connection's task holds the one it
/// runs, not the largest of them.
async fn serve(
    frontend: Arc<FrontendRuntime>,
    current: Arc<ArcSwap<FrontendRuntime>>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if (frontend.spec.tls.as_ref()).is_some_and(|t| t.mode == TlsMode::Passthrough) {
        return Box::pin(crate::tls::passthrough::serve(frontend, stream, peer)).await;
    }
    let Some(tls) = frontend.tls.clone() else {
        return match frontend.spec.mode {
            Mode::Tcp => {
                let client = tcp::Client::<TcpStream>::Plain(stream);
                Box::pin(tcp::serve(frontend, client, peer)).await
            }
            Mode::Http => {
                let stream = Counted::new(stream, frontend.counters.clone());
                Box::pin(http::serve(current, stream, peer, stop, false, false)).await
            }
        };
    };
    let stream = Counted::new(stream, frontend.counters.clone());
    let Some(stream) = tls.accept(stream, frontend.spec.client_timeout()).await else {
        return;
    };
    match frontend.spec.mode {
        Mode::Tcp => Box::pin(tcp::serve(frontend, tcp::Client::Stream(stream), peer)).await,
        Mode::Http => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Box::pin(http::serve(current, stream, peer, stop, true, h2)).await
        }
    }
}
