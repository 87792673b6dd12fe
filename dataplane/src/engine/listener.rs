//! A listening socket and its accept loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
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

/// Opens a listening socket (SO_REUSEADDR; IPv6 sockets are v6-only).
/// `freebind` allows an address this node does not hold yet (a virtual IP),
/// like `net.ipv4.ip_nonlocal_bind=1` for this socket only.
pub fn bind(addr: SocketAddr, freebind: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(freebind)?;
    } else {
        socket.set_freebind_v4(freebind)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A running listener: the frontend it serves now, and its stop switch.
pub struct Listener {
    pub current: Arc<ArcSwap<FrontendRuntime>>,
    stop: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl Listener {
    /// Starts accepting on `socket` for `frontend`.
    pub fn start(
        socket: TcpListener,
        frontend: Arc<FrontendRuntime>,
        connections: Arc<Connections>,
    ) -> Listener {
        let current = Arc::new(ArcSwap::new(frontend));
        let (stop, stopped) = watch::channel(false);
        let accepting = tokio::spawn(accept_loop(socket, current.clone(), stopped, connections));
        Listener {
            current,
            stop,
            accepting,
        }
    }

    /// Closes the socket, returning once it is closed; HTTP connections
    /// finish their request and close, TCP sessions run to their end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.accepting.await;
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
        // Take a connection slot first: at maxconn, clients wait in the backlog.
        let slots = current.load().slots.clone();
        let permit = tokio::select! {
            p = slots.acquire_owned() => p.expect("semaphores are never closed"),
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
        let frontend = current.load_full();
        let guard = connections.open();
        let open = frontend.counters.open();
        let stop = stopped.clone();
        let current = current.clone();
        tokio::spawn(async move {
            serve(frontend, current, stream, peer, stop).await;
            drop(open);
            drop(permit);
            drop(guard);
        });
    }
}

async fn serve(
    frontend: Arc<FrontendRuntime>,
    current: Arc<ArcSwap<FrontendRuntime>>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Counted::new(stream, frontend.counters.clone());
    if (frontend.spec.tls.as_ref()).is_some_and(|t| t.mode == TlsMode::Passthrough) {
        return crate::tls::passthrough::serve(frontend, stream, peer).await;
    }
    let Some(tls) = frontend.tls.clone() else {
        return match frontend.spec.mode {
            Mode::Tcp => tcp::serve(frontend, stream, peer).await,
            Mode::Http => http::serve(current, stream, peer, stop, false, false).await,
        };
    };
    let Some(stream) = tls.accept(stream, frontend.spec.client_timeout()).await else {
        return;
    };
    match frontend.spec.mode {
        Mode::Tcp => tcp::serve(frontend, stream, peer).await,
        Mode::Http => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            http::serve(current, stream, peer, stop, true, h2).await
        }
    }
}
