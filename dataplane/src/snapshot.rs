//! What the running dataplane looks like now, as plain values: every
//! frontend, backend and server with its counters, the virtual IPs, the
//! config and the process. The engine keeps an [`Observed`] up to date at
//! each apply; [`Observed::snapshot`] reads it without the apply lock, so a
//! renderer (Prometheus, a stats page) never waits for or slows the proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::backend::{BackendRuntime, ServerRuntime};
use crate::balance::Candidate;
use crate::counters::{CHECK_STATUSES, ProxyCounters, Timing, Traffic, unix_ms};
use crate::drain::Connections;
use crate::frontend::FrontendRuntime;
use crate::health::LastCheck;
use crate::health::status::ServerState;
use crate::vrrp::{VirtualIpStatus, VirtualIpWatch};

const R: Ordering = Ordering::Relaxed;

/// The dataplane at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// This node's name.
    pub node: String,
    pub process: ProcessSnapshot,
    pub config: ConfigSnapshot,
    /// Every frontend, in config order.
    pub frontends: Vec<FrontendSnapshot>,
    /// Every backend, in config order.
    pub backends: Vec<BackendSnapshot>,
    /// Every virtual IP this node takes part in, sorted by name.
    pub virtual_ips: Vec<VirtualIpStatus>,
}

/// The process.
#[derive(Clone, Debug)]
pub struct ProcessSnapshot {
    pub start_unix_ms: u64,
    pub uptime: Duration,
    /// Client connections open now, on every frontend.
    pub current_connections: u64,
    /// Client connections accepted since start.
    pub connections_total: u64,
    /// Worker threads of the proxy runtime.
    pub threads: usize,
    /// Access log lines dropped (queue full, syslog server refusing).
    pub dropped_logs: u64,
}

/// The config: which runs, and how applies went.
#[derive(Clone, Debug)]
pub struct ConfigSnapshot {
    /// Version of the running config (0 before the first apply).
    pub version: u64,
    /// Applies tried (accepted or rejected).
    pub applies: u64,
    /// Applies rejected.
    pub rejections: u64,
    /// Whether the last apply succeeded (true before any).
    pub last_apply_ok: bool,
    /// When the last apply finished, in ms since the Unix epoch (0: none yet).
    pub last_apply_unix_ms: u64,
}

/// Counters every proxy object has.
#[derive(Clone, Debug, Default)]
pub struct TrafficSnapshot {
    /// Sessions open now: connections (frontends), requests or connections
    /// being served (backends, servers).
    pub current: u64,
    pub max: u64,
    pub sessions: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub http_requests: u64,
    /// By class: 1xx, 2xx, 3xx, 4xx, 5xx, other ([`crate::counters::STATUS_CLASSES`]).
    pub http_responses: [u64; 6],
    /// When the last session started, in ms since the Unix epoch (0: never).
    pub last_session_unix_ms: u64,
}

/// A sliding average (about the last 1024 samples) and the maximum.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimingSnapshot {
    pub average_us: u64,
    pub max_us: u64,
}

/// A frontend.
#[derive(Clone, Debug)]
pub struct FrontendSnapshot {
    pub name: String,
    /// `http` or `tcp`.
    pub mode: &'static str,
    /// maxconn.
    pub limit: u64,
    pub traffic: TrafficSnapshot,
    pub connections: u64,
    pub denied: u64,
    pub request_errors: u64,
    pub intercepted: u64,
}

/// Counters of a backend or a server.
#[derive(Clone, Debug, Default)]
pub struct ProxySnapshot {
    pub traffic: TrafficSnapshot,
    pub connection_errors: u64,
    pub response_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
    pub connection_attempts: u64,
    pub connection_reuses: u64,
    pub connect_time: TimingSnapshot,
    pub response_time: TimingSnapshot,
    pub total_time: TimingSnapshot,
}

/// A backend and its servers.
#[derive(Clone, Debug)]
pub struct BackendSnapshot {
    pub name: String,
    pub mode: &'static str,
    /// Some server is up.
    pub up: bool,
    pub counters: ProxySnapshot,
    /// Sum of the weights of the active (non-backup) servers that are up.
    pub weight: u64,
    /// Active servers up.
    pub active_servers: u64,
    /// Backup servers up.
    pub backup_servers: u64,
    /// Whether its servers are health-checked.
    pub checked: bool,
    pub servers: Vec<ServerSnapshot>,
}

