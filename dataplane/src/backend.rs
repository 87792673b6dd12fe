//! A backend at run time: its servers with live state shared across config
//! applies, the selector, and connecting with retries and redispatch.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::balance::{Candidate, SelectKey, Selector};
use crate::config;
use crate::counters::{Counted, ProxyCounters, Registry, ServerCounters};
use crate::health::HealthRecord;
use crate::pool::Pool;
use crate::tls::client::Upstream;

/// Live state of one server that survives config applies while the server's
/// backend, name, address and port stay the same.
#[derive(Debug)]
pub struct ServerShared {
    up: AtomicBool,
    active: AtomicU32,
    /// Idle HTTP connections to this server.
    pub pool: Pool,
    /// Its health checks, for the status API.
    pub health: HealthRecord,
}

impl ServerShared {
    /// Whether the server is in rotation (servers start up).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Puts the server in or out of rotation (health checks).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
}

/// One server as the running config sees it.
#[derive(Debug)]
pub struct ServerRuntime {
    pub spec: config::Server,
    /// The address when it is an IP literal, resolved once at apply.
    ip_addr: Option<SocketAddr>,
    pub shared: Arc<ServerShared>,
    /// Traffic and health counters, kept across applies by backend and server name.
    pub counters: Arc<ServerCounters>,
}

