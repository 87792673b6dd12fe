//! The `fairlead` binary: `check`, `render` and `run` as a user runs them.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::{Running, free_port, scratch, web_manifests};
use std::process::{Command, Output};
use std::time::Duration;

fn fairlead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fairlead"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FAIRLEAD_FILES")
        .output()
        .expect("fairlead runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_accepts_the_examples() {
    let out = fairlead(&["check", "-f", "../deploy/examples"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Configuration file is valid (3 frontends, 2 backends, 6 objects from 4 files)\n"
    );
}

#[test]
fn check_reports_each_broken_manifest_with_file_line_object_and_field() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "bad-port.yaml",
            &[
                "tests/broken/bad-port.yaml:1: Backend default/app: spec.servers[1].port: 70000 is not a port (1-65535)",
            ],
        ),
        (
            "unknown-field.yaml",
            &[
                "tests/broken/unknown-field.yaml:1: Frontend default/http-in: spec.defaultbackend: unknown field",
            ],
        ),
        (
            "missing-backend.yaml",
            &[
                "tests/broken/missing-backend.yaml:1: Frontend default/http-in: spec.defaultBackend: Backend \"app\" does not exist in namespace default",
            ],
        ),
        ("bad-duration.yaml", &[BAD_DURATION]),
        (
            "duplicate.yaml",
            &[
                "tests/broken/duplicate.yaml:7: Backend default/app: duplicate object, first defined at tests/broken/duplicate.yaml:1",
            ],
        ),
        ("syntax.yaml", &[SYNTAX]),
    ];
    for (file, expected) in cases {
        let path = format!("tests/broken/{file}");
        let out = fairlead(&["check", "-f", &path]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let lines: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
        assert_eq!(lines, expected, "{file}");
        assert_eq!(stdout(&out), "", "{file}");
    }
}

const BAD_DURATION: &str = "tests/broken/bad-duration.yaml:1: Backend default/app: spec.timeouts.connect: \"10 seconds\" is not a duration (expected a unit: ms, s, m or h); write e.g. 10s, 1m30s, 100ms or 1h";
const SYNTAX: &str = "tests/broken/syntax.yaml:5: YAML syntax: unclosed bracket '['";

#[test]
fn check_reports_every_broken_file_at_once() {
    let out = fairlead(&[
        "check",
        "-f",
        "tests/broken/unknown-field.yaml,tests/broken/syntax.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 2, "{}", stderr(&out));
}

#[test]
fn render_prints_the_golden_config_of_the_tutorial() {
    let out = fairlead(&["render", "-f", "../deploy/examples/http-in.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tutorial.json"),
    )
    .unwrap();
    assert_eq!(stdout(&out), golden);
}

#[test]
fn render_fails_on_errors_and_reads_files_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_fairlead"))
        .arg("render")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FAIRLEAD_FILES", "tests/broken/bad-port.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("spec.servers[1].port"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn warnings_name_skipped_kinds() {
    let dir = scratch("warn");
    let file = dir.join("x.yaml");
    std::fs::write(
        &file,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    )
    .unwrap();
    let out = fairlead(&["check", "-f", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "warning: {}:1: skipping Deployment default/web (apps/v1): fairlead does not read this kind\n",
            file.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_reloads_on_change_keeps_serving_on_a_bad_change_and_stops_on_sigterm() {
    let dir = scratch("run");
    let file = dir.join("lb.yaml");
    let port = free_port();
    std::fs::write(&file, web_manifests(port, "s", 9001, "")).unwrap();
    let run = Running::start(&dir, &["--watch-interval", "50ms"]);
    run.wait_for("applied config version 1 (1 frontends, 1 backends)");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    std::fs::write(&file, web_manifests(port, "s", 9002, "")).unwrap();
    run.wait_for("applied config version 2 (1 frontends, 1 backends)");

    std::fs::write(
        &file,
        web_manifests(port, "s", 9002, "").replace("port: 9002", "port: 0"),
    )
    .unwrap();
    run.wait_for("spec.servers[0].port: 0 is not a port (1-65535)");
    run.wait_for("keeping version 2");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sighup_reloads_and_traffic_moves_to_the_new_backend() {
    let (a, b) = (named_server("a"), named_server("b"));
    let dir = scratch("hup");
    let file = dir.join("lb.yaml");
    let port = free_port();
    std::fs::write(&file, web_manifests(port, "s", a, "")).unwrap();
    // File polling is effectively off: only SIGHUP can reload.
    let run = Running::start(&dir, &["--watch-interval", "1h"]);
    run.wait_for("applied config version 1");
    assert_eq!(http_get(port), "a");
    std::fs::write(&file, web_manifests(port, "s", b, "")).unwrap();
    run.signal("HUP");
    run.wait_for("applied config version 2");
    assert_eq!(http_get(port), "b");
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A loopback HTTP server answering every request with `name`; returns its port.
fn named_server(name: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    port
}

/// GET / through fairlead on `port`; the response body.
fn http_get(port: u16) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn run_exits_1_on_invalid_manifests_at_start() {
    let out = fairlead(&["run", "-f", "tests/broken/missing-backend.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("spec.defaultBackend"),
        "{}",
        stderr(&out)
    );
}
