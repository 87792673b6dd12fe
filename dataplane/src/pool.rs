//! Idle HTTP/1.1 connections to one server, kept for reuse (keep-alive).
//! Lock-free: a bounded queue of connections, holding no buffers, allocated
//! when the first connection is put back (a configured server that serves
//! no HTTP traffic costs no queue).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::http::idle_and_open;
use crate::tls::client::Upstream;

/// Idle connections kept per server; more are closed.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused; servers
/// commonly close idle keep-alive connections after 60-75 s.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

type Idle = ArrayQueue<(Instant, Box<dyn Upstream>)>;

/// A pool of idle connections to one server.
#[derive(Default)]
pub struct Pool {
    idle: OnceLock<Box<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle()).finish()
    }
}

impl Pool {
    /// A connection ready for a request, if one is idle, young and still open.
    pub fn take(&self) -> Option<Box<dyn Upstream>> {
        let idle = self.idle.get()?;
        while let Some((since, mut io)) = idle.pop() {
            if since.elapsed() <= MAX_IDLE_AGE && idle_and_open(&mut io) {
                return Some(io);
            }
        }
        None
    }

    /// Idle connections kept now.
    pub fn idle(&self) -> usize {
        self.idle.get().map_or(0, |idle| idle.len())
    }

    /// Keeps a connection whose last response ended cleanly; closes it when
    /// the pool is full.
    pub fn put(&self, io: Box<dyn Upstream>) {
        let idle = (self.idle).get_or_init(|| Box::new(ArrayQueue::new(MAX_IDLE)));
        let _ = idle.push((Instant::now(), io));
    }
}
