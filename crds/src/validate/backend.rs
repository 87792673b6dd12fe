//! Validation of `BackendSpec`.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Errors, FieldError};
use crate::{
    Mode,
    backend::{BackendSpec, Balance, HealthCheck, StaticServer},
};

/// Every problem in a Backend spec; empty when it is valid.
pub fn validate_backend(spec: &BackendSpec) -> Vec<FieldError> {
    if let Some(problems) = super::out_of_bounds(spec) {
        return problems;
    }
    let mut errors = Errors::default();
    if spec.servers.is_empty() && spec.service.is_none() {
        errors.push("spec", "set servers, service or both");
    }
    if spec.balance == Some(Balance::Uri) && spec.mode == Some(Mode::Tcp) {
        errors.push("spec.balance", "uri needs spec.mode http");
    }
    let mut names = BTreeSet::new();
    for (i, s) in spec.servers.iter().enumerate() {
        server(&mut errors, &format!("spec.servers[{i}]"), s);
        if !names.insert(s.name.as_str()) {
            errors.push(
                format!("spec.servers[{i}].name"),
                format!("{:?} is used by an earlier server", s.name),
            );
        }
    }
    if let Some(service) = &spec.service {
        errors.not_empty("spec.service.name", &service.name);
        match &service.port {
            IntOrString::Int(port) => errors.port("spec.service.port", *port),
            IntOrString::String(name) => errors.not_empty("spec.service.port", name),
        }
    }
    if let Some(check) = &spec.health_check {
        health_check(&mut errors, check);
    }
    if let Some(tls) = &spec.tls {
        for (field, secret) in [
            ("spec.tls.caSecret", &tls.ca_secret),
            ("spec.tls.clientCertSecret", &tls.client_cert_secret),
            ("spec.tls.serverName", &tls.server_name),
        ] {
            if let Some(secret) = secret {
                errors.not_empty(field, secret);
            }
        }
    }
    if let Some(timeouts) = &spec.timeouts {
        errors.duration("spec.timeouts.connect", timeouts.connect.as_ref());
        errors.duration("spec.timeouts.server", timeouts.server.as_ref());
    }
    errors.range("spec.retries", spec.retries, 0, 10);
    errors.into_vec()
}

fn server(errors: &mut Errors, field: &str, server: &StaticServer) {
    errors.not_empty(&format!("{field}.name"), &server.name);
    if server.name.len() > 63 {
        errors.push(format!("{field}.name"), "is longer than 63 characters");
    }
    errors.not_empty(&format!("{field}.address"), &server.address);
    if server
        .address
        .contains(|c: char| c.is_whitespace() || c == '/')
    {
        errors.push(
            format!("{field}.address"),
            format!("{:?} is not an IP address or host name", server.address),
        );
    }
    errors.port(&format!("{field}.port"), server.port);
    errors.range(&format!("{field}.weight"), server.weight, 1, 256);
    errors.range(
        &format!("{field}.maxConnections"),
        server.max_connections,
        0,
        i32::MAX,
    );
}

fn health_check(errors: &mut Errors, check: &HealthCheck) {
    for (field, value) in [
        ("spec.healthCheck.interval", &check.interval),
        ("spec.healthCheck.timeout", &check.timeout),
    ] {
        if errors.duration(field, value.as_ref()) == Some(std::time::Duration::ZERO) {
            errors.push(field, "must be greater than 0s");
        }
    }
    errors.range("spec.healthCheck.fall", check.fall, 1, i32::MAX);
    errors.range("spec.healthCheck.rise", check.rise, 1, i32::MAX);
    if let Some(port) = check.port {
        errors.port("spec.healthCheck.port", port);
    }
    let Some(http) = &check.http else {
        return;
    };
    if let Some(method) = &http.method
        && (method.is_empty() || method.bytes().any(|b| !b.is_ascii_uppercase()))
    {
        errors.push(
            "spec.healthCheck.http.method",
            format!("{method:?} is not an upper-case HTTP method"),
        );
    }
    errors.path("spec.healthCheck.http.path", http.path.as_ref());
    if let Some(host) = &http.host {
        errors.header_value("spec.healthCheck.http.host", host);
    }
    for (i, status) in http.expect_status.iter().enumerate() {
        if parse_status_range(status).is_none() {
            errors.push(
                format!("spec.healthCheck.http.expectStatus[{i}]"),
                format!("{status:?} is not a status (200) or range (200-399) within 100-599"),
            );
        }
    }
}

