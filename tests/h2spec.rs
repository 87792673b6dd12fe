//! h2spec, the HTTP/2 conformance suite (issue 12, item 12), in strict mode
//! against a TLS-terminating frontend offering h2 and http/1.1, and against
//! HAProxy 2.6 with the same certificate and server as the reference.
//! h2spec is built from `e2e/go/h2spec/` by `scripts/build-e2e-bins.sh`.
//!
//! The requests go to the demo backend's `/`, which answers at once, often
//! before h2spec has sent all of a case's frames on the stream: fairlead then
//! keeps reading the request stream after its response, as HAProxy does, so
//! those frames still get their stream or connection error. The body
//! (`h2spec-backend\n`) is over 5 bytes, so no case is skipped.

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use fairlead_dataplane::config::{Balance, Certificate, FrontendTls, Mode};
use pki::{Pki, arg};
use tokio::process::{Child, Command};

/// h2spec v2.2.1 in strict mode has 146 cases (145 without --strict).
const CASES: u32 = 146;
const PATH: &str = "/";

/// Where scripts/build-e2e-bins.sh put h2spec: `$FAIRLEAD_E2E_BIN`, else
/// `~/.cache/fairlead-e2e/<the Kubernetes version e2e/go/kube-apiserver pins>`.
fn h2spec_binary() -> PathBuf {
    let dir = match std::env::var_os("FAIRLEAD_E2E_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let go_mod = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../e2e/go/kube-apiserver/go.mod"
            );
            let text = std::fs::read_to_string(go_mod).expect("e2e/go/kube-apiserver/go.mod");
            let version = text
                .lines()
                .map(|l| l.trim().trim_start_matches("require").split_whitespace())
                .find_map(|mut words| {
                    (words.next() == Some("k8s.io/kubernetes")).then(|| words.next())
                })
                .flatten()
                .expect("k8s.io/kubernetes in e2e/go/kube-apiserver/go.mod");
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/fairlead-e2e")
                .join(version)
        }
    };
    let bin = dir.join("h2spec");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/build-e2e-bins.sh",
        bin.display()
    );
    bin
}

/// h2spec's closing line: `146 tests, 146 passed, 0 skipped, 0 failed`.
#[derive(Debug, PartialEq)]
struct Summary {
    tests: u32,
    passed: u32,
    skipped: u32,
    failed: u32,
}

fn summary(output: &str) -> Option<Summary> {
    let line = output.lines().rev().find(|l| l.contains(" tests, "))?;
    let mut numbers = line
        .split(", ")
        .map(|part| part.split(' ').next().and_then(|n| n.parse().ok()));
    Some(Summary {
        tests: numbers.next()??,
        passed: numbers.next()??,
        skipped: numbers.next()??,
        failed: numbers.next()??,
    })
}

/// Runs `h2spec --strict` over TLS against `addr` (at most 3 minutes).
async fn h2spec(addr: SocketAddr) -> String {
    let child = Command::new(h2spec_binary())
        .args(["--strict", "--tls", "--insecure", "--timeout", "2"])
        .args(["--host", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--path", PATH])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .expect("h2spec finishes within 3 minutes")
        .expect("h2spec runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// HAProxy terminating TLS (`alpn h2,http/1.1`) in front of `server`; killed on drop.
async fn haproxy(pki: &Pki, server: SocketAddr) -> (Child, SocketAddr) {
    let addr = free_addr();
    let pem = pki.path("haproxy.pem");
    std::fs::write(&pem, pki.read("site.crt") + &pki.read("site.key")).unwrap();
    let cfg = pki.path("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind {addr} ssl crt {} alpn h2,http/1.1\n  default_backend be\n\
             backend be\n  server s {server}\n",
            arg(&pem)
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f", &arg(&cfg)])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy runs (scripts/install-deps.sh installs it)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (child, addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("haproxy did not listen on {addr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn h2spec_strict_passes_every_case() {
    // No space in the name: HAProxy reads the certificate path unquoted.
    let pki = Pki::new("h2spec-ca");
    pki.issue("site", "localhost", &["localhost"]);
    let demo = Demo::http("h2spec-backend");
    let mut fe = frontend("fe", Mode::Http, "be");
    fe.tls = Some(FrontendTls::terminate(vec![Certificate {
        source: "file site".into(),
        cert_pem: pki.read("site.crt"),
        key_pem: pki.read("site.key"),
    }]));
    assert_eq!(fe.tls.as_ref().unwrap().alpn, ["h2", "http/1.1"]);
    let addr = fe.bind;
    let be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    let _engine = serve(fe, be).await;
    let (_haproxy, haproxy_addr) = haproxy(&pki, demo.addr).await;

    let (ours, reference) = tokio::join!(h2spec(addr), h2spec(haproxy_addr));
    let reference = summary(&reference);
    println!("h2spec --strict, HAProxy 2.6 (reference): {reference:?}");
    let got = summary(&ours);
    println!("h2spec --strict, fairlead: {got:?}");
    // The failed cases, or all of the output when there is no summary.
    let failures = ours
        .find("Failures:")
        .map_or(ours.as_str(), |at| &ours[at..]);
    assert_eq!(
        got,
        Some(Summary {
            tests: CASES,
            passed: CASES,
            skipped: 0,
            failed: 0
        }),
        "{failures}"
    );
}

#[test]
fn summary_reads_the_closing_line() {
    let out = "Finished in 2.1 seconds\n146 tests, 144 passed, 1 skipped, 1 failed\n";
    assert_eq!(
        summary(out),
        Some(Summary {
            tests: 146,
            passed: 144,
            skipped: 1,
            failed: 1
        })
    );
    assert_eq!(summary("Error: dial tcp: connection refused"), None);
}
