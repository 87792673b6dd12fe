//! A backend at run time: its servers with live state shared across config
//! applies, the selector, and connecting with retries and redispatch.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::net::TcpStream;

use crate::balance::{Candidate, SelectKey, Selector};
use crate::config;
use crate::pool::Pool;

/// Live state of one server that survives config applies while the server's
/// backend, name, address and port stay the same.
#[derive(Debug)]
pub struct ServerShared {
    up: AtomicBool,
    active: AtomicU32,
    /// Idle HTTP connections to this server.
    pub pool: Pool,
}

/// One server as the running config sees it.
#[derive(Debug)]
pub struct ServerRuntime {
    pub spec: config::Server,
    /// The address when it is an IP literal, resolved once at apply.
    ip_addr: Option<SocketAddr>,
    pub shared: Arc<ServerShared>,
}

impl ServerRuntime {
    fn new(spec: config::Server, shared: Arc<ServerShared>) -> Self {
        let ip_addr = spec.address.parse().ok().map(|ip| SocketAddr::new(ip, spec.port));
        ServerRuntime { spec, ip_addr, shared }
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
        ActiveGuard(self.clone())
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
        self.shared.up.load(Ordering::Relaxed)
    }
    fn active(&self) -> u32 {
        self.shared.active.load(Ordering::Relaxed)
    }
    fn max_connections(&self) -> u32 {
        self.spec.max_connections
    }
}

/// Decrements the server's active count when dropped.
#[derive(Debug)]
pub struct ActiveGuard(Arc<ServerRuntime>);

impl ActiveGuard {
    /// The server this guard counts against.
    pub fn server(&self) -> &Arc<ServerRuntime> {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.shared.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why no server connection could be made.
#[derive(Debug)]
pub enum ConnectError {
    /// No server was eligible (none configured, all down or full).
    NoServer,
    /// Every attempt failed; the last error.
    Failed(io::Error),
}

/// A backend ready to serve: spec, servers and selector.
#[derive(Debug)]
pub struct BackendRuntime {
    pub spec: config::Backend,
    pub servers: Vec<Arc<ServerRuntime>>,
    selector: Selector,
}

/// Key of a server's live state across applies.
type ServerKey = (String, String, String, u16);

impl BackendRuntime {
    /// Builds the runtime, reusing the live state of servers that `previous` already had.
    pub fn build(spec: config::Backend, previous: &HashMap<ServerKey, Arc<ServerShared>>) -> Self {
        let servers: Vec<Arc<ServerRuntime>> = spec
            .servers
            .iter()
            .map(|s| {
                let key = (spec.name.clone(), s.name.clone(), s.address.clone(), s.port);
                let shared = previous.get(&key).cloned().unwrap_or_else(|| {
                    Arc::new(ServerShared { up: AtomicBool::new(true), active: AtomicU32::new(0), pool: Pool::default() })
                });
                Arc::new(ServerRuntime::new(s.clone(), shared))
            })
            .collect();
        let selector = Selector::new(spec.balance, &servers);
        BackendRuntime { spec, servers, selector }
    }

    /// The live state of every server, for the next apply to reuse.
    pub fn shared_states(&self, into: &mut HashMap<ServerKey, Arc<ServerShared>>) {
        for s in &self.servers {
            let key = (self.spec.name.clone(), s.spec.name.clone(), s.spec.address.clone(), s.spec.port);
            into.insert(key, s.shared.clone());
        }
    }

    /// Picks a server, skipping those in `tried`.
    pub fn select(&self, key: &SelectKey, tried: &[usize]) -> Option<&Arc<ServerRuntime>> {
        let i = self.selector.select(key, &self.servers, &|i| tried.contains(&i))?;
        Some(&self.servers[i])
    }

    /// Connects to a server chosen for `key`, retrying `retries` more times on
    /// failure: on another server with redispatch, else on the same one.
    pub async fn connect(&self, key: &SelectKey<'_>) -> Result<(TcpStream, ActiveGuard), ConnectError> {
        let mut tried: Vec<usize> = Vec::new();
        let mut last: Option<io::Error> = None;
        let mut server = self.select(key, &tried).ok_or(ConnectError::NoServer)?.clone();
        for attempt in 0..=self.spec.retries {
            let guard = server.track();
            match tokio::time::timeout(self.spec.connect_timeout(), server.connect()).await {
                Ok(Ok(stream)) => return Ok((stream, guard)),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
            }
            drop(guard);
            tracing::warn!(
                backend = %self.spec.name, server = %server.spec.name, addr = %server.label(),
                attempt, error = %last.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                "connect to server failed"
            );
            if self.spec.redispatch {
                if let Some(i) = self.servers.iter().position(|s| Arc::ptr_eq(s, &server)) {
                    tried.push(i);
                }
                match self.select(key, &tried) {
                    Some(next) => server = next.clone(),
                    None => break,
                }
            }
        }
        Err(ConnectError::Failed(last.unwrap_or_else(|| io::Error::other("no attempt made"))))
    }
}
