//! The engine runs one [`DataplaneConfig`] at a time and swaps in the next
//! atomically: see `LIFECYCLE.md` beside this file.

mod listener;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Mutex;

use bytes::Bytes;

use crate::access_log::AccessLog;
use crate::backend::{BackendRuntime, ServerShared, ServerStateKey};
use crate::config::DataplaneConfig;
use crate::counters::Registry;
use crate::drain::Connections;
use crate::frontend::{FrontendRuntime, Slots};
use crate::health::{self, Checkers, status::EngineStatus};
use crate::snapshot::{Observed, Snapshot, View};
use crate::stats::{StatsService, StatsSource};
use crate::vrrp::{self, Vrrp};
use crate::{Error, Result};
use listener::Listener;
pub use workers::Workers;

/// Runs listeners for the current config; `apply` replaces it.
pub struct Engine {
    /// This node's name: picks its priority in each virtual IP.
    node: String,
    /// Serialises applies; holds the running listeners and backends.
    running: Mutex<Running>,
    version: AtomicU64,
    connections: Arc<Connections>,
    /// What runs, for snapshots.
    observed: Arc<Observed>,
    /// What the metrics and stats pages read; frontends serving them hold a
    /// weak reference.
    stats: Arc<StatsSource>,
    /// Access logs and events to syslog.
    access_log: AccessLog,
    /// Runtimes that accept and serve connections, a socket per listener
    /// each; empty: the runtime `apply` runs on.
    workers: Vec<Handle>,
}

#[derive(Default)]
struct Running {
    /// Counters of the running frontends, backends and servers, by name.
    counters: Registry,
    listeners: HashMap<SocketAddr, Listener>,
    backends: HashMap<String, Arc<BackendRuntime>>,
    /// Health checkers of the running backends' servers.
    checkers: Checkers,
    /// VRRP speakers of the running virtual IPs.
    vrrp: Vrrp,
    /// Sends their transitions to syslog.
    vrrp_log: Option<tokio::task::JoinHandle<()>>,
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

    /// This engine, accepting and serving connections on `workers` (see
    /// [`Workers`]) instead of the runtime `apply` runs on.
    pub fn serving_on(self, workers: Vec<Handle>) -> Engine {
        Engine { workers, ..self }
    }

    /// An engine with no listeners on node `node`.
    pub fn with_node(node: impl Into<String>) -> Engine {
        let node = node.into();
        let connections = Arc::<Connections>::default();
        let access_log = AccessLog::new(&node);
        let observed = Arc::new(Observed::new(
            node.clone(),
            connections.clone(),
            access_log.dropped(),
        ));
        let source = observed.clone();
        let stats = Arc::new(StatsSource::new(move || source.snapshot()));
        Engine {
            node,
            running: Mutex::new(Running::default()),
            version: AtomicU64::new(0),
            connections,
            observed,
            stats,
            access_log,
            workers: Vec::new(),
        }
    }

    /// Frontends, backends, servers, virtual IPs, config and process now;
    /// never waits for an apply.
    pub fn snapshot(&self) -> Snapshot {
        self.observed.snapshot()
    }

    /// The Prometheus metrics now, in the text exposition format.
    pub fn metrics(&self) -> Bytes {
        Bytes::from(self.stats.metrics())
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
        let version = config.version;
        let mut running = self.running.lock().await;
        let planned = match config.validate() {
            Ok(config) => self.plan(&mut running, config).await,
            Err(e) => Err(e),
        };
        self.observed.applied(version, planned.is_ok());
        self.commit(&mut running, planned?).await;
        Ok(())
    }

    /// Builds everything `config` needs beside the running state: backends
    /// (servers keep their live state), virtual IPs' interfaces, frontends,
    /// and sockets for new bind addresses. Touches nothing running.
    async fn plan(&self, running: &mut Running, config: DataplaneConfig) -> Result<Plan> {
        let mut counters = Registry::default();
        let backends = build_backends(&config, running, &mut counters)?;
        let vrrp = running.vrrp.plan(&config, &self.node).await?;
        let mut frontends = Vec::with_capacity(config.frontends.len());
        let mut opened = HashMap::new();
        for spec in &config.frontends {
            let old = running.listeners.get(&spec.bind);
            // A kept listener keeps its slots; commit sets the new limit.
            let slots = match old {
                Some(l) => l.current.load().slots.clone(),
                None => Slots::new(spec.max_connections),
            };
            let stats = (spec.stats.as_ref()).map(|s| StatsService::new(s, &self.stats));
            let fe_counters = counters.frontend(&running.counters, &spec.name);
            let log = self.access_log.frontend(
                &spec.name,
                spec.mode,
                spec.logging.as_ref(),
                fe_counters.clone(),
                self.connections.clone(),
            );
            frontends.push(Arc::new(FrontendRuntime::build(
                spec.clone(),
                &backends,
                slots,
                fe_counters,
                stats,
                log,
            )?));
            if old.is_none() {
                let count = self.workers.len();
                let socket = listener::bind(spec.bind, spec.virtual_ip.is_some(), count).map_err(
                    |source| Error::Bind {
                        frontend: spec.name.clone(),
                        addr: spec.bind,
                        source,
                    },
                )?;
                opened.insert(spec.bind, socket);
            }
        }
        Ok(Plan {
            config,
            counters,
            backends,
            frontends,
            opened,
            vrrp,
        })
    }

