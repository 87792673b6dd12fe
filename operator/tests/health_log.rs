//! `fairlead run` logs health checks: every state change with its reason, and
//! with `log: true` (`option log-health-checks`) every failed check too.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free loopback port (there is a small race until it is used).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn failed_checks_and_the_state_change_are_logged_with_their_reason() {
    let (port, dead) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("fairlead-health-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lb.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web}}
spec:
  bind: {{address: 127.0.0.1, port: {port}}}
  defaultBackend: app
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: app}}
spec:
  servers: [{{name: gone, address: 127.0.0.1, port: {dead}}}]
  healthCheck: {{interval: 100ms, fall: 2, log: true}}
"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fairlead"))
        .args(["run", "-f", file.to_str().unwrap(), "--threads", "1"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let expected = [
        "health check failed backend=default/app server=gone",
        "server is down backend=default/app server=gone",
    ];
    while !expected
        .iter()
        .all(|e| seen.iter().any(|l: &String| l.contains(e)))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(dir).unwrap();
    let log = seen.join("\n");
    let failed = seen.iter().find(|l| l.contains(expected[0]));
    assert!(
        failed.is_some_and(|l| l.ends_with("reason=connection refused")),
        "{log}"
    );
    let down = seen.iter().find(|l| l.contains(expected[1]));
    assert!(
        down.is_some_and(|l| l.contains("state=\"down\"")
            && l.ends_with("reason=connection refused, 2 checks failed in a row")),
        "{log}"
    );
}