impl ServerRuntime {
    fn new(spec: config::Server, shared: Arc<ServerShared>, counters: Arc<ServerCounters>) -> Self {
        let ip_addr = spec
            .address
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, spec.port));
        ServerRuntime {
            spec,
            ip_addr,
            shared,
            counters,
        }
    }

    /// Opens a TCP connection to the server.
    pub async fn connect(&self) -> io::Result<TcpStream> {
        let stream = match self.ip_addr {
            Some(addr) => TcpStream::connect(addr).await?,
            None => TcpStream::connect((self.spec.address.as_str(), self.spec.port)).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Counts a connection or request as active until the guard drops.
    pub fn track(self: &Arc<Self>) -> ActiveGuard {
        self.shared.active.fetch_add(1, Ordering::Relaxed);
        self.counters
            .backend
            .current
            .fetch_add(1, Ordering::Relaxed);
        ActiveGuard {
            server: self.clone(),
            started: None,
        }
    }

    /// `address:port` for logs.
    pub fn label(&self) -> String {
        format!("{}:{}", self.spec.address, self.spec.port)
    }
}

impl Candidate for Arc<ServerRuntime> {
    fn weight(&self) -> u32 {
        self.spec.weight
    }
    fn is_backup(&self) -> bool {
        self.spec.backup
    }
    fn is_up(&self) -> bool {
        self.shared.is_up()
    }
    fn active(&self) -> u32 {
        self.shared.active.load(Ordering::Relaxed)
    }
    fn max_connections(&self) -> u32 {
        self.spec.max_connections
    }
    fn hash_id(&self) -> Option<&str> {
        Some(&self.spec.name)
    }
}

/// Decrements the server's active count when dropped; for a session that
/// was served, counts its total time then.
#[derive(Debug)]
pub struct ActiveGuard {
    server: Arc<ServerRuntime>,
    /// When the served session started (none for a failed attempt).
    started: Option<Instant>,
}

impl ActiveGuard {
    /// The server this guard counts against.
    pub fn server(&self) -> &Arc<ServerRuntime> {
        &self.server
    }

    /// Counts a session served by the server (and its backend), started at
    /// `started`; its total time is counted when the guard drops.
    fn served(&mut self, started: Instant) {
        let current = u64::from(self.server.shared.active.load(Ordering::Relaxed));
        let backend = self.server.counters.backend.current.load(Ordering::Relaxed);
        self.server.counters.own.traffic.session(current);
        self.server.counters.backend.traffic.session(backend);
        self.started = Some(started);
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.server.shared.active.fetch_sub(1, Ordering::Relaxed);
        let counters = &self.server.counters;
        counters.backend.current.fetch_sub(1, Ordering::Relaxed);
        if let Some(started) = self.started {
            let took = started.elapsed();
            counters.both(|c| c.total_time.add(took));
        }
    }
}

/// A backend ready to serve: spec, servers and selector.
#[derive(Debug)]
pub struct BackendRuntime {
    /// The backend's settings; its `servers` list is empty (each server's
    /// spec is in [`ServerRuntime::spec`]).
    pub spec: config::Backend,
    pub servers: Vec<Arc<ServerRuntime>>,
    selector: Selector,
    /// TLS towards the servers, when the backend uses it (set by the engine).
    pub tls: Option<crate::tls::client::Connector>,
    /// Traffic counters, kept across applies by name.
    pub counters: Arc<ProxyCounters>,
}

/// Key of a server's live state across applies.
pub type ServerStateKey = (String, String, String, u16);

impl BackendRuntime {
    /// Builds the runtime, reusing the live state of servers that `previous`
    /// already had, with counters of its own.
    pub fn build(
        spec: config::Backend,
        previous: &HashMap<ServerStateKey, Arc<ServerShared>>,
    ) -> Self {
        Self::build_counted(
            spec,
            previous,
            &mut Registry::default(),
            &Registry::default(),
        )
    }

    /// Builds the runtime, reusing the live state of servers that `previous`
    /// already had, and the counters `counted` had for the same names
    /// (registered in `counters`).
    pub fn build_counted(
        spec: config::Backend,
        previous: &HashMap<ServerStateKey, Arc<ServerShared>>,
        counters: &mut Registry,
        counted: &Registry,
    ) -> Self {
        let mut spec = spec;
        // Each server's spec moves to its runtime: one copy, not two.
        let servers: Vec<Arc<ServerRuntime>> = std::mem::take(&mut spec.servers)
            .into_iter()
            .map(|s| {
                let key = (spec.name.clone(), s.name.clone(), s.address.clone(), s.port);
                let shared = previous.get(&key).cloned().unwrap_or_else(|| {
                    Arc::new(ServerShared {
                        up: AtomicBool::new(true),
                        active: AtomicU32::new(0),
                        pool: Pool::default(),
                        health: HealthRecord::default(),
                    })
                });
                let server_counters = counters.server(counted, &spec.name, &s.name);
                Arc::new(ServerRuntime::new(s, shared, server_counters))
            })
            .collect();
        let selector = Selector::new(spec.balance, &servers);
        BackendRuntime {
            counters: counters.backend(counted, &spec.name),
            spec,
            servers,
            selector,
            tls: None,
        }
    }

    /// The live state of every server, for the next apply to reuse.
    pub fn shared_states(&self, into: &mut HashMap<ServerStateKey, Arc<ServerShared>>) {
        for s in &self.servers {
            let key = (
                self.spec.name.clone(),
                s.spec.name.clone(),
                s.spec.address.clone(),
                s.spec.port,
            );
            into.insert(key, s.shared.clone());
        }
    }

    /// Picks a server, skipping those in `tried`.
    pub fn select(&self, key: &SelectKey, tried: &[usize]) -> Option<&Arc<ServerRuntime>> {
        let i = self
            .selector
            .select(key, &self.servers, &|i| tried.contains(&i))?;
        Some(&self.servers[i])
    }

    /// Runs `attempt` on a server chosen for `key`, and up to `retries` more
    /// times while it fails: on another server with redispatch (the same one
    /// when no other is eligible), else on the same server. The guard counts
    /// the request as active on the server that succeeded.
    pub async fn try_servers<T, F, Fut>(
        &self,
        key: &SelectKey<'_>,
        mut attempt: F,
    ) -> Option<(T, ActiveGuard)>
    where
        F: FnMut(Arc<ServerRuntime>) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        let mut tried: Vec<usize> = Vec::new();
        let mut server = self.select(key, &tried)?.clone();
        for n in 0..=self.spec.retries {
            let mut guard = server.track();
            if let Some(ok) = attempt(server.clone()).await {
                guard.served(started);
                return Some((ok, guard));
            }
            if n == self.spec.retries {
                break;
            }
            let failed = server.clone();
            if self.spec.redispatch {
                if let Some(i) = self.servers.iter().position(|s| Arc::ptr_eq(s, &server)) {
                    tried.push(i);
                }
                if let Some(next) = self.select(key, &tried) {
                    server = next.clone();
                }
            }
            if Arc::ptr_eq(&failed, &server) {
                failed
                    .counters
                    .both(|c| c.retries.fetch_add(1, Ordering::Relaxed));
            } else {
                failed
                    .counters
                    .both(|c| c.redispatches.fetch_add(1, Ordering::Relaxed));
            }
        }
        None
    }

    /// Opens a TCP connection to `server` within the connect timeout; logs failures.
    pub async fn connect_to(&self, server: &ServerRuntime) -> Option<TcpStream> {
        let error = match tokio::time::timeout(self.spec.connect_timeout(), server.connect()).await
        {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timeout".to_string(),
        };
        tracing::warn!(backend = %self.spec.name, server = %server.spec.name, addr = %server.label(), %error, "connect to server failed");
        None
    }

    /// Connects to `server` (with TLS when the backend uses it), within the
    /// connect timeout; failures are logged.
    /// Its bytes, connect time and errors are counted on the server and backend.
    pub async fn connect_upstream(&self, server: &ServerRuntime) -> Option<Box<dyn Upstream>> {
        let counters = &server.counters;
        counters.both(|c| c.connection_attempts.fetch_add(1, Ordering::Relaxed));
        let started = Instant::now();
        let connected = self.connect_upstream_uncounted(server).await;
        match &connected {
            Some(_) => {
                let took = started.elapsed();
                counters.both(|c| c.connect_time.add(took));
            }
            None => counters.both(|c| c.connection_errors.fetch_add(1, Ordering::Relaxed)),
        }
        let stream = connected?;
        Some(Box::new(Counted::new(stream, counters.clone())))
    }

    async fn connect_upstream_uncounted(
        &self,
        server: &ServerRuntime,
    ) -> Option<Box<dyn Upstream>> {
        let stream = self.connect_to(server).await?;
        let Some(tls) = &self.tls else {
            return Some(Box::new(stream));
        };
        let limit = self.spec.connect_timeout();
        let error =
            match tokio::time::timeout(limit, tls.handshake(stream, &server.spec.address)).await {
                Ok(Ok(tls)) => return Some(Box::new(tls)),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "TLS handshake timeout".to_string(),
            };
        tracing::warn!(backend = %self.spec.name, server = %server.spec.name, addr = %server.label(), %error, "TLS to server failed");
        None
    }
}
