//! Traffic counters of frontends, backends and servers: plain atomics,
//! resolved once per object at apply time and kept across applies by name
//! ([`Registry`]), so a reload never resets them. The request path only
//! increments; renderers (Prometheus, a stats page) read [`crate::snapshot`]s.

mod counted;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use counted::{ByteSink, Counted};

const R: Ordering = Ordering::Relaxed;

/// HTTP status classes, the `code` label of HAProxy's `http_responses_total`.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Index into [`STATUS_CLASSES`] of a status code.
pub fn status_class(code: u16) -> usize {
    match code {
        100..=599 => usize::from(code / 100 - 1),
        _ => 5,
    }
}

/// Counters every proxy object has.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Highest number of sessions at once (HAProxy `smax`).
    pub max_sessions: AtomicU64,
    /// Sessions (TCP connections, or HTTP requests for backends and servers).
    pub sessions: AtomicU64,
    /// Bytes from clients (towards servers for backends and servers).
    pub bytes_in: AtomicU64,
    /// Bytes to clients (from servers for backends and servers).
    pub bytes_out: AtomicU64,
    pub http_requests: AtomicU64,
    /// HTTP responses by [`STATUS_CLASSES`].
    pub http_responses: [AtomicU64; 6],
    /// When the last session started, in ms since the Unix epoch (0: never).
    pub last_session_unix_ms: AtomicU64,
}

impl Traffic {
    /// Counts a session that starts with `current` sessions open (itself included).
    pub fn session(&self, current: u64) {
        self.sessions.fetch_add(1, R);
        self.max_sessions.fetch_max(current, R);
        self.last_session_unix_ms.store(unix_ms(), R);
    }

    /// Counts an HTTP response with `code`.
    pub fn response(&self, code: u16) {
        self.http_responses[status_class(code)].fetch_add(1, R);
    }
}

/// A frontend's counters.
#[derive(Debug, Default)]
pub struct FrontendCounters {
    pub traffic: Traffic,
    /// Client connections open now.
    pub current: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests denied by a rule.
    pub denied: AtomicU64,
    /// Requests that did not parse (hyper answered them 400 or 431).
    pub request_errors: AtomicU64,
    /// Requests answered here by a rule (redirects and denials).
    pub intercepted: AtomicU64,
}

impl FrontendCounters {
    /// Counts an accepted connection as open until the guard drops.
    pub fn open(self: &Arc<Self>) -> OpenGuard {
        let current = self.current.fetch_add(1, R) + 1;
        self.connections.fetch_add(1, R);
        self.traffic.session(current);
        OpenGuard(self.clone())
    }
}

/// Counts one frontend connection as current until dropped.
#[derive(Debug)]
pub struct OpenGuard(Arc<FrontendCounters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, R);
    }
}

/// Counters of a backend or one of its servers.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub traffic: Traffic,
    /// Requests or connections being served now (backends; a server's is
    /// its active count).
    pub current: AtomicU64,
    /// Connections to servers that failed (refused, timed out, TLS).
    pub connection_errors: AtomicU64,
    /// Bad or missing responses from servers (502, 504).
    pub response_errors: AtomicU64,
    /// Another try on the same server after a failed connection.
    pub retries: AtomicU64,
    /// Another try on another server after a failed connection.
    pub redispatches: AtomicU64,
    /// New connections opened to servers.
    pub connection_attempts: AtomicU64,
    /// Requests sent over a pooled connection.
    pub connection_reuses: AtomicU64,
    pub connect_time: Timing,
    pub response_time: Timing,
    pub total_time: Timing,
}

/// A server's counters: its traffic, and its backend's beside, which each
/// event on the server also counts.
#[derive(Debug)]
pub struct ServerCounters {
    pub own: ProxyCounters,
    pub backend: Arc<ProxyCounters>,
    pub health: HealthCounters,
}

impl ServerCounters {
    /// Runs `f` on the server's counters and on its backend's.
    #[inline]
    pub fn both<T>(&self, f: impl Fn(&ProxyCounters) -> T) {
        f(&self.own);
        f(&self.backend);
    }
}

