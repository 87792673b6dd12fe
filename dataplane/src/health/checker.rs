//! One tokio task per checked server. The engine calls [`Checkers::sync`]
//! after every apply: a server keeps its running checker (and its counter)
//! while its live state and check settings are unchanged; other checkers are
//! replaced or stopped. Dropping a checker aborts its task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::HealthState;
use super::probe::Probe;
use crate::access_log::{Events, Severity};
use crate::backend::{BackendRuntime, ServerRuntime, ServerShared};
use crate::config::{BackendTls, HealthCheck};
use crate::counters::ServerCounters;

/// The running checkers, by backend and server name.
#[derive(Debug, Default)]
pub struct Checkers {
    running: HashMap<(String, String), Checker>,
    /// Where up/down transitions go besides the process log (syslog).
    events: Option<Events>,
}

#[derive(Debug)]
struct Checker {
    check: HealthCheck,
    /// The backend's TLS settings the checker was started with.
    tls: Option<BackendTls>,
    shared: Arc<ServerShared>,
    task: JoinHandle<()>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checkers {
    /// Sends transitions (and, with `log`, failed checks) to `events` too.
    pub fn set_events(&mut self, events: Events) {
        self.events = Some(events);
    }

    /// Runs a checker for every server of every backend with a health check,
    /// and no other. Servers of backends without checks are put back up.
    pub fn sync<'a>(&mut self, backends: impl IntoIterator<Item = &'a Arc<BackendRuntime>>) {
        let mut previous = std::mem::take(&mut self.running);
        for backend in backends {
            let Some(check) = &backend.spec.health_check else {
                for server in &backend.servers {
                    server.shared.set_up(true);
                }
                continue;
            };
            for server in &backend.servers {
                let key = (backend.spec.name.clone(), server.spec.name.clone());
                let checker = match previous.remove(&key) {
                    Some(c)
                        if c.check == *check
                            && c.tls == backend.spec.tls
                            && Arc::ptr_eq(&c.shared, &server.shared) =>
                    {
                        c
                    }
                    _ => Checker::start(backend, server, check, self.events.clone()),
                };
                self.running.insert(key, checker);
            }
        }
    }

    /// Stops every checker.
    pub fn clear(&mut self) {
        self.running.clear();
    }

    /// Checkers running now.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether no checker runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl Checker {
    fn start(
        backend: &BackendRuntime,
        server: &ServerRuntime,
        check: &HealthCheck,
        events: Option<Events>,
    ) -> Checker {
        let probe = Probe {
            address: server.spec.address.clone(),
            port: check.port.unwrap_or(server.spec.port),
            timeout: Duration::from_millis(check.timeout_ms),
            http: check.http.clone(),
            tls: backend.tls.clone(),
        };
        let labels = Labels {
            backend: backend.spec.name.clone(),
            server: server.spec.name.clone(),
            addr: format!("{}:{}", probe.address, probe.port),
            events,
        };
        let task = tokio::spawn(run(
            probe,
            check.clone(),
            server.shared.clone(),
            server.counters.clone(),
            labels,
        ));
        Checker {
            check: check.clone(),
            tls: backend.spec.tls.clone(),
            shared: server.shared.clone(),
            task,
        }
    }
}

/// Who is checked, for logs.
struct Labels {
    backend: String,
    server: String,
    addr: String,
    /// Syslog, when a logging frontend has one.
    events: Option<Events>,
}