/// A server.
#[derive(Clone, Debug)]
pub struct ServerSnapshot {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub state: ServerState,
    pub weight: u64,
    pub backup: bool,
    /// maxconn; 0 when unlimited.
    pub limit: u64,
    pub counters: ProxySnapshot,
    /// Idle pooled connections.
    pub idle_connections: u64,
    /// Health checks; none when the backend has none.
    pub check: Option<CheckSnapshot>,
}

/// A server's health checks.
#[derive(Clone, Debug)]
pub struct CheckSnapshot {
    /// HAProxy's name for the last check's result (`L4OK`, `L4CON`, `L7STS`,
    /// ...); none before the first check.
    pub status: Option<&'static str>,
    /// The last HTTP check's status code (0: none).
    pub code: u64,
    pub duration: Duration,
    pub failures: u64,
    /// Transitions from up to down.
    pub up_down: u64,
    pub downtime: Duration,
    /// The last check, and when the state last changed (ms since the Unix epoch).
    pub last_check: Option<LastCheck>,
    pub last_change_unix_ms: Option<u64>,
}

/// The engine's view of what runs, for snapshots.
pub struct Observed {
    node: String,
    start_unix_ms: u64,
    started: std::time::Instant,
    connections: Arc<Connections>,
    dropped_logs: Arc<AtomicU64>,
    config: ConfigCounters,
    view: ArcSwap<View>,
}

#[derive(Default)]
struct ConfigCounters {
    version: AtomicU64,
    applies: AtomicU64,
    rejections: AtomicU64,
    last_failed: AtomicBool,
    last_apply_unix_ms: AtomicU64,
}

/// What runs: set at each commit.
#[derive(Default)]
pub struct View {
    pub frontends: Vec<Arc<FrontendRuntime>>,
    pub backends: Vec<Arc<BackendRuntime>>,
    pub virtual_ips: Vec<VirtualIpWatch>,
}

impl Observed {
    pub fn new(
        node: String,
        connections: Arc<Connections>,
        dropped_logs: Arc<AtomicU64>,
    ) -> Observed {
        Observed {
            node,
            start_unix_ms: unix_ms(),
            started: std::time::Instant::now(),
            connections,
            dropped_logs,
            config: ConfigCounters::default(),
            view: ArcSwap::default(),
        }
    }

    /// Records an apply of config `version`: its result, now.
    pub fn applied(&self, version: u64, ok: bool) {
        let c = &self.config;
        c.applies.fetch_add(1, R);
        if ok {
            c.version.store(version, R);
        } else {
            c.rejections.fetch_add(1, R);
        }
        c.last_failed.store(!ok, R);
        c.last_apply_unix_ms.store(unix_ms(), R);
    }

    /// Replaces what runs.
    pub fn set_view(&self, view: View) {
        self.view.store(Arc::new(view));
    }

    /// The dataplane now.
    pub fn snapshot(&self) -> Snapshot {
        let view = self.view.load_full();
        let c = &self.config;
        let threads =
            tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
        Snapshot {
            node: self.node.clone(),
            process: ProcessSnapshot {
                start_unix_ms: self.start_unix_ms,
                uptime: self.started.elapsed(),
                current_connections: self.connections.count() as u64,
                connections_total: self.connections.total(),
                threads,
                dropped_logs: self.dropped_logs.load(R),
            },
            config: ConfigSnapshot {
                version: c.version.load(R),
                applies: c.applies.load(R),
                rejections: c.rejections.load(R),
                last_apply_ok: !c.last_failed.load(R),
                last_apply_unix_ms: c.last_apply_unix_ms.load(R),
            },
            frontends: view.frontends.iter().map(|f| frontend(f)).collect(),
            backends: view.backends.iter().map(|b| backend(b)).collect(),
            virtual_ips: view
                .virtual_ips
                .iter()
                .map(VirtualIpWatch::status)
                .collect(),
        }
    }
}