    /// Swaps `plan` in: frontends into kept listeners, new listeners start,
    /// the rest stop; then health checkers, virtual IPs and the version.
    async fn commit(&self, running: &mut Running, mut plan: Plan) {
        let mut listeners = HashMap::with_capacity(plan.frontends.len());
        let workers = match self.workers.is_empty() {
            true => vec![Handle::current()],
            false => self.workers.clone(),
        };
        let mut view = View {
            frontends: plan.frontends.clone(),
            backends: (plan.config.backends.iter())
                .filter_map(|b| plan.backends.get(&b.name).cloned())
                .collect(),
            virtual_ips: Vec::new(),
        };
        for fe in plan.frontends {
            let bind = fe.spec.bind;
            let l = match running.listeners.remove(&bind) {
                Some(l) => {
                    let (slots, limit) = (fe.slots.clone(), fe.spec.max_connections);
                    l.current.store(fe);
                    slots.set_limit(limit);
                    l
                }
                None => {
                    let sockets = plan.opened.remove(&bind).expect("opened by plan");
                    Listener::start(sockets, &workers, fe, self.connections.clone())
                }
            };
            listeners.insert(bind, l);
        }
        for (addr, old) in running.listeners.drain() {
            tracing::info!(%addr, frontend = %old.current.load().spec.name, "listener closed");
            old.stop().await;
        }
        running.listeners = listeners;
        let syslogs = (plan.config.frontends.iter())
            .filter_map(|f| f.logging.as_ref()?.syslog.clone())
            .collect();
        self.access_log.set_event_targets(syslogs);
        running.checkers.set_events(self.access_log.events());
        running.checkers.sync(plan.backends.values());
        (running.vrrp)
            .commit(plan.vrrp, &plan.config, &plan.backends)
            .await;
        running.backends = plan.backends;
        running.counters = plan.counters;
        view.virtual_ips = running.vrrp.watches();
        if let Some(task) = running.vrrp_log.take() {
            task.abort();
        }
        let transitions =
            vrrp::transitions::report(view.virtual_ips.clone(), self.access_log.events());
        running.vrrp_log = Some(tokio::spawn(transitions));
        self.observed.set_view(view);
        self.version.store(plan.config.version, Ordering::Release);
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
        self.observed.set_view(View::default());
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

/// A config built and ready to swap in.
struct Plan {
    config: DataplaneConfig,
    /// Counters of its objects, kept from the running ones by name.
    counters: Registry,
    backends: HashMap<String, Arc<BackendRuntime>>,
    frontends: Vec<Arc<FrontendRuntime>>,
    /// Sockets of bind addresses the running config does not listen on.
    opened: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    vrrp: vrrp::Plan,
}

/// The backends of `config`; a server keeps the live state it has in
/// `running` unless its backend's TLS settings changed (pooled connections
/// were made with them).
fn build_backends(
    config: &DataplaneConfig,
    running: &Running,
    counters: &mut Registry,
) -> Result<HashMap<String, Arc<BackendRuntime>>> {
    let mut shared: HashMap<ServerStateKey, Arc<ServerShared>> = HashMap::new();
    for b in running.backends.values() {
        let next = config.backends.iter().find(|n| n.name == b.spec.name);
        if next.is_none_or(|n| n.tls == b.spec.tls) {
            b.shared_states(&mut shared);
        }
    }
    config
        .backends
        .iter()
        .map(|b| {
            let mut backend =
                BackendRuntime::build_counted(b.clone(), &shared, counters, &running.counters);
            backend.tls = (b.tls.as_ref())
                .map(|t| crate::tls::client::Connector::build(b, t))
                .transpose()?;
            Ok((b.name.clone(), Arc::new(backend)))
        })
        .collect()
}
