//! Idle HTTP/1.1 connections to one server, kept for reuse (keep-alive).
//! Lock-free: a bounded queue of request senders.

use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// Idle connections kept per server; more are closed.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused; servers
/// commonly close idle keep-alive connections after 60-75 s.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// A pool of idle connections to one server.
pub struct Pool {
    idle: ArrayQueue<(Instant, SendRequest<Incoming>)>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            idle: ArrayQueue::new(MAX_IDLE),
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle.len())
            .finish()
    }
}

impl Pool {
    /// A connection ready for a request, if one is idle and alive.
    pub async fn take(&self) -> Option<SendRequest<Incoming>> {
        while let Some((since, mut sender)) = self.idle.pop() {
            if since.elapsed() > MAX_IDLE_AGE || sender.is_closed() {
                continue;
            }
            // A connection returns here as soon as its response body ended;
            // hyper marks it ready a moment later, so wait for that briefly.
            if sender.is_ready() {
                return Some(sender);
            }
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_millis(50), sender.ready()).await
            {
                return Some(sender);
            }
        }
        None
    }

    /// Idle connections kept now.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Keeps a connection for reuse; closes it when the pool is full.
    pub fn put(&self, sender: SendRequest<Incoming>) {
        if !sender.is_closed() {
            let _ = self.idle.push((Instant::now(), sender));
        }
    }
}
