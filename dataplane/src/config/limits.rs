//! Upper bounds of a config: how many objects and how long each string, so
//! that a config (pushed or rendered) cannot take the dataplane's memory.
//! The admin API refuses a body over [`MAX_CONFIG_BYTES`] with 413 before
//! reading it all, and one with more than [`MAX_JSON_OBJECTS`] JSON objects
//! with 422 before parsing it ([`count_json_objects`]);
//! [`DataplaneConfig::validate`] checks the rest.
//!
//! | what | at most |
//! |---|---|
//! | config body (JSON) | 16 MiB |
//! | JSON objects in it | 200,000 |
//! | frontends | 1,000 |
//! | backends | 10,000 |
//! | servers, all backends | 100,000 |
//! | servers of one backend | 10,000 |
//! | routes of one frontend | 10,000 |
//! | virtual IPs | 1,000 |
//! | a name (frontend, backend, server, virtual IP: `namespace/name`) | 317 characters |
//! | a host (route host or SNI, server address, TLS server name, health-check host) | 253 |
//! | a path (route path or prefix, health-check path) | 2,048 |
//! | one request or response rule, as JSON | 16,384 bytes |

use super::{Backend, DataplaneConfig, Frontend};

/// Largest config body, in bytes.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;
/// Most JSON objects (`{...}`) in a config body.
pub const MAX_JSON_OBJECTS: usize = 200_000;
/// Most frontends.
pub const MAX_FRONTENDS: usize = 1_000;
/// Most backends.
pub const MAX_BACKENDS: usize = 10_000;
/// Most servers in all backends together: 1.5 KiB each once applied, 5 KiB
/// with health checks (scripts/bench-config-scale.py), so 150-500 MiB at the
/// limit (25,000 took up to 430 MiB before servers got lighter).
pub const MAX_SERVERS: usize = 100_000;
/// Most servers in one backend.
pub const MAX_SERVERS_PER_BACKEND: usize = 10_000;
/// Most routes of one frontend.
pub const MAX_ROUTES: usize = 10_000;
/// Most virtual IPs.
pub const MAX_VIRTUAL_IPS: usize = 1_000;
/// Longest name: a Kubernetes namespace (63), `/`, a name (253).
pub const MAX_NAME: usize = 317;
/// Longest host name (DNS).
pub const MAX_HOST: usize = 253;
/// Longest path.
pub const MAX_PATH: usize = 2_048;
/// Largest request or response rule, serialized as JSON.
pub const MAX_RULE_BYTES: usize = 16_384;

/// The JSON objects in `json` (`{` outside strings), counting stops past
/// `limit`: a single pass, no allocation.
pub fn count_json_objects(json: &[u8], limit: usize) -> usize {
    let (mut count, mut in_string, mut escaped) = (0, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b'{' {
            count += 1;
            if count > limit {
                break;
            }
        }
    }
    count
}

/// Every bound `config` exceeds, as `object: field: reason`.
pub(super) fn problems(config: &DataplaneConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut too_many = |field: &str, count: usize, max: usize| {
        if count > max {
            problems.push(format!("config: {field}: {count} is more than {max}"));
        }
    };
    too_many("frontends", config.frontends.len(), MAX_FRONTENDS);
    too_many("backends", config.backends.len(), MAX_BACKENDS);
    too_many("virtualIPs", config.virtual_ips.len(), MAX_VIRTUAL_IPS);
    let servers = config.backends.iter().map(|b| b.servers.len()).sum();
    too_many("backends[*].servers (all)", servers, MAX_SERVERS);
    if !problems.is_empty() {
        // Too big to look into further.
        return problems;
    }
    for frontend in &config.frontends {
        frontend_problems(frontend, &mut problems);
    }
    for backend in &config.backends {
        backend_problems(backend, &mut problems);
    }
    for vip in &config.virtual_ips {
        let object = format!("virtualIP {}", shown(&vip.name));
        long(&mut problems, &object, "name", &vip.name, MAX_NAME);
    }
    problems
}

fn frontend_problems(f: &Frontend, problems: &mut Vec<String>) {
    let object = format!("frontend {}", shown(&f.name));
    long(problems, &object, "name", &f.name, MAX_NAME);
    if f.routes.len() > MAX_ROUTES {
        let reason = format!("{} is more than {MAX_ROUTES}", f.routes.len());
        problems.push(format!("{object}: routes: {reason}"));
        return;
    }
    for (i, r) in f.routes.iter().enumerate() {
        let field = |name: &str| format!("routes[{i}].{name}");
        for (name, value, max) in [
            ("host", &r.host, MAX_HOST),
            ("sni", &r.sni, MAX_HOST),
            ("path", &r.path, MAX_PATH),
            ("pathPrefix", &r.path_prefix, MAX_PATH),
        ] {
            if let Some(value) = value {
                long(problems, &object, &field(name), value, max);
            }
        }
    }
    let request = f.request_rules.iter().map(serde_json::to_string);
    let response = f.response_rules.iter().map(serde_json::to_string);
    for (kind, rules) in [
        ("requestRules", request.collect::<Vec<_>>()),
        ("responseRules", response.collect()),
    ] {
        for (i, json) in rules.into_iter().enumerate() {
            let bytes = json.map_or(0, |j| j.len());
            if bytes > MAX_RULE_BYTES {
                problems.push(format!(
                    "{object}: {kind}[{i}]: {bytes} bytes as JSON, more than {MAX_RULE_BYTES}"
                ));
            }
        }
    }
}

