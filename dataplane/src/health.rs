//! Active health checks. The decision is pure: [`HealthState`] counts
//! consecutive results and reports when a server flips. The edge is one tokio
//! task per checked server ([`Checkers`]) that probes it (`probe`), feeds the
//! result to its `HealthState`, marks the server up or down, logs every flip
//! with its reason, and records the last result for [`status`].

mod checker;
mod probe;
pub mod status;

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use checker::Checkers;

/// The result of one check: passed or not, and why (`HTTP status 500`,
/// `connection refused`, `timeout after 1000ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub ok: bool,
    pub reason: String,
}

/// A change of a server's state, with the check that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flip {
    /// The new state: true when the server returns to rotation.
    pub up: bool,
    /// `connection refused, 3 checks failed in a row`.
    pub reason: String,
}

/// Consecutive check results of one server against its `fall` and `rise`
/// thresholds (haproxy's health counter). An up server goes down after
/// `fall` failures in a row; a down server comes back after `rise` passes
/// in a row; any other result resets the streak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    /// Length of the current streak of results opposite to `up`.
    streak: u32,
    fall: u32,
    rise: u32,
}

impl HealthState {
    /// A server in state `up` with no streak; `fall` and `rise` are at least 1.
    pub fn new(up: bool, fall: u32, rise: u32) -> Self {
        HealthState {
            up,
            streak: 0,
            fall: fall.max(1),
            rise: rise.max(1),
        }
    }

    /// Whether the server is in rotation.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Counts one check result; returns the flip when it changes the state.
    pub fn observe(&mut self, outcome: &CheckOutcome) -> Option<Flip> {
        if outcome.ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let (threshold, verb) = if self.up {
            (self.fall, "failed")
        } else {
            (self.rise, "passed")
        };
        if self.streak < threshold {
            return None;
        }
        self.up = outcome.ok;
        self.streak = 0;
        let checks = if threshold == 1 { "check" } else { "checks" };
        Some(Flip {
            up: self.up,
            reason: format!("{}, {threshold} {checks} {verb} in a row", outcome.reason),
        })
    }
}

/// What the status API shows of a server's checks; written by its checker.
#[derive(Debug, Default)]
pub struct HealthRecord(Mutex<RecordInner>);

#[derive(Clone, Debug, Default)]
struct RecordInner {
    last_check: Option<LastCheck>,
    last_change_unix_ms: Option<u64>,
}

/// The most recent check of a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheck {
    pub ok: bool,
    pub reason: String,
    /// When it finished, in ms since the Unix epoch.
    pub at_unix_ms: u64,
}

impl HealthRecord {
    /// Records a check, and a state change when `flipped`.
    fn record(&self, outcome: &CheckOutcome, flipped: bool) {
        let now = unix_ms();
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner.last_check = Some(LastCheck {
            ok: outcome.ok,
            reason: outcome.reason.clone(),
            at_unix_ms: now,
        });
        if flipped {
            inner.last_change_unix_ms = Some(now);
        }
    }

    /// The last check and the time of the last state change, if any.
    pub fn snapshot(&self) -> (Option<LastCheck>, Option<u64>) {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (inner.last_check, inner.last_change_unix_ms)
    }
}

/// HAProxy's name for a check's result, as an index into
/// [`crate::counters::CHECK_STATUSES`], and the HTTP status code (0: none).
/// A timeout counts as L4TOUT for TCP checks and L7TOUT for HTTP checks
/// (the probe does not say which step timed out).
pub fn check_status(outcome: &CheckOutcome, http: bool) -> (usize, u16) {
    let code = (outcome.reason.strip_prefix("HTTP status "))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let name = match (outcome.ok, http) {
        (true, false) => "L4OK",
        (true, true) => "L7OK",
        _ if code > 0 => "L7STS",
        _ if outcome.reason.starts_with("timeout") => {
            if http {
                "L7TOUT"
            } else {
                "L4TOUT"
            }
        }
        _ if outcome.reason.starts_with("TLS handshake") => "L6RSP",
        _ if http
            && [
                "sending",
                "reading",
                "malformed",
                "status line",
                "connection closed",
            ]
            .iter()
            .any(|p| outcome.reason.starts_with(p)) =>
        {
            "L7RSP"
        }
        _ => "L4CON",
    };
    let index = (crate::counters::CHECK_STATUSES.iter())
        .position(|s| *s == name)
        .unwrap_or(0);
    (index, code)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> CheckOutcome {
        CheckOutcome {
            ok: true,
            reason: "HTTP status 200".into(),
        }
    }
    fn fail() -> CheckOutcome {
        CheckOutcome {
            ok: false,
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn up_server_goes_down_after_fall_failures_in_a_row() {
        let mut s = HealthState::new(true, 3, 2);
        assert_eq!(s.observe(&fail()), None);
        assert_eq!(s.observe(&fail()), None);
        let flip = s.observe(&fail()).expect("third failure flips");
        assert!(!flip.up && !s.is_up());
        assert_eq!(flip.reason, "connection refused, 3 checks failed in a row");
        assert_eq!(s.observe(&fail()), None, "already down");
    }

    #[test]
    fn a_pass_resets_the_failure_streak() {
        let mut s = HealthState::new(true, 2, 2);
        assert_eq!(s.observe(&fail()), None);
        assert_eq!(s.observe(&pass()), None);
        assert_eq!(s.observe(&fail()), None);
        assert!(s.is_up());
        assert!(s.observe(&fail()).is_some());
    }

    #[test]
    fn down_server_comes_back_after_rise_passes_in_a_row() {
        let mut s = HealthState::new(false, 3, 2);
        assert_eq!(s.observe(&pass()), None);
        assert_eq!(s.observe(&fail()), None, "failure resets the streak");
        assert_eq!(s.observe(&pass()), None);
        let flip = s.observe(&pass()).expect("second pass in a row flips");
        assert!(flip.up && s.is_up());
        assert_eq!(flip.reason, "HTTP status 200, 2 checks passed in a row");
    }

    #[test]
    fn thresholds_of_one_flip_at_once_and_zero_counts_as_one() {
        let mut s = HealthState::new(true, 0, 1);
        assert_eq!(
            s.observe(&fail()).map(|f| f.reason),
            Some("connection refused, 1 check failed in a row".into())
        );
        assert!(s.observe(&pass()).is_some_and(|f| f.up));
    }

    #[test]
    fn record_keeps_the_last_check_and_the_last_change() {
        let r = HealthRecord::default();
        assert_eq!(r.snapshot(), (None, None));
        r.record(&fail(), false);
        let (last, change) = r.snapshot();
        assert_eq!(last.as_ref().map(|c| c.ok), Some(false));
        assert_eq!(change, None);
        r.record(&pass(), true);
        let (last, change) = r.snapshot();
        let last = last.unwrap();
        assert!(last.ok && last.reason == "HTTP status 200");
        assert_eq!(change, Some(last.at_unix_ms));
    }
}
