//! Proxy threads, like HAProxy's `nbthread`: the calling thread's runtime
//! plus one thread per extra worker, each running a current-thread tokio
//! runtime. Every listener has one socket per worker (SO_REUSEPORT), so the
//! kernel spreads connections and each connection stays on one thread.

use std::io;
use std::num::NonZeroUsize;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The proxy's worker runtimes; the extra threads stop when this drops.
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Workers {
    /// `threads` workers in all (`None`: one per CPU): the current runtime
    /// and a thread for each other; call within a runtime.
    pub fn start(threads: Option<NonZeroUsize>) -> io::Result<Workers> {
        let extra = threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
            - 1;
        let mut handles = vec![Handle::current()];
        let mut threads = Vec::with_capacity(extra);
        for i in 1..=extra {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("fairlead-worker-{i}"))
                .spawn(move || {
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push((stop, thread));
        }
        Ok(Workers { handles, threads })
    }

    /// A runtime handle per worker, the calling thread's first.
    pub fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (stop, thread) in self.threads.drain(..) {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
