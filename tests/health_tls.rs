//! HTTP health checks of a TLS backend go over TLS with the backend's CA,
//! SNI and client certificate, against `openssl s_server` requiring mTLS.

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fairlead_dataplane::Engine;
use fairlead_dataplane::config::{Backend, BackendTls, Balance, HealthCheck, HttpCheck, Mode};
use fairlead_dataplane::health::status::{ServerState, ServerStatus};
use pki::{Pki, arg};

/// The check state of backend `name`'s only server once it has settled.
async fn settled(engine: &Engine, name: &str, state: ServerState) -> ServerStatus {
    let deadline = Instant::now() + STEP;
    loop {
        let status = engine.status().await;
        let server = status
            .backends
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.servers[0].clone())
            .unwrap_or_else(|| panic!("{name} in {status:?}"));
        if server.state == state && server.last_check.is_some() {
            return server;
        }
        assert!(Instant::now() < deadline, "{name} stuck: {server:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_of_a_tls_backend_use_its_ca_sni_and_client_certificate() {
    let pki = Pki::new("health CA");
    pki.issue("server", "app.internal", &["app.internal"]);
    pki.issue("client", "lb", &["lb"]);
    let other = Pki::new("other CA");
    let addr = free_addr();
    let _server = tokio::process::Command::new("openssl")
        .args(["s_server", "-www", "-accept", &addr.to_string()])
        .args(["-cert", &arg(&pki.path("server.crt"))])
        .args(["-key", &arg(&pki.path("server.key"))])
        .args(["-Verify", "1", "-CAfile", &arg(&pki.path("ca.crt"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_server starts");
    let deadline = Instant::now() + STEP;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "s_server did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tls = BackendTls {
        ca_pem: Some(pki.read("ca.crt")),
        client_cert_pem: Some(pki.read("client.crt")),
        client_key_pem: Some(pki.read("client.key")),
        server_name: Some("app.internal".into()),
        insecure_skip_verify: false,
    };
    let checked = |name: &str, tls: BackendTls| -> Backend {
        let server = fairlead_dataplane::config::Server::new("s", "127.0.0.1", addr.port());
        let mut b = backend(name, Mode::Http, Balance::Roundrobin, vec![server]);
        b.tls = Some(tls);
        b.health_check = Some(HealthCheck {
            interval_ms: 200,
            timeout_ms: 200,
            fall: 1,
            rise: 1,
            http: Some(HttpCheck::default()),
            ..HealthCheck::default()
        });
        b
    };
    let backends = vec![
        checked("mtls", tls.clone()),
        checked(
            "no-client-cert",
            BackendTls {
                client_cert_pem: None,
                client_key_pem: None,
                ..tls.clone()
            },
        ),
        checked(
            "wrong-ca",
            BackendTls {
                ca_pem: Some(other.read("ca.crt")),
                ..tls
            },
        ),
    ];
    let engine = engine(config(1, vec![], backends)).await;

    let ok = settled(&engine, "mtls", ServerState::Up).await;
    assert_eq!(ok.last_check.unwrap().reason, "HTTP status 200");
    let wrong_ca = settled(&engine, "wrong-ca", ServerState::Down).await;
    let reason = wrong_ca.last_check.unwrap().reason;
    assert!(reason.starts_with("TLS handshake: "), "{reason}");
    let no_cert = settled(&engine, "no-client-cert", ServerState::Down).await;
    let reason = no_cert.last_check.unwrap().reason;
    assert!(!reason.starts_with("HTTP status"), "{reason}");
    engine.shutdown(Duration::from_secs(1)).await;
}
