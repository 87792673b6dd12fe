//! The admin API: HTTPS (rustls) on hyper, through which the operator pushes
//! configs and reads status.
//!
//! - `PUT /v1/config`: apply a [`DataplaneConfig`] (200, 400, 409 stale, 422
//!   rejected, 413 over 16 MiB; the bounds are in [`crate::config::limits`]);
//! - `GET /v1/config`: the running config (404 before the first);
//! - `GET /v1/status`: the node name and the engine's status;
//! - `GET /healthz` (liveness) and `GET /readyz` (a config is running): no auth.
//!
//! Callers authenticate with a bearer token or a client certificate that
//! chains to the configured CA ([`Auth`]). [`Credentials`] can be replaced
//! while serving: new connections handshake with the new ones, and a client
//! certificate verified under the old ones no longer counts. The last config
//! applied is persisted in the state directory ([`StateDir`]) and restored
//! at start.
//!
//! Limits, so that nobody without credentials can lock the operator out: a
//! TLS handshake gets 5 s; a connection without credentials (no verified
//! client certificate, no authorized request yet) is closed 10 s after
//! accept, and such connections share 64 slots, 8 per source address, the
//! oldest of the address holding the most being closed to admit a newcomer
//! (`gate.rs`); an authenticated connection is closed after 30 s idle; 256
//! connections in all. Warnings a caller can trigger (refusals, failed
//! handshakes, accept errors) are logged at most once a second with a count
//! of those suppressed; after a failed accept the loop pauses 10 ms,
//! doubling to 500 ms while failures continue.

mod auth;
mod gate;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub use auth::{Auth, server_config};
pub use state::StateDir;

use crate::log_limit::LogLimit;
use crate::{DataplaneConfig, Engine};
use gate::{Admission, Evicted, Gate, MAX_CONNECTIONS, Ticket};

/// Longest a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may stay open, from accept, without showing
/// credentials (a kubelet probe takes milliseconds).
const UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an authenticated connection may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At stop, how long requests in flight may take to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// First pause of the accept loop after a failed accept (out of file
/// descriptors); it doubles on each failure in a row, up to the maximum.
const ACCEPT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_millis(500));

/// Warnings any caller can trigger, each at most once a second with a count.
static REFUSED: LogLimit = LogLimit::per_second(1);
static EVICTED: LogLimit = LogLimit::per_second(1);
static ACCEPT_FAILED: LogLimit = LogLimit::per_second(1);
static HANDSHAKE_FAILED: LogLimit = LogLimit::per_second(1);
pub(super) static UNAUTHORIZED: LogLimit = LogLimit::per_second(1);

/// The admin API's TLS config and who may call.
pub struct Credentials {
    pub tls: Arc<rustls::ServerConfig>,
    pub auth: Auth,
}

/// The state behind the admin API: the engine, who may call, and the running config.
pub struct Api {
    engine: Arc<Engine>,
    credentials: ArcSwap<Credentials>,
    state: StateDir,
    /// The config running now (the last applied successfully).
    running: ArcSwapOption<DataplaneConfig>,
    /// Serialises pushes: version check, apply and persist happen as one step.
    push: tokio::sync::Mutex<()>,
}

impl Api {
    /// An API over `engine`, persisting into `state`.
    pub fn new(engine: Arc<Engine>, credentials: Credentials, state: StateDir) -> Api {
        Api {
            engine,
            credentials: ArcSwap::from_pointee(credentials),
            state,
            running: ArcSwapOption::empty(),
            push: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces the credentials for the connections that come next.
    pub fn set_credentials(&self, credentials: Credentials) {
        self.credentials.store(Arc::new(credentials));
    }

    /// The engine the API drives.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Applies the persisted config, if there is one and it applies; a
    /// missing, corrupt or rejected file is logged and leaves no config running.
    pub async fn restore(&self) {
        let state = self.state.clone();
        let Ok(Some(config)) = tokio::task::spawn_blocking(move || state.load()).await else {
            return;
        };
        let _push = self.push.lock().await;
        let version = config.version;
        match self.engine.apply(config.clone()).await {
            Ok(()) => {
                tracing::info!(
                    version,
                    frontends = config.frontends.len(),
                    backends = config.backends.len(),
                    path = %self.state.config_path().display(),
                    "persisted config applied"
                );
                self.running.store(Some(Arc::new(config)));
            }
            Err(e) => tracing::error!(
                version,
                path = %self.state.config_path().display(),
                error = %e,
                "persisted config rejected; starting with no config"
            ),
        }
    }
}

/// The running admin server; [`AdminServer::stop`] ends it.
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (a few seconds at
    /// most), and returns once the listening socket is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves the admin API on `listener` until stopped.
pub fn serve(listener: TcpListener, api: Arc<Api>) -> std::io::Result<AdminServer> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, api, stopped));
    tracing::info!(%addr, "admin API listening");
    Ok(AdminServer { addr, stop, task })
}

