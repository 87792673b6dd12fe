//! Frontend -> dataplane frontend: bind, defaults, and backend references
//! checked against the backends that rendered.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use fairlead_crds::Frontend;
use fairlead_dataplane::config;

use super::{Report, millis, mode};

/// Default `bind.address`: every IPv4 address.
const BIND_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Default `timeouts.client` (haproxy `timeout client`).
const CLIENT_TIMEOUT: &str = "1m";
/// Default `maxConnections` (haproxy `maxconn`).
const MAX_CONNECTIONS: u32 = 10_000;

/// What a frontend may reference: each backend by `namespace/name`, with its
/// mode when it rendered, `None` when it exists but is invalid.
pub(super) type BackendModes = BTreeMap<String, Option<config::Mode>>;

/// Renders one Frontend named `name` (`namespace/name`); problems go to `report`.
pub(super) fn render_frontend(
    name: &str,
    namespace: &str,
    frontend: &Frontend,
    backends: &BackendModes,
    report: &mut Report,
) -> config::Frontend {
    let spec = &frontend.spec;
    let mode = mode(spec.mode);
    let address = match spec.bind.address.as_deref() {
        None => BIND_ADDRESS,
        Some(text) => text.parse().unwrap_or_else(|_| {
            report.error(
                "spec.bind.address",
                format!("{text:?} is not an IP address"),
            );
            BIND_ADDRESS
        }),
    };
    let port = report.port("spec.bind.port", spec.bind.port);
    let refer = Reference {
        namespace,
        mode,
        backends,
    };
    let default_backend = spec
        .default_backend
        .as_deref()
        .map(|b| refer.check(report, "spec.defaultBackend".into(), b));
    let mut routes = Vec::with_capacity(spec.routes.len());
    for (i, route) in spec.routes.iter().enumerate() {
        let m = &route.match_;
        routes.push(config::Route {
            host: m.host.clone(),
            path_prefix: m.path_prefix.clone(),
            path: m.path.clone(),
            sni: m.sni.clone(),
            backend: refer.check(report, format!("spec.routes[{i}].backend"), &route.backend),
        });
    }
    let request_rules = super::rules::request_rules(report, &spec.request_rules, |r, field, b| {
        refer.check(r, field, b)
    });
    let response_rules = super::rules::response_rules(report, &spec.response_rules);
    // validate_frontend has checked the range.
    let max_connections = spec.max_connections.map_or(MAX_CONNECTIONS, |n| n as u32);
    let client = spec
        .timeouts
        .as_ref()
        .and_then(|t| t.client.as_deref())
        .unwrap_or(CLIENT_TIMEOUT);
    let headers = spec.forwarded_headers.as_ref();
    let timeouts = spec.timeouts.clone().unwrap_or_default();
    let mut optional = |field: &str, value: Option<String>| {
        value.map(|v| millis(report, &format!("spec.timeouts.{field}"), &v))
    };
    let http_request_timeout_ms = optional("httpRequest", timeouts.http_request);
    let http_keep_alive_timeout_ms = optional("httpKeepAlive", timeouts.http_keep_alive);
    let tunnel_timeout_ms = optional("tunnel", timeouts.tunnel);
    config::Frontend {
        default_backend,
        routes,
        client_timeout_ms: millis(report, "spec.timeouts.client", client),
        http_request_timeout_ms,
        http_keep_alive_timeout_ms,
        tunnel_timeout_ms,
        max_connections,
        x_forwarded_for: headers.and_then(|h| h.x_forwarded_for).unwrap_or(true),
        forwarded: headers.and_then(|h| h.forwarded).unwrap_or(false),
        request_rules,
        response_rules,
        ..config::Frontend::new(name, mode, SocketAddr::new(address, port))
    }
}

/// Binds `frontend` to the first address of VirtualIP `name` (same namespace).
pub(super) fn bind_virtual_ip(
    frontend: &mut config::Frontend,
    namespace: &str,
    name: &str,
    virtual_ips: &BTreeMap<String, config::VirtualIp>,
    report: &mut Report,
) {
    let key = format!("{namespace}/{name}");
    match virtual_ips.get(&key) {
        Some(vip) => {
            frontend.bind.set_ip(vip.addresses[0].address);
            frontend.virtual_ip = Some(key);
        }
        None => report.error(
            "spec.bind.virtualIP",
            format!("VirtualIP {key} does not exist or is invalid"),
        ),
    }
}

/// Checks a Frontend's references to backends.
struct Reference<'a> {
    namespace: &'a str,
    mode: config::Mode,
    backends: &'a BackendModes,
}

impl Reference<'_> {
    /// Reports a missing, invalid or mismatched backend; returns its `namespace/name`.
    fn check(&self, report: &mut Report, field: String, backend: &str) -> String {
        let key = format!("{}/{backend}", self.namespace);
        let problem = match self.backends.get(&key) {
            None => Some(format!(
                "Backend {backend:?} does not exist in namespace {}",
                self.namespace
            )),
            Some(None) => Some(format!("Backend {backend:?} is invalid (see its errors)")),
            Some(Some(m)) if *m != self.mode => Some(format!(
                "Backend {backend:?} is in {} mode, this Frontend in {} mode",
                mode_name(*m),
                mode_name(self.mode)
            )),
            Some(Some(_)) => None,
        };
        if let Some(problem) = problem {
            report.error(field, problem);
        }
        key
    }
}

/// The mode as users write it.
pub(super) fn mode_name(mode: config::Mode) -> &'static str {
    match mode {
        config::Mode::Tcp => "tcp",
        config::Mode::Http => "http",
    }
}

/// Whether two listeners cannot both bind: same port, and the same address
/// or a wildcard of the same family on either side.
pub(super) fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}