fn traffic(t: &Traffic, current: u64) -> TrafficSnapshot {
    TrafficSnapshot {
        current,
        max: t.max_sessions.load(R).max(current),
        sessions: t.sessions.load(R),
        bytes_in: t.bytes_in.load(R),
        bytes_out: t.bytes_out.load(R),
        http_requests: t.http_requests.load(R),
        http_responses: std::array::from_fn(|i| t.http_responses[i].load(R)),
        last_session_unix_ms: t.last_session_unix_ms.load(R),
    }
}

fn timing(t: &Timing) -> TimingSnapshot {
    TimingSnapshot {
        average_us: t.average_us(),
        max_us: t.max_us(),
    }
}

fn proxy(c: &ProxyCounters, current: u64) -> ProxySnapshot {
    ProxySnapshot {
        traffic: traffic(&c.traffic, current),
        connection_errors: c.connection_errors.load(R),
        response_errors: c.response_errors.load(R),
        retries: c.retries.load(R),
        redispatches: c.redispatches.load(R),
        connection_attempts: c.connection_attempts.load(R),
        connection_reuses: c.connection_reuses.load(R),
        connect_time: timing(&c.connect_time),
        response_time: timing(&c.response_time),
        total_time: timing(&c.total_time),
    }
}

fn mode(m: crate::config::Mode) -> &'static str {
    match m {
        crate::config::Mode::Http => "http",
        crate::config::Mode::Tcp => "tcp",
    }
}

fn frontend(f: &FrontendRuntime) -> FrontendSnapshot {
    let c = &f.counters;
    FrontendSnapshot {
        name: f.spec.name.clone(),
        mode: mode(f.spec.mode),
        limit: u64::from(f.spec.max_connections),
        traffic: traffic(&c.traffic, c.current.load(R)),
        connections: c.connections.load(R),
        denied: c.denied.load(R),
        request_errors: c.request_errors.load(R),
        intercepted: c.intercepted.load(R),
    }
}

fn backend(b: &BackendRuntime) -> BackendSnapshot {
    let checked = b.spec.health_check.is_some();
    let servers: Vec<ServerSnapshot> = b.servers.iter().map(|s| server(s, checked)).collect();
    let up = |backup: bool| {
        (servers.iter())
            .filter(|s| s.backup == backup && s.state != ServerState::Down)
            .count() as u64
    };
    let weight = (servers.iter())
        .filter(|s| !s.backup && s.state != ServerState::Down)
        .map(|s| s.weight)
        .sum();
    BackendSnapshot {
        name: b.spec.name.clone(),
        mode: mode(b.spec.mode),
        up: servers.iter().any(|s| s.state != ServerState::Down),
        counters: proxy(&b.counters, b.counters.current.load(R)),
        weight,
        active_servers: up(false),
        backup_servers: up(true),
        checked,
        servers,
    }
}

fn server(s: &Arc<ServerRuntime>, checked: bool) -> ServerSnapshot {
    let state = match (checked, s.shared.is_up()) {
        (false, _) => ServerState::Unchecked,
        (true, true) => ServerState::Up,
        (true, false) => ServerState::Down,
    };
    let check = checked.then(|| {
        let h = &s.counters.health;
        let (last_check, last_change_unix_ms) = s.shared.health.snapshot();
        let status = match h.last_status.load(R) {
            0 => None,
            n => CHECK_STATUSES.get(n as usize - 1).copied(),
        };
        CheckSnapshot {
            status,
            code: h.last_code.load(R),
            duration: Duration::from_micros(h.last_duration_us.load(R)),
            failures: h.failures.load(R),
            up_down: h.up_down.load(R),
            downtime: Duration::from_millis(h.downtime_ms()),
            last_check,
            last_change_unix_ms,
        }
    });
    ServerSnapshot {
        name: s.spec.name.clone(),
        address: s.spec.address.clone(),
        port: s.spec.port,
        state,
        weight: u64::from(s.spec.weight),
        backup: s.spec.backup,
        limit: u64::from(s.spec.max_connections),
        counters: proxy(&s.counters.own, u64::from(s.active())),
        idle_connections: s.shared.pool.idle() as u64,
        check,
    }
}

/// Seconds since the Unix epoch of `unix_ms`, for renderers.
pub fn seconds(unix_ms: u64) -> f64 {
    unix_ms as f64 / 1000.0
}

/// Now, in seconds since the Unix epoch.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
