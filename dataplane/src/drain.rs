//! Connection draining: the stop switch a listener gives its connections, and
//! the count of open client connections that shutdown waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Resolves once the stop switch is on (or its sender is gone).
pub async fn stop_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Counts open client connections so shutdown can wait for them.
#[derive(Default)]
pub struct Connections {
    open: AtomicUsize,
    total: AtomicU64,
    idle: Notify,
}

/// Counts one connection until dropped.
pub struct ConnectionGuard(Arc<Connections>);

impl Connections {
    /// Counts a connection as open until the guard drops.
    pub fn open(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections accepted since the engine started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Waits until no connection is open, at most `grace`.
    pub async fn wait_idle(&self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            while self.count() > 0 {
                self.idle.notified().await;
            }
        })
        .await;
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