/// Health-check counters of a server, written by its checker.
#[derive(Debug, Default)]
pub struct HealthCounters {
    /// Checks that failed.
    pub failures: AtomicU64,
    /// Transitions from up to down.
    pub up_down: AtomicU64,
    /// Time spent down before the current down period, in ms.
    pub downtime_ms: AtomicU64,
    /// Since when the server is down, in ms since the Unix epoch (0: up).
    pub down_since_unix_ms: AtomicU64,
    /// Duration of the last check, in µs.
    pub last_duration_us: AtomicU64,
    /// The last check's HAProxy status ([`CHECK_STATUSES`] index + 1; 0: none yet).
    pub last_status: AtomicU64,
    /// The last HTTP check's status code (0: none).
    pub last_code: AtomicU64,
}

/// HAProxy's check status names that fairlead reports (the `state` label of
/// `haproxy_server_check_status`).
pub const CHECK_STATUSES: [&str; 9] = [
    "L4OK", "L4TOUT", "L4CON", "L6RSP", "L7OK", "L7TOUT", "L7RSP", "L7STS", "SOCKERR",
];

impl HealthCounters {
    /// Counts a check: `status` indexes [`CHECK_STATUSES`]; `flip` is the
    /// new state when it changed (true: up).
    pub fn check(&self, ok: bool, status: usize, code: u16, took: Duration, flip: Option<bool>) {
        if !ok {
            self.failures.fetch_add(1, R);
        }
        self.last_status.store(status as u64 + 1, R);
        self.last_code.store(u64::from(code), R);
        self.last_duration_us
            .store(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), R);
        match flip {
            Some(false) => {
                self.up_down.fetch_add(1, R);
                self.down_since_unix_ms.store(unix_ms(), R);
            }
            Some(true) => {
                let since = self.down_since_unix_ms.swap(0, R);
                if since > 0 {
                    (self.downtime_ms).fetch_add(unix_ms().saturating_sub(since), R);
                }
            }
            None => {}
        }
    }

    /// Total time down, the current down period included, in ms.
    pub fn downtime_ms(&self) -> u64 {
        let since = self.down_since_unix_ms.load(R);
        let current = if since > 0 {
            unix_ms().saturating_sub(since)
        } else {
            0
        };
        self.downtime_ms.load(R) + current
    }
}

/// A sliding average over about the last 1024 samples (HAProxy's `swrate`)
/// and the maximum, in µs.
#[derive(Debug, Default)]
pub struct Timing {
    /// The average times 1024 (once 1024 samples have been seen).
    sum: AtomicU64,
    samples: AtomicU64,
    max_us: AtomicU64,
}

const WINDOW: u64 = 1024;