/// Checks forever, one check per interval; the first within one interval
/// (jittered, so that servers are not all checked at once).
async fn run(
    probe: Probe,
    check: HealthCheck,
    shared: Arc<ServerShared>,
    counters: Arc<ServerCounters>,
    labels: Labels,
) {
    let interval = Duration::from_millis(check.interval_ms.max(1));
    let mut state = HealthState::new(shared.is_up(), check.fall, check.rise);
    sleep(Duration::from_millis(fastrand::u64(
        0..check.interval_ms.max(1),
    )))
    .await;
    loop {
        let started = Instant::now();
        let outcome = probe.run().await;
        let flip = state.observe(&outcome);
        shared.health.record(&outcome, flip.is_some());
        let (status, code) = super::check_status(&outcome, check.http.is_some());
        (counters.health).check(
            outcome.ok,
            status,
            code,
            started.elapsed(),
            flip.as_ref().map(|f| f.up),
        );
        if let Some(flip) = flip {
            shared.set_up(flip.up);
            let Labels {
                backend,
                server,
                addr,
                events,
            } = &labels;
            if flip.up {
                tracing::info!(%backend, %server, %addr, state = "up", reason = %flip.reason, "server is up");
            } else {
                tracing::warn!(%backend, %server, %addr, state = "down", reason = %flip.reason, "server is down");
            }
            if let Some(events) = events {
                let (state, severity) = match flip.up {
                    true => ("UP", Severity::Notice),
                    false => ("DOWN", Severity::Warning),
                };
                let took = started.elapsed().as_millis();
                events.send(
                    severity,
                    format!("Server {backend}/{server} is {state}, reason: {}, check duration: {took}ms.", flip.reason),
                );
            }
        } else if check.log && !outcome.ok {
            tracing::info!(backend = %labels.backend, server = %labels.server, addr = %labels.addr,
                reason = %outcome.reason, "health check failed");
            if let Some(events) = &labels.events {
                let took = started.elapsed().as_millis();
                let state = if shared.is_up() { "UP" } else { "DOWN" };
                events.send(
                    Severity::Notice,
                    format!(
                        "Health check for server {}/{} failed, reason: {}, check duration: {took}ms, status: {state}.",
                        labels.backend, labels.server, outcome.reason
                    ),
                );
            }
        }
        sleep_until(started + interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, Balance, Mode, Server};
    use tokio::net::TcpListener;

    fn backend(check: Option<HealthCheck>, port: u16) -> Arc<BackendRuntime> {
        let mut spec = Backend::new(
            "b",
            Mode::Tcp,
            Balance::Roundrobin,
            vec![Server::new("s", "127.0.0.1", port)],
        );
        spec.health_check = check;
        Arc::new(BackendRuntime::build(spec, &HashMap::new()))
    }

    /// The config `b` was built from.
    fn spec_of(b: &BackendRuntime) -> Backend {
        let mut spec = b.spec.clone();
        spec.servers = b.servers.iter().map(|s| s.spec.clone()).collect();
        spec
    }

    fn fast() -> HealthCheck {
        HealthCheck {
            interval_ms: 100,
            timeout_ms: 50,
            fall: 2,
            rise: 1,
            ..HealthCheck::default()
        }
    }

    // Real time: a paused clock could fire the check timeout while the refused connect is in flight.
    #[tokio::test]
    async fn refused_server_goes_down_after_fall_checks_and_back_without_checks() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let b = backend(Some(fast()), port);
        let shared = b.servers[0].shared.clone();
        let mut checkers = Checkers::default();
        checkers.sync([&b]);
        assert_eq!(checkers.len(), 1);
        assert!(shared.is_up(), "a new server starts up");
        let started = Instant::now();
        for _ in 0..500 {
            if !shared.is_up() {
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        assert!(!shared.is_up(), "down after two refused connects");
        // The second of two checks one interval apart.
        assert!(started.elapsed() >= Duration::from_millis(100));
        let (last, changed) = shared.health.snapshot();
        assert_eq!(last.unwrap().reason, "connection refused");
        assert!(changed.is_some());

        // The same backend without checks: the checker stops, the server is up.
        let mut spec = spec_of(&b);
        spec.health_check = None;
        let mut states = HashMap::new();
        b.shared_states(&mut states);
        let unchecked = Arc::new(BackendRuntime::build(spec, &states));
        checkers.sync([&unchecked]);
        assert!(checkers.is_empty());
        assert!(shared.is_up());
    }

    #[tokio::test]
    async fn unchanged_server_keeps_its_checker_and_changed_settings_replace_it() {
        let b = backend(Some(fast()), 9);
        let mut checkers = Checkers::default();
        checkers.sync([&b]);
        let first = checkers.running[&("b".to_string(), "s".to_string())]
            .task
            .id();
        let mut states = HashMap::new();
        b.shared_states(&mut states);
        let same = Arc::new(BackendRuntime::build(spec_of(&b), &states));
        checkers.sync([&same]);
        let kept = checkers.running[&("b".to_string(), "s".to_string())]
            .task
            .id();
        assert_eq!(first, kept);
        let mut spec = spec_of(&b);
        spec.health_check = Some(HealthCheck { fall: 5, ..fast() });
        let changed = Arc::new(BackendRuntime::build(spec, &states));
        checkers.sync([&changed]);
        let replaced = checkers.running[&("b".to_string(), "s".to_string())]
            .task
            .id();
        assert_ne!(first, replaced);
        checkers.clear();
        assert!(checkers.is_empty());
    }
}
