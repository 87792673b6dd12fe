//! Access logs (`spec.logging`): one line per HTTP request (`httplog`) or TCP
//! connection (`tcplog`) in HAProxy's default formats, or the same fields as
//! JSON, written to stdout and/or sent to a syslog server over UDP (RFC 3164
//! or RFC 5424), with health-check and VRRP transitions to the same syslog
//! servers.
//!
//! The proxy never waits for a log: a finished request or connection hands
//! a [`Record`] of plain values to a bounded lock-free queue ([`QUEUE`]
//! entries) and moves on, waking nobody. One writer thread drains it every
//! [`writer::PAUSE`], formats and writes; when the queue is full,
//! or a syslog server refuses, lines are dropped and counted
//! ([`AccessLog::dropped`], `haproxy_process_dropped_logs_total`).

mod format;
mod syslog;
mod time;
mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;

use crate::backend::{BackendRuntime, ServerRuntime};
use crate::balance::Candidate;
use crate::config::{LogFormat, Logging, Mode, Syslog};
use crate::counters::FrontendCounters;
use crate::drain::Connections;

pub use format::{http_line, json_line, tcp_line};
pub use syslog::frame;
pub use time::{clf_date, rfc3339};

/// Records the queue holds before lines are dropped.
pub const QUEUE: usize = 16 * 1024;

/// Syslog severities used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Alert = 1,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// Where and how one frontend logs; built at apply time.
#[derive(Debug)]
pub struct Target {
    /// The frontend's name, as logged.
    pub frontend: String,
    pub format: LogFormat,
    /// `true`: http fields (httplog, or JSON in http mode).
    pub http: bool,
    pub dont_log_null: bool,
    pub stdout: bool,
    pub syslog: Option<Syslog>,
}

/// The timers of a request or connection, in ms; -1: the step was not reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Idle time before the request's first byte (`Ti`): since the accept
    /// or the previous response on the connection. HTTP only.
    pub idle: i64,
    /// Time to receive the request's head from its first byte (`TR`);
    /// -1 when it never came whole. HTTP only.
    pub request: i64,
    /// Time in queue (always 0: fairlead does not queue).
    pub queue: i64,
    /// Time to get a server connection (0 for a pooled one).
    pub connect: i64,
    /// Time from sending the request to the response head. HTTP only.
    pub response: i64,
    /// Total: active time of the request (HTTP: `Ta`), or the whole session (TCP: `Tt`).
    pub total: i64,
}

/// One finished request or connection, as plain values.
#[derive(Debug)]
pub struct Record {
    pub target: Arc<Target>,
    pub client: SocketAddr,
    /// When the request (HTTP) or the connection (TCP) began, ms since the Unix epoch.
    pub date_unix_ms: u64,
    /// The frontend terminated TLS (logged as `frontend~`).
    pub tls: bool,
    pub backend: Option<Arc<BackendRuntime>>,
    pub server: Option<Arc<ServerRuntime>>,
    /// The server name logged when `server` is none: `<NOSRV>`, `<STATS>`.
    pub no_server: &'static str,
    pub timers: Timers,
    /// HTTP status sent to the client (0 for TCP).
    pub status: u16,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// HAProxy's two-letter session state at disconnection (`--`, `SC`, `CD`...).
    pub termination: [u8; 2],
    /// actconn, feconn, beconn, srv_conn.
    pub connections: [u64; 4],
    pub retries: u32,
    /// The request line, HTTP only.
    pub request: Option<RequestLine>,
}

/// The request line as received.
#[derive(Clone, Debug)]
pub struct RequestLine {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
}

impl RequestLine {
    pub fn of<B>(req: &http::Request<B>) -> Self {
        RequestLine {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
        }
    }
}

/// What goes to the writer.
#[derive(Debug)]
pub(crate) enum Entry {
    Access(Box<Record>),
    Event(Severity, String),
}

/// The log queue and its writer thread, one per engine.
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    tx: Mutex<Option<Queue>>,
    dropped: Arc<AtomicU64>,
    /// Syslog servers of every logging frontend: where events go.
    event_targets: Arc<ArcSwap<Vec<Syslog>>>,
    host: String,
}