impl Timing {
    /// Adds a sample.
    pub fn add(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX / WINDOW);
        let before = self.samples.fetch_add(1, R);
        // The plain sum of the first WINDOW samples; then sum - sum/WINDOW + v,
        // whose sum/WINDOW slides over about the last WINDOW samples.
        let _ = self.sum.fetch_update(R, R, |sum| {
            Some(if before < WINDOW {
                sum + us
            } else {
                sum - sum / WINDOW + us
            })
        });
        self.max_us.fetch_max(us, R);
    }

    /// The average in µs (0 before any sample).
    pub fn average_us(&self) -> u64 {
        let n = self.samples.load(R).min(WINDOW);
        self.sum.load(R).checked_div(n).unwrap_or(0)
    }

    /// The largest sample in µs.
    pub fn max_us(&self) -> u64 {
        self.max_us.load(R)
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Counters by name, kept across applies: an object that stays gets the
/// same counters; a removed one's are dropped at the next apply.
#[derive(Debug, Default)]
pub struct Registry {
    frontends: HashMap<String, Arc<FrontendCounters>>,
    backends: HashMap<String, Arc<ProxyCounters>>,
    servers: HashMap<(String, String), Arc<ServerCounters>>,
}

impl Registry {
    /// The counters of frontend `name` (kept from `previous` when it had them).
    pub fn frontend(&mut self, previous: &Registry, name: &str) -> Arc<FrontendCounters> {
        let c = previous.frontends.get(name).cloned().unwrap_or_default();
        self.frontends.insert(name.to_owned(), c.clone());
        c
    }

    /// The counters of backend `name`.
    pub fn backend(&mut self, previous: &Registry, name: &str) -> Arc<ProxyCounters> {
        if let Some(c) = self.backends.get(name) {
            return c.clone();
        }
        let c = previous.backends.get(name).cloned().unwrap_or_default();
        self.backends.insert(name.to_owned(), c.clone());
        c
    }

    /// The counters of server `server` of backend `backend`.
    pub fn server(
        &mut self,
        previous: &Registry,
        backend: &str,
        server: &str,
    ) -> Arc<ServerCounters> {
        let key = (backend.to_owned(), server.to_owned());
        let backend_counters = self.backend(previous, backend);
        let c = match previous.servers.get(&key) {
            Some(c) if Arc::ptr_eq(&c.backend, &backend_counters) => c.clone(),
            _ => Arc::new(ServerCounters {
                own: ProxyCounters::default(),
                backend: backend_counters,
                health: HealthCounters::default(),
            }),
        };
        self.servers.insert(key, c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(STATUS_CLASSES[status_class(101)], "1xx");
        assert_eq!(STATUS_CLASSES[status_class(204)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class(308)], "3xx");
        assert_eq!(STATUS_CLASSES[status_class(404)], "4xx");
        assert_eq!(STATUS_CLASSES[status_class(599)], "5xx");
        assert_eq!(STATUS_CLASSES[status_class(600)], "other");
        assert_eq!(STATUS_CLASSES[status_class(99)], "other");
    }

    #[test]
    fn timing_is_the_mean_then_a_sliding_average() {
        let t = Timing::default();
        assert_eq!(t.average_us(), 0);
        for us in [100, 200, 300] {
            t.add(Duration::from_micros(us));
        }
        assert_eq!(t.average_us(), 200);
        assert_eq!(t.max_us(), 300);
        for _ in 0..20 * WINDOW {
            t.add(Duration::from_micros(1000));
        }
        let avg = t.average_us();
        assert!((990..=1000).contains(&avg), "{avg}");
        assert_eq!(t.max_us(), 1000);
    }

    #[test]
    fn counters_are_kept_by_name() {
        let mut first = Registry::default();
        let fe = first.frontend(&Registry::default(), "web");
        let srv = first.server(&Registry::default(), "app", "s1");
        let other = first.server(&Registry::default(), "app", "s2");
        assert!(Arc::ptr_eq(&srv.backend, &other.backend));
        assert!(Arc::ptr_eq(
            &srv.backend,
            &first.backend(&Registry::default(), "app")
        ));
        first
            .server(&Registry::default(), "db", "d1")
            .own
            .retries
            .fetch_add(1, R);
        fe.connections.fetch_add(5, R);
        let mut second = Registry::default();
        assert!(Arc::ptr_eq(&second.frontend(&first, "web"), &fe));
        let again = second.server(&first, "app", "s1");
        assert!(Arc::ptr_eq(&again, &srv));
        assert!(Arc::ptr_eq(&again.backend, &second.backend(&first, "app")));
        // "db" left with the second config: when it returns it starts afresh.
        let mut third = Registry::default();
        assert_eq!(third.server(&second, "db", "d1").own.retries.load(R), 0);
        assert_eq!(third.frontend(&second, "web").connections.load(R), 5);
    }

    #[test]
    fn downtime_adds_up_down_periods() {
        let h = HealthCounters::default();
        h.check(false, 2, 0, Duration::from_millis(1), Some(false));
        assert_eq!(h.up_down.load(R), 1);
        assert!(h.down_since_unix_ms.load(R) > 0);
        std::thread::sleep(Duration::from_millis(20));
        h.check(true, 0, 0, Duration::from_millis(1), Some(true));
        let down = h.downtime_ms();
        assert!((20..2000).contains(&down), "{down}");
        assert_eq!(h.failures.load(R), 1);
    }
}
