//! Validation of `FrontendSpec`.

use super::{Errors, FieldError, rules};
use crate::{
    Mode,
    frontend::{Bind, FrontendSpec, FrontendTls, LogFormat, Logging, Route, Stats, TlsMode},
};

/// Syslog facilities that HAProxy knows.
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Every problem in a Frontend spec; empty when it is valid.
pub fn validate_frontend(spec: &FrontendSpec) -> Vec<FieldError> {
    if let Some(problems) = super::out_of_bounds(spec) {
        return problems;
    }
    let mut errors = Errors::default();
    let http = spec.mode.unwrap_or(Mode::Http) == Mode::Http;
    let passthrough = spec
        .tls
        .as_ref()
        .is_some_and(|tls| tls.mode == Some(TlsMode::Passthrough));

    bind(&mut errors, &spec.bind);
    if let Some(tls) = &spec.tls {
        self::tls(&mut errors, tls, http);
    }
    if let Some(backend) = &spec.default_backend {
        errors.not_empty("spec.defaultBackend", backend);
    }
    errors.max_items("spec.routes", spec.routes.len(), 256);
    errors.max_items("spec.requestRules", spec.request_rules.len(), 128);
    errors.max_items("spec.responseRules", spec.response_rules.len(), 128);
    for (i, r) in spec.routes.iter().enumerate() {
        route(
            &mut errors,
            &format!("spec.routes[{i}]"),
            r,
            http,
            passthrough,
        );
    }
    if !http && !spec.request_rules.is_empty() {
        errors.push("spec.requestRules", "need spec.mode http");
    }
    for (i, rule) in spec.request_rules.iter().enumerate() {
        rules::request_rule(&mut errors, &format!("spec.requestRules[{i}]"), rule);
    }
    if !http && !spec.response_rules.is_empty() {
        errors.push("spec.responseRules", "need spec.mode http");
    }
    for (i, rule) in spec.response_rules.iter().enumerate() {
        rules::response_rule(&mut errors, &format!("spec.responseRules[{i}]"), rule);
    }
    if let Some(timeouts) = &spec.timeouts {
        errors.duration("spec.timeouts.client", timeouts.client.as_ref());
        errors.duration("spec.timeouts.httpRequest", timeouts.http_request.as_ref());
        errors.duration(
            "spec.timeouts.httpKeepAlive",
            timeouts.http_keep_alive.as_ref(),
        );
        errors.duration("spec.timeouts.tunnel", timeouts.tunnel.as_ref());
    }
    errors.range("spec.maxConnections", spec.max_connections, 1, i32::MAX);
    if let Some(logging) = &spec.logging {
        self::logging(&mut errors, logging, http);
    }
    if let Some(stats) = &spec.stats {
        self::stats(&mut errors, stats, http);
    }
    errors.into_vec()
}

fn bind(errors: &mut Errors, bind: &Bind) {
    errors.port("spec.bind.port", bind.port);
    if let Some(address) = &bind.address {
        errors.ip("spec.bind.address", address);
    }
    if let Some(vip) = &bind.virtual_ip {
        errors.not_empty("spec.bind.virtualIP", vip);
    }
    if bind.address.is_some() && bind.virtual_ip.is_some() {
        errors.push("spec.bind", "address and virtualIP are mutually exclusive");
    }
}

fn tls(errors: &mut Errors, tls: &FrontendTls, http: bool) {
    match tls.mode.unwrap_or(TlsMode::Terminate) {
        TlsMode::Terminate if tls.certificates.is_empty() => {
            errors.push(
                "spec.tls.certificates",
                "terminate needs at least one certificate",
            );
        }
        TlsMode::Passthrough if http => {
            errors.push("spec.tls.mode", "passthrough needs spec.mode tcp");
        }
        _ => {}
    }
    for (i, cert) in tls.certificates.iter().enumerate() {
        errors.not_empty(&format!("spec.tls.certificates[{i}].secret"), &cert.secret);
    }
    if let Some(version) = &tls.min_version
        && version != "1.2"
        && version != "1.3"
    {
        errors.push(
            "spec.tls.minVersion",
            format!("{version:?} is not a TLS version (\"1.2\" or \"1.3\")"),
        );
    }
    for (i, protocol) in tls.alpn.iter().enumerate() {
        if protocol.is_empty() || protocol.len() > 255 {
            errors.push(
                format!("spec.tls.alpn[{i}]"),
                "an ALPN protocol is 1 to 255 bytes",
            );
        }
    }
}

