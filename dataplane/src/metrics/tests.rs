use std::time::Duration;

use super::*;
use crate::snapshot::{CheckSnapshot, ConfigSnapshot, ProcessSnapshot, TrafficSnapshot};

fn snapshot() -> Snapshot {
    let server = |name: &str, state| ServerSnapshot {
        name: name.into(),
        address: "127.0.0.1".into(),
        port: 80,
        state,
        weight: 1,
        backup: false,
        limit: 0,
        counters: ProxySnapshot::default(),
        idle_connections: 0,
        check: Some(CheckSnapshot {
            status: Some("L4CON"),
            code: 0,
            duration: Duration::from_millis(2),
            failures: 3,
            up_down: 1,
            downtime: Duration::from_secs(5),
            last_check: None,
            last_change_unix_ms: None,
        }),
    };
    let mut web = FrontendSnapshot {
        name: "default/we\"b".into(),
        mode: "http",
        limit: 100,
        traffic: TrafficSnapshot::default(),
        connections: 7,
        denied: 0,
        request_errors: 0,
        intercepted: 0,
    };
    web.traffic.http_responses[1] = 41;
    Snapshot {
        node: "n1".into(),
        process: ProcessSnapshot {
            start_unix_ms: 1_000_000,
            uptime: Duration::from_secs(3),
            current_connections: 2,
            connections_total: 9,
            threads: 1,
            dropped_logs: 3,
        },
        config: ConfigSnapshot {
            version: 4,
            applies: 5,
            rejections: 1,
            last_apply_ok: true,
            last_apply_unix_ms: 2_000_000,
        },
        frontends: vec![web],
        backends: vec![BackendSnapshot {
            name: "default/app".into(),
            mode: "http",
            up: true,
            counters: ProxySnapshot::default(),
            weight: 1,
            active_servers: 1,
            backup_servers: 0,
            checked: true,
            servers: vec![
                server("s1", ServerState::Up),
                server("s2", ServerState::Down),
            ],
        }],
        virtual_ips: Vec::new(),
    }
}

#[test]
fn haproxy_names_labels_and_one_header_per_family() {
    let text = render(&snapshot());
    for line in [
        r#"haproxy_frontend_http_responses_total{proxy="default/we\"b",code="2xx"} 41"#,
        r#"haproxy_frontend_connections_total{proxy="default/we\"b"} 7"#,
        r#"haproxy_server_status{proxy="default/app",server="s2",state="DOWN"} 1"#,
        r#"haproxy_server_status{proxy="default/app",server="s2",state="UP"} 0"#,
        r#"haproxy_server_status{proxy="default/app",server="s1",state="UP"} 1"#,
        r#"haproxy_server_check_status{proxy="default/app",server="s1",state="L4CON"} 1"#,
        r#"haproxy_server_downtime_seconds_total{proxy="default/app",server="s1"} 5"#,
        r#"haproxy_backend_active_servers{proxy="default/app"} 1"#,
        "haproxy_process_connections_total 9",
        r#"fairlead_config_version{node="n1"} 4"#,
        "# TYPE haproxy_server_check_failures_total counter",
        "# TYPE haproxy_backend_current_sessions gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(line), "{line} twice");
    }
    // Every sample belongs to the family declared last.
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "{line}");
        }
    }
}