impl Shared {
    /// The queue, starting the writer thread the first time.
    fn sender(&self) -> Option<Queue> {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.is_none() {
            let queue: Queue = Arc::new(ArrayQueue::new(QUEUE));
            let writer = writer::Writer::new(
                queue.clone(),
                self.dropped.clone(),
                self.event_targets.clone(),
                self.host.clone(),
            );
            let started = std::thread::Builder::new()
                .name("fairlead-log".into())
                .spawn(move || writer.run());
            if let Err(e) = started {
                tracing::warn!(error = %e, "the access log writer did not start");
                return None;
            }
            *tx = Some(queue);
        }
        tx.clone()
    }
}

/// The queue between the proxy and the writer: pushing never waits nor
/// wakes a thread; the writer looks at it every few milliseconds.
pub(crate) type Queue = Arc<ArrayQueue<Entry>>;

impl AccessLog {
    /// A log whose syslog messages name `host`; its writer thread starts on
    /// first use and ends when the log and every handle are gone.
    pub fn new(host: &str) -> Self {
        AccessLog {
            shared: Arc::new(Shared {
                tx: Mutex::new(None),
                dropped: Arc::default(),
                event_targets: Arc::default(),
                host: host.to_string(),
            }),
        }
    }

    /// Lines dropped since start (queue full, syslog server refusing).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.shared.dropped.clone()
    }

    /// The handle a frontend logs with, when `logging` is set.
    pub fn frontend(
        &self,
        name: &str,
        mode: Mode,
        logging: Option<&Logging>,
        counters: Arc<FrontendCounters>,
        connections: Arc<Connections>,
    ) -> Option<FrontendLog> {
        let logging = logging?;
        let tx = self.shared.sender()?;
        let http = match logging.format {
            LogFormat::Httplog => true,
            LogFormat::Tcplog => false,
            LogFormat::Json => mode == Mode::Http,
        };
        Some(FrontendLog {
            target: Arc::new(Target {
                frontend: name.to_string(),
                format: logging.format,
                http,
                dont_log_null: logging.dont_log_null,
                stdout: logging.stdout,
                syslog: logging.syslog.clone(),
            }),
            tx,
            dropped: self.shared.dropped.clone(),
            counters,
            connections,
        })
    }

    /// Sets the syslog servers events go to (the running frontends').
    pub fn set_event_targets(&self, mut targets: Vec<Syslog>) {
        targets.sort_by(|a, b| a.address.cmp(&b.address));
        targets.dedup();
        self.shared.event_targets.store(Arc::new(targets));
    }

    /// A handle for events (health checks, VRRP).
    pub fn events(&self) -> Events {
        Events {
            shared: self.shared.clone(),
        }
    }
}

/// Sends health-check and VRRP transitions to the syslog servers of the
/// logging frontends (none: nothing is sent).
#[derive(Clone)]
pub struct Events {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Queues `text` at `severity`; dropped and counted when the queue is full.
    pub fn send(&self, severity: Severity, text: String) {
        if self.shared.event_targets.load().is_empty() {
            return;
        }
        let Some(tx) = self.shared.sender() else {
            return;
        };
        if tx.push(Entry::Event(severity, text)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One frontend's access log.
#[derive(Clone)]
pub struct FrontendLog {
    pub target: Arc<Target>,
    tx: Queue,
    dropped: Arc<AtomicU64>,
    counters: Arc<FrontendCounters>,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for FrontendLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendLog")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl FrontendLog {
    /// Whether lines are HTTP ones (else a line per connection).
    pub fn http(&self) -> bool {
        self.target.http
    }

    /// Current connections: process, this frontend, `backend`, `server`.
    pub fn connections(
        &self,
        backend: Option<&BackendRuntime>,
        server: Option<&Arc<ServerRuntime>>,
    ) -> [u64; 4] {
        [
            self.connections.count() as u64,
            self.counters.current.load(Ordering::Relaxed),
            backend.map_or(0, |b| b.counters.current.load(Ordering::Relaxed)),
            server.map_or(0, |s| u64::from(s.active())),
        ]
    }

    /// Hands `record` to the writer; never waits.
    pub fn log(&self, record: Record) {
        if self.tx.push(Entry::Access(Box::new(record))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Milliseconds of `d`, for timers.
pub fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