fn route(errors: &mut Errors, field: &str, route: &Route, http: bool, passthrough: bool) {
    let m = &route.match_;
    if m.host.is_none() && m.path_prefix.is_none() && m.path.is_none() && m.sni.is_none() {
        errors.push(
            format!("{field}.match"),
            "set at least one of host, pathPrefix, path, sni",
        );
    }
    if m.path.is_some() && m.path_prefix.is_some() {
        errors.push(
            format!("{field}.match"),
            "path and pathPrefix are mutually exclusive",
        );
    }
    errors.path(&format!("{field}.match.pathPrefix"), m.path_prefix.as_ref());
    errors.path(&format!("{field}.match.path"), m.path.as_ref());
    if !http && (m.host.is_some() || m.path_prefix.is_some() || m.path.is_some()) {
        errors.push(
            format!("{field}.match"),
            "host, pathPrefix and path need spec.mode http",
        );
    }
    if m.sni.is_some() && !passthrough {
        errors.push(
            format!("{field}.match.sni"),
            "sni needs spec.tls.mode passthrough",
        );
    }
    errors.not_empty(&format!("{field}.backend"), &route.backend);
}

fn logging(errors: &mut Errors, logging: &Logging, http: bool) {
    if logging.format == Some(LogFormat::Httplog) && !http {
        errors.push("spec.logging.format", "httplog needs spec.mode http");
    }
    if logging.stdout == Some(false) && logging.syslog.is_none() {
        errors.push("spec.logging.stdout", "false needs spec.logging.syslog");
    }
    let Some(syslog) = &logging.syslog else {
        return;
    };
    if let Some(tag) = &syslog.tag {
        let ok = !tag.is_empty()
            && tag.len() <= 48
            && tag
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'[' && b != b':');
        if !ok {
            errors.push(
                "spec.logging.syslog.tag",
                format!("{tag:?}: 1-48 printable ASCII characters, no [ or :"),
            );
        }
    }
    let valid_address = syslog
        .address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_address {
        errors.push(
            "spec.logging.syslog.address",
            format!("{:?} is not host:port", syslog.address),
        );
    }
    if let Some(facility) = &syslog.facility
        && !FACILITIES.contains(&facility.as_str())
    {
        errors.push(
            "spec.logging.syslog.facility",
            format!("{facility:?} is not a syslog facility (e.g. local0..local7, daemon)"),
        );
    }
}

