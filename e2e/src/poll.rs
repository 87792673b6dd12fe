//! Waiting for a condition, bounded in time.

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it returns `Some`, at most `limit`; panics
/// naming `what` after that.
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
