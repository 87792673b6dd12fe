//! `fairlead run` logs health checks: every state change with its reason, and
//! with `log: true` (`option log-health-checks`) every failed check too; and
//! it warns when TLS to servers is not verified.

mod common;

use common::{Running, free_port, scratch, web_manifests};

#[test]
fn failed_checks_and_the_state_change_are_logged_with_their_reason() {
    let (port, dead) = (free_port(), free_port());
    let dir = scratch("health-log");
    let file = dir.join("lb.yaml");
    let check = "  healthCheck: {interval: 100ms, fall: 2, log: true}
";
    std::fs::write(&file, web_manifests(port, "gone", dead, check)).unwrap();
    let run = Running::start(&file, &[]);
    let failed = run.wait_for("health check failed backend=default/app server=gone");
    assert!(failed.ends_with("reason=connection refused"), "{failed}");
    let down = run.wait_for("server is down backend=default/app server=gone");
    assert!(
        down.contains("state=\"down\"")
            && down.ends_with("reason=connection refused, 2 checks failed in a row"),
        "{down}"
    );
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unverified_tls_to_servers_is_warned_about() {
    let (port, server) = (free_port(), free_port());
    let dir = scratch("insecure-log");
    let file = dir.join("lb.yaml");
    let tls = "  tls: {insecureSkipVerify: true}
";
    std::fs::write(&file, web_manifests(port, "s", server, tls)).unwrap();
    let run = Running::start(&file, &[]);
    let warning = run.wait_for("TLS to servers is not verified (insecureSkipVerify)");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("backend=default/app"), "{warning}");
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}