fn stats(errors: &mut Errors, stats: &Stats, http: bool) {
    if !http {
        errors.push("spec.stats", "needs spec.mode http");
    }
    errors.path("spec.stats.path", stats.path.as_ref());
    errors.duration("spec.stats.refresh", stats.refresh.as_ref());
    errors.path("spec.stats.prometheusPath", stats.prometheus_path.as_ref());
    let paths = [
        ("spec.stats.path", &stats.path),
        ("spec.stats.prometheusPath", &stats.prometheus_path),
    ];
    for (field, path) in paths {
        if let Some(path) = path.as_ref().filter(|p| p.contains(['?', '#', ';'])) {
            errors.push(
                field,
                format!("{path:?} holds ?, # or ; (the page adds ;csv and ;json)"),
            );
        }
    }
    let page = stats.path.as_deref().unwrap_or("/stats");
    if stats.prometheus_path.as_deref() == Some(page) {
        errors.push(
            "spec.stats.prometheusPath",
            "must differ from the stats page path",
        );
    }
    if let Some(secret) = &stats.auth_secret {
        errors.not_empty("spec.stats.authSecret", secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::messages;
    use crate::{
        frontend::{CertificateRef, FrontendTimeouts, RouteMatch, Syslog},
        rules::{Deny, RequestRule},
    };

    fn spec() -> FrontendSpec {
        FrontendSpec {
            mode: None,
            bind: Bind {
                address: None,
                port: 8080,
                virtual_ip: None,
            },
            tls: None,
            default_backend: Some("app".into()),
            routes: vec![],
            request_rules: vec![],
            response_rules: vec![],
            timeouts: None,
            max_connections: None,
            forwarded_headers: None,
            logging: None,
            stats: None,
        }
    }

    fn errors(spec: &FrontendSpec) -> Vec<String> {
        messages(&validate_frontend(spec))
    }

    fn route(match_: RouteMatch) -> Route {
        Route {
            match_,
            backend: "api".into(),
        }
    }

    #[test]
    fn minimal_spec_is_valid() {
        assert_eq!(errors(&spec()), Vec::<String>::new());
    }

    #[test]
    fn bind_port_address_and_virtual_ip() {
        let mut s = spec();
        s.bind.port = 70000;
        s.bind.address = Some("0.0.0.0.0".into());
        s.bind.virtual_ip = Some("vip1".into());
        assert_eq!(
            errors(&s),
            [
                "spec.bind.port: 70000 is not a port (1-65535)",
                "spec.bind.address: \"0.0.0.0.0\" is not an IP address",
                "spec.bind: address and virtualIP are mutually exclusive",
            ]
        );
    }

    #[test]
    fn tls_terminate_needs_a_certificate_and_passthrough_needs_tcp() {
        let mut s = spec();
        s.tls = Some(FrontendTls {
            min_version: Some("1.1".into()),
            ..Default::default()
        });
        assert_eq!(
            errors(&s),
            [
                "spec.tls.certificates: terminate needs at least one certificate",
                "spec.tls.minVersion: \"1.1\" is not a TLS version (\"1.2\" or \"1.3\")",
            ]
        );
        s.tls = Some(FrontendTls {
            certificates: vec![CertificateRef {
                secret: "tls".into(),
            }],
            ..Default::default()
        });
        assert!(errors(&s).is_empty());
        s.tls = Some(FrontendTls {
            mode: Some(TlsMode::Passthrough),
            ..Default::default()
        });
        assert_eq!(
            errors(&s),
            ["spec.tls.mode: passthrough needs spec.mode tcp"]
        );
        s.mode = Some(Mode::Tcp);
        assert!(errors(&s).is_empty());
    }

    #[test]
    fn routes_match_on_something_and_sni_only_in_passthrough() {
        let mut s = spec();
        s.routes = vec![
            route(RouteMatch {
                host: Some("api.example.com".into()),
                path_prefix: Some("/v1".into()),
                ..Default::default()
            }),
            route(RouteMatch::default()),
            route(RouteMatch {
                path: Some("/a".into()),
                path_prefix: Some("b".into()),
                ..Default::default()
            }),
            route(RouteMatch {
                sni: Some("a.example.com".into()),
                ..Default::default()
            }),
        ];
        assert_eq!(
            errors(&s),
            [
                "spec.routes[1].match: set at least one of host, pathPrefix, path, sni",
                "spec.routes[2].match: path and pathPrefix are mutually exclusive",
                "spec.routes[2].match.pathPrefix: \"b\" does not start with /",
                "spec.routes[3].match.sni: sni needs spec.tls.mode passthrough",
            ]
        );
    }

    #[test]
    fn tcp_mode_has_no_http_features() {
        let mut s = spec();
        s.mode = Some(Mode::Tcp);
        s.request_rules = vec![RequestRule {
            deny: Some(Deny::default()),
            ..Default::default()
        }];
        s.stats = Some(Stats::default());
        s.routes = vec![route(RouteMatch {
            host: Some("a".into()),
            ..Default::default()
        })];
        assert_eq!(
            errors(&s),
            [
                "spec.routes[0].match: host, pathPrefix and path need spec.mode http",
                "spec.requestRules: need spec.mode http",
                "spec.stats: needs spec.mode http",
            ]
        );
    }

    #[test]
    fn rule_errors_carry_their_index() {
        let mut s = spec();
        s.request_rules = vec![
            RequestRule {
                deny: Some(Deny::default()),
                ..Default::default()
            },
            RequestRule::default(),
        ];
        let errors = errors(&s);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("spec.requestRules[1]: set exactly one action"));
    }

    #[test]
    fn timeouts_limits_logging_and_stats() {
        let mut s = spec();
        s.timeouts = Some(FrontendTimeouts {
            client: Some("1 minute".into()),
            http_request: Some("5s".into()),
            http_keep_alive: Some("0.5s".into()),
            tunnel: Some("1h".into()),
        });
        s.max_connections = Some(0);
        s.logging = Some(Logging {
            syslog: Some(Syslog {
                address: "127.0.0.1".into(),
                facility: Some("local9".into()),
                tag: None,
                format: None,
            }),
            ..Default::default()
        });
        s.stats = Some(Stats {
            path: Some("/stats".into()),
            refresh: Some("10".into()),
            prometheus_path: Some("/stats".into()),
            ..Default::default()
        });
        let errors = errors(&s);
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.timeouts.client",
                "spec.timeouts.httpKeepAlive",
                "spec.maxConnections",
                "spec.logging.syslog.address",
                "spec.logging.syslog.facility",
                "spec.stats.refresh",
                "spec.stats.prometheusPath",
            ],
            "{errors:#?}"
        );
    }
}
