//! `Backend.spec.healthCheck` -> the dataplane's health check: durations in
//! ms, defaults filled in, `expectStatus` strings (`200`, `200-399`) as ranges.

use fairlead_crds::backend::{HealthCheck, HttpCheck};
use fairlead_dataplane::config;

use super::{Report, millis};

/// Default `interval` (haproxy `inter`).
const INTERVAL: &str = "2s";
/// Default `timeout`, or the interval when that is shorter.
const TIMEOUT: &str = "1s";

/// Renders a validated health check; problems go to `report`.
pub(super) fn health_check(check: &HealthCheck, report: &mut Report) -> config::HealthCheck {
    let defaults = config::HealthCheck::default();
    let interval_ms = millis(
        report,
        "spec.healthCheck.interval",
        check.interval.as_deref().unwrap_or(INTERVAL),
    );
    let timeout_ms = match check.timeout.as_deref() {
        Some(text) => millis(report, "spec.healthCheck.timeout", text),
        None => millis(report, "spec.healthCheck.timeout", TIMEOUT).min(interval_ms),
    };
    if timeout_ms > interval_ms {
        report.error(
            "spec.healthCheck.timeout",
            format!("{timeout_ms}ms is longer than the interval ({interval_ms}ms)"),
        );
    }
    // validate_backend has checked fall, rise and port.
    config::HealthCheck {
        interval_ms,
        timeout_ms,
        fall: check.fall.map_or(defaults.fall, |n| n as u32),
        rise: check.rise.map_or(defaults.rise, |n| n as u32),
        port: check.port.map(|p| report.port("spec.healthCheck.port", p)),
        http: check.http.as_ref().map(|h| http_check(h, report)),
        log: check.log.unwrap_or(false),
    }
}

fn http_check(http: &HttpCheck, report: &mut Report) -> config::HttpCheck {
    let defaults = config::HttpCheck::default();
    let mut expect_status = Vec::with_capacity(http.expect_status.len());
    for (i, text) in http.expect_status.iter().enumerate() {
        match status_range(text) {
            Some(range) => expect_status.push(range),
            None => report.error(
                format!("spec.healthCheck.http.expectStatus[{i}]"),
                format!("{text:?} is not a status (200) or range (200-399)"),
            ),
        }
    }
    if expect_status.is_empty() {
        expect_status = defaults.expect_status;
    }
    config::HttpCheck {
        method: http.method.clone().unwrap_or(defaults.method),
        path: http.path.clone().unwrap_or(defaults.path),
        host: http.host.clone(),
        expect_status,
    }
}

/// `200` or `200-399`; the dataplane checks the bounds.
fn status_range(text: &str) -> Option<config::StatusRange> {
    let (from, to) = text.split_once('-').unwrap_or((text, text));
    Some(config::StatusRange {
        from: from.parse().ok()?,
        to: to.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(check: &HealthCheck) -> (config::HealthCheck, Vec<String>) {
        let mut report = Report::new("Backend default/app".into());
        let rendered = health_check(check, &mut report);
        let errors = report.errors.iter().map(|e| e.to_string()).collect();
        (rendered, errors)
    }

    fn empty() -> HealthCheck {
        HealthCheck {
            interval: None,
            timeout: None,
            fall: None,
            rise: None,
            port: None,
            http: None,
            log: None,
        }
    }

    #[test]
    fn defaults_match_the_dataplane_model() {
        let (rendered, errors) = render(&empty());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rendered, config::HealthCheck::default());
    }

    #[test]
    fn fields_map_with_durations_in_ms_and_status_ranges() {
        let check = HealthCheck {
            interval: Some("1m".into()),
            timeout: Some("1500ms".into()),
            fall: Some(5),
            rise: Some(1),
            port: Some(8081),
            http: Some(HttpCheck {
                method: Some("HEAD".into()),
                path: Some("/healthz".into()),
                host: Some("app.internal".into()),
                expect_status: vec!["204".into(), "300-399".into()],
            }),
            log: Some(true),
        };
        let (rendered, errors) = render(&check);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rendered,
            config::HealthCheck {
                interval_ms: 60_000,
                timeout_ms: 1_500,
                fall: 5,
                rise: 1,
                port: Some(8081),
                http: Some(config::HttpCheck {
                    method: "HEAD".into(),
                    path: "/healthz".into(),
                    host: Some("app.internal".into()),
                    expect_status: vec![
                        config::StatusRange { from: 204, to: 204 },
                        config::StatusRange { from: 300, to: 399 },
                    ],
                }),
                log: true,
            }
        );
    }

    #[test]
    fn default_timeout_is_at_most_the_interval() {
        let check = HealthCheck {
            interval: Some("100ms".into()),
            ..empty()
        };
        let (rendered, errors) = render(&check);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((rendered.interval_ms, rendered.timeout_ms), (100, 100));
    }

    #[test]
    fn timeout_longer_than_interval_names_the_field() {
        let check = HealthCheck {
            interval: Some("1s".into()),
            timeout: Some("2s".into()),
            ..empty()
        };
        let (_, errors) = render(&check);
        assert_eq!(
            errors,
            [
                "Backend default/app: spec.healthCheck.timeout: 2000ms is longer than the interval (1000ms)"
            ]
        );
    }
}
