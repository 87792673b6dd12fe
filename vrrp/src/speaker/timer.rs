//! A speaker's one timer, on a timerfd: it wakes within microseconds of its
//! deadline, where tokio's timer rounds up to the next millisecond (a backup
//! would take over up to a millisecond after Master_Down_Interval).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct Timer {
    fd: AsyncFd<Fd>,
    /// The deadline the timerfd is armed for, until it expired.
    armed: Option<Instant>,
}

impl Timer {
    pub fn new() -> std::io::Result<Timer> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)?;
        // Deprecated because a borrowed descriptor could close while
        // registered; `Fd` owns its timerfd, which lives as long as the
        // registration. The replacement is `unsafe`, which this crate forbids.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(Fd(fd), Interest::READABLE)?;
        Ok(Timer { fd, armed: None })
    }

    /// Arms the timer for `deadline` (None: disarms it), unless already armed
    /// for it. A deadline in the past expires at once.
    pub fn set(&mut self, deadline: Option<Instant>) -> std::io::Result<()> {
        if deadline == self.armed {
            return Ok(());
        }
        let timer = &self.fd.get_ref().0;
        match deadline {
            None => timer.unset()?,
            Some(at) => {
                // A zero value would disarm it.
                let left =
                    (at.saturating_duration_since(Instant::now())).max(Duration::from_nanos(1));
                let expiration = Expiration::OneShot(TimeSpec::from_duration(left));
                timer.set(expiration, TimerSetTimeFlags::empty())?;
            }
        }
        self.armed = deadline;
        Ok(())
    }

    /// Waits until the armed deadline; forever when disarmed.
    pub async fn expired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            // Readiness can be stale (re-armed since): a read that would
            // block clears it and the wait goes on.
            let read = ready.try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from));
            if let Ok(result) = read {
                if let Err(error) = result {
                    tracing::warn!(%error, "VRRP timer read failed");
                }
                self.armed = None;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for `timer`, at most a second.
    async fn expiry(timer: &mut Timer) {
        let limit = Duration::from_secs(1);
        (tokio::time::timeout(limit, timer.expired()).await).expect("the timer expires");
    }

    #[tokio::test]
    async fn wakes_at_the_deadline_rearms_and_disarms() {
        let mut timer = Timer::new().unwrap();
        for wait in [3_500u64, 700, 12_250] {
            let start = Instant::now();
            let deadline = start + Duration::from_micros(wait);
            timer.set(Some(deadline)).unwrap();
            expiry(&mut timer).await;
            let late = Instant::now().saturating_duration_since(deadline);
            assert!(Instant::now() >= deadline, "woke before the deadline");
            // Generous: a loaded 2-core CI machine delays wakeups by tens of ms.
            assert!(late < Duration::from_millis(250), "{late:?} late");
        }
        // Re-armed further out before expiring: the later deadline counts.
        let start = Instant::now();
        timer.set(Some(start + Duration::from_millis(2))).unwrap();
        timer.set(Some(start + Duration::from_millis(20))).unwrap();
        expiry(&mut timer).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Disarmed: it never expires.
        timer
            .set(Some(Instant::now() + Duration::from_millis(1)))
            .unwrap();
        timer.set(None).unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(30), timer.expired()).await;
        assert!(waited.is_err(), "a disarmed timer expired");
    }
}
