//! Active health checks of a backend's servers (haproxy `check inter fall
//! rise`, `option httpchk`, `tcp-check ... port`).
//!
//! **Initial state.** A server starts *up* (as in HAProxy) and leaves rotation
//! after `fall` consecutive failed checks. Starting down would answer 503 for
//! up to one interval after every start and every added server; starting up
//! costs at most a few failed connects, which retries with redispatch absorb.
//! A server whose check settings change keeps its current state.

use serde::{Deserialize, Serialize};

/// How the servers of one backend are checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Time from the start of one check to the start of the next, in ms (haproxy `inter`). Default 2000.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Limit for one check, connect included, in ms; at most `intervalMs`. Default 1000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive failed checks that take an up server out of rotation, at least 1. Default 3.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Consecutive passed checks that bring a down server back, at least 1. Default 2.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Port to check instead of the server's own port. Default none (the server port).
    #[serde(default)]
    pub port: Option<u16>,
    /// Check with an HTTP request; without it a check is a TCP connect. Default none.
    #[serde(default)]
    pub http: Option<HttpCheck>,
    /// Also log every failed check, not only state changes (haproxy
    /// `option log-health-checks`). Default false.
    #[serde(default)]
    pub log: bool,
}

/// An HTTP check: one request with `Connection: close`, judged by its status;
/// over TLS (the backend's CA, SNI and client certificate) when the backend has `tls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Request method, upper-case letters. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request path (and query), starting with `/`. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Host header. Default none: the server's address.
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that pass, inclusive ranges within 100-599; not empty. Default `[200-399]`.
    #[serde(default = "default_expect_status")]
    pub expect_status: Vec<StatusRange>,
}

/// An inclusive range of HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRange {
    /// Lowest passing status.
    pub from: u16,
    /// Highest passing status.
    pub to: u16,
}

fn default_interval_ms() -> u64 {
    2_000
}
fn default_timeout_ms() -> u64 {
    1_000
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    2
}
fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_expect_status() -> Vec<StatusRange> {
    vec![StatusRange { from: 200, to: 399 }]
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            fall: default_fall(),
            rise: default_rise(),
            port: None,
            http: None,
            log: false,
        }
    }
}

impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            method: default_method(),
            path: default_path(),
            host: None,
            expect_status: default_expect_status(),
        }
    }
}

impl StatusRange {
    /// Whether `status` lies in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

impl HealthCheck {
    /// Every problem as (field under `healthCheck.`, reason); empty when valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, reason: String| problems.push((field.to_string(), reason));
        if self.interval_ms == 0 {
            bad("intervalMs", "must be greater than 0".into());
        }
        if self.timeout_ms == 0 {
            bad("timeoutMs", "must be greater than 0".into());
        }
        if self.timeout_ms > self.interval_ms {
            bad(
                "timeoutMs",
                format!(
                    "{} is longer than intervalMs {}",
                    self.timeout_ms, self.interval_ms
                ),
            );
        }
        if self.fall == 0 {
            bad("fall", "must be at least 1".into());
        }
        if self.rise == 0 {
            bad("rise", "must be at least 1".into());
        }
        if self.port == Some(0) {
            bad("port", "0 is not a port (1-65535)".into());
        }
        let Some(http) = &self.http else {
            return problems;
        };
        if http.method.is_empty() || !http.method.bytes().all(|b| b.is_ascii_uppercase()) {
            bad(
                "http.method",
                format!("{:?} is not an upper-case HTTP method", http.method),
            );
        }
        if !http.path.starts_with('/') || !is_token_text(&http.path) {
            bad(
                "http.path",
                format!(
                    "{:?} must start with / and hold no spaces or control characters",
                    http.path
                ),
            );
        }
        if let Some(host) = &http.host
            && (host.is_empty() || !is_token_text(host))
        {
            bad(
                "http.host",
                format!("{host:?} is empty or holds spaces or control characters"),
            );
        }
        if http.expect_status.is_empty() {
            bad("http.expectStatus", "must list at least one range".into());
        }
        for (i, r) in http.expect_status.iter().enumerate() {
            if !(100..=599).contains(&r.from) || !(100..=599).contains(&r.to) || r.from > r.to {
                bad(
                    &format!("http.expectStatus[{i}]"),
                    format!("{}-{} is not a range within 100-599", r.from, r.to),
                );
            }
        }
        problems
    }
}

/// Visible ASCII only: safe to place in a request line or header.
fn is_token_text(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields() {
        let check: HealthCheck = serde_json::from_str(r#"{"http":{}}"#).unwrap();
        assert_eq!(
            check,
            HealthCheck {
                http: Some(HttpCheck::default()),
                ..HealthCheck::default()
            }
        );
        assert_eq!((check.interval_ms, check.timeout_ms), (2000, 1000));
        assert_eq!((check.fall, check.rise), (3, 2));
        assert!(check.problems().is_empty());
    }

    #[test]
    fn problems_name_each_field() {
        let check = HealthCheck {
            interval_ms: 100,
            timeout_ms: 200,
            fall: 0,
            rise: 0,
            port: Some(0),
            http: Some(HttpCheck {
                method: "get".into(),
                path: "/a b".into(),
                host: Some("x\r\ny".into()),
                expect_status: vec![StatusRange { from: 400, to: 200 }],
            }),
            log: false,
        };
        let fields: Vec<String> = check.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "timeoutMs",
                "fall",
                "rise",
                "port",
                "http.method",
                "http.path",
                "http.host",
                "http.expectStatus[0]"
            ]
        );
    }

    #[test]
    fn status_range_is_inclusive() {
        let r = StatusRange { from: 200, to: 399 };
        assert!(r.contains(200) && r.contains(399));
        assert!(!r.contains(199) && !r.contains(400));
    }
}
