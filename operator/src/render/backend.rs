//! Backend -> dataplane backend: defaults, static servers, then the ready
//! endpoints of a Service.

use fairlead_crds::{Backend, Balance};
use fairlead_dataplane::config;

use super::{Report, Snapshot, endpoints, health, millis, mode};

/// Default `timeouts.connect` (haproxy `timeout connect`).
const CONNECT_TIMEOUT: &str = "10s";
/// Default `timeouts.server` (haproxy `timeout server`).
const SERVER_TIMEOUT: &str = "1m";
/// Default `retries`.
const RETRIES: u32 = 3;

/// Renders one Backend named `name` (`namespace/name`); problems go to `report`.
pub(super) fn render_backend(
    name: &str,
    namespace: &str,
    backend: &Backend,
    snapshot: &Snapshot,
    report: &mut Report,
) -> config::Backend {
    let spec = &backend.spec;
    let mut servers = Vec::with_capacity(spec.servers.len());
    for (i, s) in spec.servers.iter().enumerate() {
        let field = format!("spec.servers[{i}]");
        let port = report.port(&format!("{field}.port"), s.port);
        // validate_backend has checked the ranges.
        servers.push(config::Server {
            weight: s.weight.map_or(1, |w| w as u32),
            backup: s.backup.unwrap_or(false),
            max_connections: s.max_connections.map_or(0, |m| m as u32),
            ..config::Server::new(s.name.clone(), s.address.clone(), port)
        });
    }
    if let Some(service) = &spec.service {
        for server in endpoints::service_servers(namespace, service, snapshot, report) {
            let taken = servers.iter().any(|s| s.name == server.name);
            let name = if taken {
                endpoints::address_port(&server.address, server.port)
            } else {
                server.name.clone()
            };
            servers.push(config::Server { name, ..server });
        }
    }
    let timeouts = spec.timeouts.as_ref();
    let retries = spec.retries.map_or(RETRIES, |r| r as u32);
    config::Backend {
        connect_timeout_ms: millis(
            report,
            "spec.timeouts.connect",
            timeouts
                .and_then(|t| t.connect.as_deref())
                .unwrap_or(CONNECT_TIMEOUT),
        ),
        server_timeout_ms: millis(
            report,
            "spec.timeouts.server",
            timeouts
                .and_then(|t| t.server.as_deref())
                .unwrap_or(SERVER_TIMEOUT),
        ),
        retries,
        redispatch: spec.redispatch.unwrap_or(true),
        health_check: (spec.health_check.as_ref()).map(|h| health::health_check(h, report)),
        ..config::Backend::new(name, mode(spec.mode), balance(spec.balance), servers)
    }
}

fn balance(balance: Option<Balance>) -> config::Balance {
    match balance.unwrap_or(Balance::Roundrobin) {
        Balance::Roundrobin => config::Balance::Roundrobin,
        Balance::Leastconn => config::Balance::Leastconn,
        Balance::Source => config::Balance::Source,
        Balance::Uri => config::Balance::Uri,
        Balance::Random => config::Balance::Random,
        Balance::First => config::Balance::First,
    }
}
