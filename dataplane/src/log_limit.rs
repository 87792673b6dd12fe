//! A rate limit for log lines that clients or the system can trigger at will
//! (a failed handshake, an accept error when file descriptors run out): a
//! few lines per second, each carrying how many were suppressed before it.
//!
//! ```
//! use fairlead_dataplane::log_limit::LogLimit;
//! static ACCEPT_FAILED: LogLimit = LogLimit::per_second(1);
//! # let e = "Too many open files";
//! if let Some(suppressed) = ACCEPT_FAILED.check() {
//!     tracing::warn!(error = %e, suppressed, "accept failed");
//! }
//! ```

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Allows `n` events per wall-clock second (since the process's first
/// check) and counts the rest.
#[derive(Debug)]
pub struct LogLimit {
    per_second: u32,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// The second (since [`start`]) this window counts.
    second: u64,
    /// Events allowed in this second.
    allowed: u32,
    /// Events suppressed since the last one allowed.
    suppressed: u64,
}

/// The time base shared by every limit.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl LogLimit {
    /// A limit of `n` events per second (at least one).
    pub const fn per_second(n: u32) -> LogLimit {
        LogLimit {
            per_second: if n == 0 { 1 } else { n },
            state: Mutex::new(Window {
                second: 0,
                allowed: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(suppressed)` when an event may be logged now, `suppressed` being
    /// how many were not since the last one that was; `None` when it must not.
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        self.check_at(now.saturating_duration_since(start()).as_secs())
    }

    /// [`LogLimit::check`] at `second` (seconds since a fixed start).
    pub fn check_at(&self, second: u64) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if second != window.second {
            window.second = second;
            window.allowed = 0;
        }
        if window.allowed >= self.per_second {
            window.suppressed += 1;
            return None;
        }
        window.allowed += 1;
        Some(std::mem::take(&mut window.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_per_second_then_the_count_of_those_suppressed() {
        let limit = LogLimit::per_second(2);
        assert_eq!(limit.check_at(5), Some(0));
        assert_eq!(limit.check_at(5), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.check_at(5), None);
        }
        assert_eq!(limit.check_at(6), Some(1000));
        assert_eq!(limit.check_at(6), Some(0));
        assert_eq!(limit.check_at(6), None);
        assert_eq!(limit.check_at(9), Some(1));
    }

    #[test]
    fn zero_means_one() {
        let limit = LogLimit::per_second(0);
        assert_eq!(limit.check_at(1), Some(0));
        assert_eq!(limit.check_at(1), None);
    }

    #[test]
    fn a_flood_of_checks_from_threads_allows_a_trickle() {
        let limit = std::sync::Arc::new(LogLimit::per_second(3));
        let started = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || (0..20_000).filter(|_| limit.check().is_some()).count())
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let seconds = started.elapsed().as_secs() as usize + 2;
        assert!((1..=3 * seconds).contains(&allowed), "{allowed}");
    }
}