fn backend_problems(b: &Backend, problems: &mut Vec<String>) {
    let object = format!("backend {}", shown(&b.name));
    long(problems, &object, "name", &b.name, MAX_NAME);
    if b.servers.len() > MAX_SERVERS_PER_BACKEND {
        let reason = format!("{} is more than {MAX_SERVERS_PER_BACKEND}", b.servers.len());
        problems.push(format!("{object}: servers: {reason}"));
        return;
    }
    for (i, s) in b.servers.iter().enumerate() {
        long(
            problems,
            &object,
            &format!("servers[{i}].name"),
            &s.name,
            MAX_NAME,
        );
        let field = format!("servers[{i}].address");
        long(problems, &object, &field, &s.address, MAX_HOST);
    }
    if let Some(name) = b.tls.as_ref().and_then(|t| t.server_name.as_ref()) {
        long(problems, &object, "tls.serverName", name, MAX_HOST);
    }
    if let Some(http) = b.health_check.as_ref().and_then(|h| h.http.as_ref()) {
        long(
            problems,
            &object,
            "healthCheck.http.path",
            &http.path,
            MAX_PATH,
        );
        if let Some(host) = &http.host {
            long(problems, &object, "healthCheck.http.host", host, MAX_HOST);
        }
    }
}

/// Adds a problem when `value` is longer than `max` characters.
fn long(problems: &mut Vec<String>, object: &str, field: &str, value: &str, max: usize) {
    let chars = value.chars().count();
    if chars > max {
        problems.push(format!(
            "{object}: {field}: {chars} characters, more than {max}"
        ));
    }
}

/// A name as shown in a problem: cut short when too long to print.
fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &name[..cut]),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, Mode, Route, Server};

    #[test]
    fn json_objects_are_counted_outside_strings_only() {
        assert_eq!(
            count_json_objects(br#"{"a": [{}, {"b": "{{\"{"}]}"#, 100),
            3
        );
        assert_eq!(count_json_objects(b"[]", 100), 0);
        assert_eq!(count_json_objects(&b"{".repeat(1000), 10), 11);
    }

    fn config_with(servers: usize, per_backend: usize) -> DataplaneConfig {
        let backends = (0..servers.div_ceil(per_backend))
            .map(|b| {
                let n = per_backend.min(servers - b * per_backend);
                let servers = (0..n)
                    .map(|i| Server::new(format!("s{i}"), "10.0.0.1", 80))
                    .collect();
                Backend::new(format!("b{b}"), Mode::Http, Balance::Roundrobin, servers)
            })
            .collect();
        DataplaneConfig {
            backends,
            ..Default::default()
        }
    }

    #[test]
    fn counts_are_bounded() {
        assert!(problems(&config_with(MAX_SERVERS, MAX_SERVERS_PER_BACKEND)).is_empty());
        assert_eq!(
            problems(&config_with(MAX_SERVERS + 1, MAX_SERVERS_PER_BACKEND)),
            ["config: backends[*].servers (all): 100001 is more than 100000"]
        );
        assert_eq!(
            problems(&config_with(MAX_SERVERS_PER_BACKEND + 1, MAX_SERVERS)),
            ["backend b0: servers: 10001 is more than 10000"]
        );
    }

    #[test]
    fn strings_are_bounded_and_long_names_shown_cut() {
        let long_name = "n".repeat(10 << 20);
        let mut config = config_with(1, 1);
        config.backends[0].servers[0].address = "a".repeat(MAX_HOST + 1);
        config.backends[0].name = long_name.clone();
        let mut fe = Frontend::new("fe", Mode::Http, "127.0.0.1:80".parse().unwrap());
        fe.routes.push(Route {
            path_prefix: Some(format!("/{}", "p".repeat(MAX_PATH))),
            backend: "b".into(),
            ..Default::default()
        });
        config.frontends.push(fe);
        let problems = problems(&config);
        let cut = format!("backend {}...", "n".repeat(64));
        assert_eq!(
            problems,
            [
                "frontend fe: routes[0].pathPrefix: 2049 characters, more than 2048".to_string(),
                format!("{cut}: name: 10485760 characters, more than 317"),
                format!("{cut}: servers[0].address: 254 characters, more than 253"),
            ]
        );
        // At the limit is fine.
        let mut config = config_with(1, 1);
        config.backends[0].name = "n".repeat(MAX_NAME);
        assert!(super::problems(&config).is_empty());
    }
}
