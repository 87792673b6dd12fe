//! The engine runs one [`DataplaneConfig`] at a time and swaps in the next
//! atomically: see `LIFECYCLE.md` beside this file.

mod listener;
mod route;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

use crate::backend::BackendRuntime;
use crate::config::{self, DataplaneConfig};
use crate::health::{self, Checkers, status::EngineStatus};
use crate::vrrp::Vrrp;
use crate::{Error, Result};
pub(crate) use listener::stop_signal;
use listener::{Connections, Listener};
pub use route::RouteRuntime;

/// A frontend ready to serve: its spec with backends resolved.
#[derive(Debug)]
pub struct FrontendRuntime {
    pub spec: config::Frontend,
    pub default_backend: Option<Arc<BackendRuntime>>,
    pub routes: Vec<RouteRuntime>,
    /// Connection slots (maxconn); kept across applies while the limit is unchanged.
    pub slots: Arc<Semaphore>,
    /// TLS termination, when the frontend terminates TLS.
    pub tls: Option<crate::tls::Terminator>,
    /// HTTP request and response rules, compiled.
    pub rules: crate::http::rules::CompiledRules,
}

/// Runs listeners for the current config; `apply` replaces it.
pub struct Engine {
    /// This node's name: picks its priority in each virtual IP.
    node: String,
    /// Serialises applies; holds the running listeners and backends.
    running: Mutex<Running>,
    version: AtomicU64,
    connections: Arc<Connections>,
}

#[derive(Default)]
struct Running {
    listeners: HashMap<SocketAddr, Listener>,
    backends: HashMap<String, Arc<BackendRuntime>>,
    /// Health checkers of the running backends' servers.
    checkers: Checkers,
    /// VRRP speakers of the running virtual IPs.
    vrrp: Vrrp,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine with no listeners, on the node named by the host name; call
    /// from within a tokio runtime.
    pub fn new() -> Engine {
        Engine::with_node(host_name())
    }

    /// An engine with no listeners on node `node`.
    pub fn with_node(node: impl Into<String>) -> Engine {
        Engine {
            node: node.into(),
            running: Mutex::new(Running::default()),
            version: AtomicU64::new(0),
            connections: Arc::default(),
        }
    }

    /// Version of the running config (0 before the first apply).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Client connections being served now.
    pub fn active_connections(&self) -> usize {
        self.connections.count()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The running version, every server's health and every virtual IP's
    /// VRRP state (waits for an apply in progress).
    pub async fn status(&self) -> EngineStatus {
        let running = self.running.lock().await;
        let mut status = health::status::engine_status(self.version(), running.backends.values());
        status.virtual_ips = running.vrrp.status();
        status
    }

    /// Validates `config`, opens listeners it adds, then swaps it in: unchanged
    /// listeners keep their sockets, removed ones stop accepting, established
    /// connections finish. On any error nothing changes.
    pub async fn apply(&self, config: DataplaneConfig) -> Result<()> {
        let config = config.validate()?;
        let mut running = self.running.lock().await;

        let mut shared = HashMap::new();
        for b in running.backends.values() {
            // Pooled connections (and health) were made with the backend's TLS
            // settings: when those change, its servers start afresh.
            let next = config.backends.iter().find(|n| n.name == b.spec.name);
            if next.is_none_or(|n| n.tls == b.spec.tls) {
                b.shared_states(&mut shared);
            }
        }
        let backends: HashMap<String, Arc<BackendRuntime>> = config
            .backends
            .iter()
            .map(|b| {
                let mut backend = BackendRuntime::build(b.clone(), &shared);
                backend.tls = (b.tls.as_ref())
                    .map(|t| crate::tls::client::Connector::build(b, t))
                    .transpose()?;
                Ok((b.name.clone(), Arc::new(backend)))
            })
            .collect::<Result<_>>()?;

        // Resolve virtual IPs' interfaces, then build every frontend and open
        // new sockets, before touching anything running.
        let plan = running.vrrp.plan(&config, &self.node).await?;
        let mut frontends = Vec::with_capacity(config.frontends.len());
        let mut opened = HashMap::new();
        for spec in &config.frontends {
            let old = running.listeners.get(&spec.bind);
            let slots = match old.map(|l| l.current.load()) {
                Some(fe) if fe.spec.max_connections == spec.max_connections => fe.slots.clone(),
                _ => Arc::new(Semaphore::new(spec.max_connections as usize)),
            };
            frontends.push(Arc::new(FrontendRuntime::build(
                spec.clone(),
                &backends,
                slots,
            )?));
            if old.is_none() {
                let socket =
                    listener::bind(spec.bind, spec.virtual_ip.is_some()).map_err(|source| {
                        Error::Bind {
                            frontend: spec.name.clone(),
                            addr: spec.bind,
                            source,
                        }
                    })?;
                opened.insert(spec.bind, socket);
            }
        }

        // Commit: swap frontends into kept listeners, start new ones, stop the rest.
        let mut listeners = HashMap::with_capacity(frontends.len());
        for fe in frontends {
            let bind = fe.spec.bind;
            let l = match running.listeners.remove(&bind) {
                Some(l) => {
                    l.current.store(fe);
                    l
                }
                None => {
                    let socket = opened.remove(&bind).expect("opened above");
                    Listener::start(socket, fe, self.connections.clone())
                }
            };
            listeners.insert(bind, l);
        }
        for (addr, old) in running.listeners.drain() {
            tracing::info!(%addr, frontend = %old.current.load().spec.name, "listener closed");
            old.stop().await;
        }
        running.listeners = listeners;
        running.checkers.sync(backends.values());
        running.vrrp.commit(plan, &config, &backends).await;
        running.backends = backends;
        self.version.store(config.version, Ordering::Release);
        Ok(())
    }

    /// Hands over virtual IPs held here (priority-0 advertisements; the
    /// addresses are kept, and served, until a successor is heard), stops
    /// every listener (pending connections are reset from addresses still
    /// held), removes the addresses, asks open connections to finish, and
    /// waits for them up to `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let mut running = self.running.lock().await;
        running.vrrp.hand_over().await;
        for (_, l) in running.listeners.drain() {
            l.stop().await;
        }
        running.vrrp.shutdown().await;
        running.checkers.clear();
        running.backends.clear();
        self.connections.wait_idle(grace).await;
    }
}

/// The host name (the node name when none is given), or `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl FrontendRuntime {
    fn build(
        spec: config::Frontend,
        backends: &HashMap<String, Arc<BackendRuntime>>,
        slots: Arc<Semaphore>,
    ) -> Result<Self> {
        // validate() has checked that every referenced backend exists.
        let lookup = |name: &str| {
            backends.get(name).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "frontend {}: backend {name:?} does not exist",
                    spec.name
                ))
            })
        };
        let default_backend = spec.default_backend.as_deref().map(lookup).transpose()?;
        let routes = spec
            .routes
            .iter()
            .map(|r| Ok(RouteRuntime::new(r, lookup(&r.backend)?)))
            .collect::<Result<Vec<_>>>()?;
        let tls = spec
            .tls
            .as_ref()
            .filter(|t| t.mode == config::TlsMode::Terminate)
            .map(|t| crate::tls::Terminator::build(&spec, t))
            .transpose()?;
        let rules = crate::http::rules::CompiledRules::build(&spec, lookup)?;
        Ok(FrontendRuntime {
            spec,
            default_backend,
            routes,
            slots,
            tls,
            rules,
        })
    }
}
