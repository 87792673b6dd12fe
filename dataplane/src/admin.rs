//! The admin API: HTTPS (rustls) on hyper, through which the operator pushes
//! configs and reads status.
//!
//! - `PUT /v1/config`: apply a [`DataplaneConfig`] (200, 400, 409 stale, 422 rejected);
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

mod auth;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use auth::{Auth, server_config};
pub use state::StateDir;

use crate::{DataplaneConfig, Engine};

/// Longest a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed at accept (the API is for
/// one operator, not for crowds).
const MAX_CONNECTIONS: usize = 256;
/// At stop, how long requests in flight may take to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    push: Mutex<()>,
}

impl Api {
    /// An API over `engine`, persisting into `state`.
    pub fn new(engine: Arc<Engine>, credentials: Credentials, state: StateDir) -> Api {
        Api {
            engine,
            credentials: ArcSwap::from_pointee(credentials),
            state,
            running: ArcSwapOption::empty(),
            push: Mutex::new(()),
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
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((_, peer)) if connections.len() >= MAX_CONNECTIONS => {
                    tracing::warn!(%peer, "admin API call refused: {MAX_CONNECTIONS} connections open");
                }
                Ok((tcp, peer)) => {
                    let conn = connection(tcp, peer, api.clone(), stopped.clone());
                    connections.spawn(conn);
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "admin API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
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

/// Who is calling: the peer address and whether it presented a client
/// certificate (rustls has verified it against the client CA of
/// `credentials`, those of the handshake).
#[derive(Clone)]
struct Caller {
    peer: SocketAddr,
    client_cert: bool,
    credentials: Arc<Credentials>,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    mut stopped: watch::Receiver<bool>,
) {
    let credentials = api.credentials.load_full();
    let acceptor = TlsAcceptor::from(credentials.tls.clone());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!(%peer, reason = %e, "admin API call refused: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "admin API call refused: TLS handshake timed out");
            return;
        }
    };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    let caller = Caller {
        peer,
        client_cert,
        credentials,
    };
    let service = service_fn(move |req| {
        let (api, caller) = (api.clone(), caller.clone());
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&api, req, caller).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "admin API connection ended with an error");
    }
}
