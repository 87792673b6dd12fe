//! `fairlead run` against careless and hostile input: a manifest truncated to
//! nothing must not close the listeners, and a client sending an IP address
//! as SNI must not make every handshake log a line.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_manifest_truncated_to_nothing_keeps_the_running_config() {
    let dir = scratch("truncated");
    let file = dir.join("lb.yaml");
    let port = free_port();
    std::fs::write(&file, web_manifests(port, "s", 9001, "")).unwrap();
    let run = Running::start(&dir, &["--watch-interval", "50ms"]);
    run.wait_for("applied config version 1 (1 frontends, 1 backends)");

    std::fs::write(&file, "").unwrap();
    let line = run.wait_for("no objects");
    assert!(
        line.contains(&format!("{}: no objects", file.display())),
        "{line}"
    );
    run.wait_for("keeping version 1");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // `check` says the same, with a non-zero exit.
    let out = Command::new(env!("CARGO_BIN_EXE_fairlead"))
        .args(["check", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lb.yaml: no objects"), "{stderr}");
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// TLS handshakes against `port` with `127.0.0.1` as SNI (openssl sends it;
/// rustls clients do not send IP addresses).
fn handshakes_with_ip_sni(port: u16, count: usize) {
    for _ in 0..count {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "127.0.0.1", "-brief"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl runs");
        // Closing stdin ends s_client after the handshake.
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "openssl s_client hangs");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn ip_address_sni_does_not_log_a_line_per_handshake() {
    let dir = scratch("ip-sni");
    let port = free_port();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    std::fs::copy(examples.join("site.pem"), dir.join("site.pem")).unwrap();
    let manifests = web_manifests(port, "s", 9001, "").replace(
        "  defaultBackend: app",
        "  mode: http\n  tls: {certificates: [{secret: site}]}\n  defaultBackend: app",
    );
    std::fs::File::create(dir.join("lb.yaml"))
        .unwrap()
        .write_all(manifests.as_bytes())
        .unwrap();
    // Warnings of every target: RUST_LOG cannot be what hides them.
    let run = Running::start_with_log(&dir, &["--watch-interval", "1h"], "warn");
    handshakes_with_ip_sni(port, 1); // the listener is up once this returns
    const HANDSHAKES: usize = 40;
    let started = Instant::now();
    handshakes_with_ip_sni(port, HANDSHAKES);
    let seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let lines = run.lines_so_far();
    let sni: Vec<&String> = lines.iter().filter(|l| l.contains("SNI")).collect();
    eprintln!(
        "{HANDSHAKES} handshakes in {seconds:.1} s: {} SNI log lines",
        sni.len()
    );
    // At most a line per second, plus the one each for the first handshake.
    assert!(
        sni.len() <= 2 + seconds.ceil() as usize,
        "{} lines:\n{}",
        sni.len(),
        lines.join("\n")
    );
    drop(run); // logs warnings only: no "stopped" line to wait for

    std::fs::remove_dir_all(dir).unwrap();
}

/// `fairlead check -f file`: (exit code, stderr).
fn check(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fairlead"))
        .args(["check", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_10_mb_names_and_addresses_in_a_few_short_lines() {
    let dir = scratch("huge-strings");
    let file = dir.join("lb.yaml");
    let huge = "a".repeat(10 << 20);
    let manifests = web_manifests(free_port(), "s", 9001, "");
    let cases = [
        (
            manifests.replace(
                "address: 127.0.0.1, port: 9001",
                &format!("address: {huge}, port: 9001"),
            ),
            "spec.servers[0].address: 10485760 characters, at most 253 are allowed",
        ),
        (
            manifests.replace("name: app}", &format!("name: {huge}}}")),
            "metadata.name: 10485760 characters, at most 253 are allowed",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let (code, stderr) = check(&file);
        let start = &stderr[..stderr.len().min(2000)];
        assert_eq!(code, Some(1), "{start}");
        assert!(stderr.len() < 2000, "{} bytes of errors", stderr.len());
        assert!(stderr.contains(expected), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