/// Parses `200` or `200-399` into an inclusive range of HTTP statuses.
fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let status = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|code| s.len() == 3 && (100..=599).contains(code))
    };
    let (low, high) = match s.split_once('-') {
        Some((low, high)) => (status(low)?, status(high)?),
        None => (status(s)?, status(s)?),
    };
    (low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendTimeouts, HttpCheck, ServiceRef};
    use crate::validate::messages;

    fn server(name: &str, port: i32) -> StaticServer {
        StaticServer {
            name: name.into(),
            address: "10.0.0.11".into(),
            port,
            weight: None,
            backup: None,
            max_connections: None,
        }
    }

    fn spec() -> BackendSpec {
        BackendSpec {
            mode: None,
            balance: None,
            servers: vec![server("srv1", 8080)],
            service: None,
            health_check: None,
            tls: None,
            timeouts: None,
            retries: None,
            redispatch: None,
        }
    }

    fn errors(spec: &BackendSpec) -> Vec<String> {
        messages(&validate_backend(spec))
    }

    #[test]
    fn minimal_spec_is_valid() {
        assert_eq!(errors(&spec()), Vec::<String>::new());
    }

    #[test]
    fn needs_servers_or_a_service() {
        let mut s = spec();
        s.servers.clear();
        assert_eq!(errors(&s), ["spec: set servers, service or both"]);
        s.service = Some(ServiceRef {
            name: "app".into(),
            port: IntOrString::String("http".into()),
        });
        assert!(errors(&s).is_empty());
        s.service.as_mut().unwrap().port = IntOrString::Int(0);
        assert_eq!(errors(&s), ["spec.service.port: 0 is not a port (1-65535)"]);
    }

    #[test]
    fn servers_have_unique_names_ports_and_weights() {
        let mut s = spec();
        s.servers.push(server("srv2", 70000));
        s.servers.push(StaticServer {
            weight: Some(0),
            max_connections: Some(-1),
            address: "10.0.0.0/8".into(),
            ..server("srv1", 80)
        });
        assert_eq!(
            errors(&s),
            [
                "spec.servers[1].port: 70000 is not a port (1-65535)",
                "spec.servers[2].address: \"10.0.0.0/8\" is not an IP address or host name",
                "spec.servers[2].weight: 0 is out of range (1 to 256)",
                "spec.servers[2].maxConnections: -1 is out of range (0 to 2147483647)",
                "spec.servers[2].name: \"srv1\" is used by an earlier server",
            ]
        );
    }

    #[test]
    fn uri_balance_needs_http() {
        let mut s = spec();
        s.balance = Some(Balance::Uri);
        assert!(errors(&s).is_empty());
        s.mode = Some(Mode::Tcp);
        assert_eq!(errors(&s), ["spec.balance: uri needs spec.mode http"]);
    }

    #[test]
    fn health_check_values() {
        let mut s = spec();
        s.health_check = Some(HealthCheck {
            interval: Some("0s".into()),
            timeout: Some("2 s".into()),
            fall: Some(0),
            rise: None,
            port: Some(0),
            http: Some(HttpCheck {
                method: Some("get".into()),
                path: Some("healthz".into()),
                host: None,
                expect_status: vec![
                    "200".into(),
                    "200-399".into(),
                    "399-200".into(),
                    "600".into(),
                ],
            }),
            log: None,
        });
        let errors = errors(&s);
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.healthCheck.interval",
                "spec.healthCheck.timeout",
                "spec.healthCheck.fall",
                "spec.healthCheck.port",
                "spec.healthCheck.http.method",
                "spec.healthCheck.http.path",
                "spec.healthCheck.http.expectStatus[2]",
                "spec.healthCheck.http.expectStatus[3]",
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn timeouts_and_retries() {
        let mut s = spec();
        s.timeouts = Some(BackendTimeouts {
            connect: Some("10s".into()),
            server: Some("1.5m".into()),
        });
        s.retries = Some(11);
        let errors = errors(&s);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("spec.timeouts.server: \"1.5m\" is not a duration"));
        assert_eq!(errors[1], "spec.retries: 11 is out of range (0 to 10)");
    }

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Some((200, 200)));
        assert_eq!(parse_status_range("200-399"), Some((200, 399)));
        assert_eq!(parse_status_range("0200"), None);
        assert_eq!(parse_status_range("99"), None);
        assert_eq!(parse_status_range("200-"), None);
    }
}