async fn accept_loop(listener: TcpListener, api: Arc<Api>, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let gate = Arc::new(Mutex::new(Gate::default()));
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    let mut admission = lock(&gate);
                    let ticket = match admission.admit(peer.ip()) {
                        Admission::Admit { ticket, evicted } => {
                            if let Some(evicted) = evicted {
                                evict(evicted, admission.counts());
                            }
                            drop(admission);
                            ticket
                        }
                        Admission::Refuse => {
                            if let Some(suppressed) = REFUSED.check() {
                                tracing::warn!(%peer, suppressed, "admin API call refused: {MAX_CONNECTIONS} authenticated connections open");
                            }
                            continue;
                        }
                    };
                    let slot = Arc::new(Slot { gate: gate.clone(), ticket, authenticated: AtomicBool::new(false) });
                    let conn = connection(tcp, peer, api.clone(), stopped.clone(), slot);
                    let task = connections.spawn(conn);
                    lock(&gate).set_task(ticket, task);
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin, do not flood.
                    if let Some(suppressed) = ACCEPT_FAILED.check() {
                        tracing::warn!(error = %e, suppressed, "admin API accept failed; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let finish = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_GRACE, finish).await.is_err() {
        connections.abort_all();
    }
    tracing::info!("admin API stopped");
}

fn lock(gate: &Mutex<Gate>) -> std::sync::MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes a connection evicted to make room; `counts` are the connections
/// (unauthenticated, authenticated) open.
fn evict(evicted: Evicted, (unauthenticated, authenticated): (usize, usize)) {
    if let Some(task) = evicted.task {
        task.abort();
    }
    if let Some(suppressed) = EVICTED.check() {
        tracing::warn!(
            peer = %evicted.ip,
            connection = evicted.ticket,
            unauthenticated,
            authenticated,
            suppressed,
            "admin API: closed an unauthenticated connection to make room"
        );
    }
}

/// A connection's place in the [`Gate`]; it leaves the gate when dropped.
struct Slot {
    gate: Arc<Mutex<Gate>>,
    ticket: Ticket,
    authenticated: AtomicBool,
}

impl Slot {
    /// The caller showed credentials: move out of the unauthenticated budget.
    fn authenticate(&self) {
        if self.authenticated.load(Ordering::Relaxed) {
            return;
        }
        let mut gate = lock(&self.gate);
        if gate.authenticate(self.ticket) {
            self.authenticated.store(true, Ordering::Relaxed);
        }
    }

    fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.gate).close(self.ticket, self.is_authenticated());
    }
}

/// Requests in flight on a connection and when it was last busy.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Busy(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        (self.in_flight.load(Ordering::Relaxed) == 0).then_some(last)
    }
}

/// A request in flight; the connection is idle again when every one is dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Returns when the connection must close: `UNAUTHENTICATED_TIMEOUT` after
/// `accepted` while without credentials, else `IDLE_TIMEOUT` after its last
/// request finished.
async fn expiry(slot: &Slot, activity: &Activity, accepted: Instant) -> &'static str {
    loop {
        let now = Instant::now();
        let deadline = if !slot.is_authenticated() {
            accepted + UNAUTHENTICATED_TIMEOUT
        } else {
            match activity.idle_since() {
                Some(last) => last + IDLE_TIMEOUT,
                None => now + IDLE_TIMEOUT, // busy: look again later
            }
        };
        if deadline <= now {
            return if slot.is_authenticated() {
                "idle"
            } else {
                "no credentials in time"
            };
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Who is calling: the peer address and whether it presented a client
/// certificate (rustls has verified it against the client CA of
/// `credentials`, those of the handshake).
#[derive(Clone)]
struct Caller {
    peer: SocketAddr,
    client_cert: bool,
    credentials: Arc<Credentials>,
    slot: Arc<Slot>,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    mut stopped: watch::Receiver<bool>,
    slot: Arc<Slot>,
) {
    let accepted = Instant::now();
    let credentials = api.credentials.load_full();
    let acceptor = TlsAcceptor::from(credentials.tls.clone());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            if let Some(suppressed) = HANDSHAKE_FAILED.check() {
                tracing::warn!(%peer, reason = %e, suppressed, "admin API call refused: TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            if let Some(suppressed) = HANDSHAKE_FAILED.check() {
                tracing::warn!(%peer, suppressed, "admin API call refused: TLS handshake timed out");
            }
            return;
        }
    };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    if client_cert && credentials.auth.accepts_client_certificates() {
        slot.authenticate();
    }
    let caller = Caller {
        peer,
        client_cert,
        credentials,
        slot: slot.clone(),
    };
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: Mutex::new(accepted),
    });
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let (api, caller) = (api.clone(), caller.clone());
            let busy = activity.begin();
            async move {
                let reply = routes::handle(&api, req, caller).await;
                drop(busy);
                Ok::<_, std::convert::Infallible>(reply)
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        reason = expiry(&slot, &activity, accepted) => {
            tracing::debug!(%peer, reason, "admin API connection closed");
            return;
        }
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "admin API connection ended with an error");
    }
}
