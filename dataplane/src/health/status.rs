//! What [`crate::Engine::status`] reports: the running version and, per
//! backend and server, the health state, the last check and the last change.

use std::sync::Arc;

use serde::Serialize;

use super::LastCheck;
use crate::backend::BackendRuntime;
use crate::balance::Candidate;

/// The engine's state, for the admin API, the operator and the stats page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatus {
    /// Version of the running config (0 before the first apply).
    pub version: u64,
    /// Every backend, sorted by name.
    pub backends: Vec<BackendStatus>,
    /// Every virtual IP this node takes part in, sorted by name.
    #[serde(rename = "virtualIPs")]
    pub virtual_ips: Vec<crate::vrrp::VirtualIpStatus>,
}

/// One backend's servers, in config order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    pub name: String,
    pub servers: Vec<ServerStatus>,
}

/// Health of one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// `up` or `down` when checked; `unchecked` when its backend has no health check.
    pub state: ServerState,
    /// The most recent check; none before the first.
    pub last_check: Option<LastCheck>,
    /// When the state last changed by a check, in ms since the Unix epoch; none before.
    pub last_change_unix_ms: Option<u64>,
    /// Connections or requests being served by the server now.
    pub active_connections: u32,
}

/// A server's place in rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Checked and in rotation (also before the first check: servers start up).
    Up,
    /// Checked and out of rotation.
    Down,
    /// Not checked: always in rotation.
    Unchecked,
}

/// The status of `backends`, sorted by name.
pub(crate) fn engine_status<'a>(
    version: u64,
    backends: impl IntoIterator<Item = &'a Arc<BackendRuntime>>,
) -> EngineStatus {
    let mut backends: Vec<BackendStatus> = backends.into_iter().map(backend_status).collect();
    backends.sort_by(|a, b| a.name.cmp(&b.name));
    EngineStatus {
        version,
        backends,
        virtual_ips: Vec::new(),
    }
}

fn backend_status(backend: &Arc<BackendRuntime>) -> BackendStatus {
    let checked = backend.spec.health_check.is_some();
    let servers = backend
        .servers
        .iter()
        .map(|s| {
            let (last_check, last_change_unix_ms) = s.shared.health.snapshot();
            let state = match (checked, s.is_up()) {
                (false, _) => ServerState::Unchecked,
                (true, true) => ServerState::Up,
                (true, false) => ServerState::Down,
            };
            ServerStatus {
                name: s.spec.name.clone(),
                address: s.spec.address.clone(),
                port: s.spec.port,
                state,
                last_check,
                last_change_unix_ms,
                active_connections: s.active(),
            }
        })
        .collect();
    BackendStatus {
        name: backend.spec.name.clone(),
        servers,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Backend, Balance, HealthCheck, Mode, Server};

    #[test]
    fn states_and_camel_case_json() {
        let servers = vec![Server::new("s1", "127.0.0.1", 81)];
        let plain = Backend::new("b-plain", Mode::Http, Balance::Roundrobin, servers.clone());
        let mut checked = Backend::new("a-checked", Mode::Http, Balance::Roundrobin, servers);
        checked.health_check = Some(HealthCheck::default());
        let plain = Arc::new(BackendRuntime::build(plain, &HashMap::new()));
        let checked = Arc::new(BackendRuntime::build(checked, &HashMap::new()));
        checked.servers[0].shared.set_up(false);
        let status = engine_status(7, [&plain, &checked]);
        assert_eq!(status.backends[0].name, "a-checked");
        assert_eq!(status.backends[0].servers[0].state, ServerState::Down);
        assert_eq!(status.backends[1].servers[0].state, ServerState::Unchecked);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["version"], 7);
        let server = &json["backends"][0]["servers"][0];
        assert_eq!(server["state"], "down");
        assert_eq!(server["lastCheck"], serde_json::Value::Null);
        assert_eq!(server["activeConnections"], 0);
        assert_eq!(server["port"], 81);
    }
}
