//! The dataplane admin API over real TLS: the agent the `fairlead-dataplane`
//! binary runs, started in this process from command-line flags, with curl and
//! a rustls client as callers and demo backends behind the configs it pushes.
//! The binary itself (exit codes, signals, restart, logs) is tested in
//! `dataplane/tests/binary.rs`, where cargo builds it for the test.

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use clap::Parser as _;
use common::*;
use fairlead_dataplane::DataplaneConfig;
use fairlead_dataplane::agent::{Agent, Options};
use fairlead_dataplane::config::{Balance, Mode};
use pki::{Pki, arg};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "0123456789abcdef-admin-token";
const NAME: &str = "fairlead-dataplane";

/// The dataplane's CA with its serving certificate, a client certificate it
/// accepts, and a token file.
fn dataplane_pki() -> Pki {
    let pki = Pki::new("dataplane CA");
    pki.issue("server", NAME, &[NAME]);
    pki.issue("client", "fairlead-operator", &["fairlead-operator"]);
    std::fs::write(pki.path("token"), format!("{TOKEN}\n")).unwrap();
    pki
}

/// Flags for an agent on a free loopback port with `pki`'s certificate,
/// state in `state`, and `auth` flags (`--token-file`, `--client-ca`).
fn options(pki: &Pki, state: &Path, auth: &[&str]) -> Options {
    let mut args = vec![
        "fairlead-dataplane".to_string(),
        "--admin-address=127.0.0.1:0".into(),
        format!("--tls-cert={}", arg(&pki.path("server.crt"))),
        format!("--tls-key={}", arg(&pki.path("server.key"))),
        format!("--state-dir={}", arg(state)),
        "--node-name=node-a".into(),
        "--shutdown-grace=1s".into(),
    ];
    for flag in auth {
        let file = match *flag {
            "--token-file" => "token",
            _ => "ca.crt",
        };
        args.push(format!("{flag}={}", arg(&pki.path(file))));
    }
    Options::try_parse_from(args).expect("flags parse")
}

async fn start(pki: &Pki, auth: &[&str]) -> Agent {
    Agent::start(&options(pki, &pki.path("state"), auth))
        .await
        .expect("agent starts")
}

/// A curl call's outcome: HTTP status (0 when no response) and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    stderr: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// curl to `https://fairlead-dataplane:PORT{path}` resolved to the agent,
/// verifying the server against `ca`'s CA; `extra` adds flags.
async fn curl(ca: &Pki, agent: &Agent, path: &str, extra: &[String]) -> Reply {
    curl_port(
        ca.path("ca.crt"),
        agent.admin_addr().port(),
        path,
        extra.to_vec(),
    )
    .await
}

async fn curl_port(ca: PathBuf, port: u16, path: &str, extra: Vec<String>) -> Reply {
    let mut args = vec![
        "-sS".to_string(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        arg(&ca),
        "--resolve".into(),
        format!("{NAME}:{port}:127.0.0.1"),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    args.extend(extra);
    args.push(format!("https://{NAME}:{port}{path}"));
    let run = tokio::process::Command::new("curl")
        .args(&args)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(STEP, run)
        .await
        .expect("curl in time")
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Reply {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn bearer(token: &str) -> Vec<String> {
    vec!["-H".into(), format!("Authorization: Bearer {token}")]
}

/// PUTs `config` with the right token.
async fn push(pki: &Pki, agent: &Agent, config: &DataplaneConfig) -> Reply {
    push_body(pki, agent, &config.to_json_pretty()).await
}

async fn push_body(pki: &Pki, agent: &Agent, body: &str) -> Reply {
    curl(pki, agent, "/v1/config", &put_flags(pki, body)).await
}

/// Flags to PUT `body` with the right token (the body goes through a file).
fn put_flags(pki: &Pki, body: &str) -> Vec<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file = pki.path(&format!(
        "push-{}.json",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, body).unwrap();
    let mut flags = bearer(TOKEN);
    flags.extend(["-X", "PUT", "--data-binary"].map(String::from));
    flags.push(format!("@{}", arg(&file)));
    flags
}

/// A config with one http frontend balancing over `demos`.
fn demo_config(version: u64, demos: &[&Demo]) -> DataplaneConfig {
    let servers = (demos.iter().enumerate())
        .map(|(i, d)| d.server(&format!("s{i}")))
        .collect();
    let fe = frontend("web", Mode::Http, "app");
    let be = backend("app", Mode::Http, Balance::Roundrobin, servers);
    config(version, vec![fe], vec![be])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_and_compared() {
    let pki = dataplane_pki();
    let agent = start(&pki, &["--token-file"]).await;
    let r = curl(&pki, &agent, "/v1/status", &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.json()["errors"][0],
        "no bearer token and no client certificate"
    );
    let r = curl(&pki, &agent, "/v1/status", &bearer("not-the-token")).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["errors"][0], "wrong bearer token");
    let r = curl(
        &pki,
        &agent,
        "/v1/config",
        &bearer(&TOKEN[..TOKEN.len() - 1]),
    )
    .await;
    assert_eq!(r.status, 401, "a prefix of the token: {r:?}");
    let r = curl(&pki, &agent, "/v1/status", &bearer(TOKEN)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["node"], "node-a");
    // Liveness and readiness need no credentials and say nothing more.
    let r = curl(&pki, &agent, "/healthz", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    // Without a client CA configured, a client certificate is not credentials.
    let cert = client_cert_flags(&pki, "client");
    let r = curl(&pki, &agent, "/v1/status", &cert).await;
    assert_eq!(r.status, 401, "{r:?}");
    agent.stop().await;
}

fn client_cert_flags(pki: &Pki, file: &str) -> Vec<String> {
    vec![
        "--cert".into(),
        arg(&pki.path(&format!("{file}.crt"))),
        "--key".into(),
        arg(&pki.path(&format!("{file}.key"))),
    ]
}

/// `GET /v1/status` trusting `ca`'s CA, with the client certificate of `certs`.
async fn status_with_cert(ca: &Pki, agent: &Agent, certs: &Pki) -> Reply {
    curl(ca, agent, "/v1/status", &client_cert_flags(certs, "client")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_the_ca_are_accepted_others_refused() {
    let pki = dataplane_pki();
    let other = Pki::new("other CA");
    other.issue("client", "fairlead-operator", &["fairlead-operator"]);

    // Token and client CA: either is enough.
    let agent = start(&pki, &["--token-file", "--client-ca"]).await;
    let r = status_with_cert(&pki, &agent, &pki).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&pki, &agent, "/v1/status", &bearer(TOKEN)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&pki, &agent, "/v1/status", &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    let mut foreign = client_cert_flags(&other, "client");
    foreign.extend(bearer(TOKEN));
    let r = curl(&pki, &agent, "/v1/status", &foreign).await;
    assert_eq!(
        r.status, 0,
        "a certificate from another CA is refused: {r:?}"
    );
    assert!(
        r.stderr.starts_with("curl: ("),
        "a TLS error, not HTTP: {r:?}"
    );
    agent.stop().await;

    // Client CA alone (as the DaemonSet runs it): a probe without a
    // certificate reaches /healthz and /readyz, nothing else.
    let agent = start(&pki, &["--client-ca"]).await;
    let r = status_with_cert(&pki, &agent, &pki).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&pki, &agent, "/healthz", &[]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "ok\n"),
        "a kubelet probe"
    );
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 503, "no config yet: {r:?}");
    for path in ["/v1/status", "/v1/config"] {
        let r = curl(&pki, &agent, path, &bearer(TOKEN)).await;
        assert_eq!(r.status, 401, "no certificate, no token accepted: {r:?}");
        assert_eq!(r.json()["errors"][0], "no client certificate");
    }
    let r = push(&pki, &agent, &demo_config(1, &[])).await;
    assert_eq!(r.status, 401, "a push without a certificate: {r:?}");
    let r = status_with_cert(&pki, &agent, &other).await;
    assert_eq!(
        r.status, 0,
        "a certificate from another CA fails the handshake: {r:?}"
    );
    let r = curl(&pki, &agent, "/healthz", &client_cert_flags(&pki, "client")).await;
    assert_eq!(r.status, 200, "{r:?}");
    agent.stop().await;
}

/// A rustls client trusting `pki`'s CA connects to `addr` by IP and verifies `name`.
async fn rustls_get(
    pki: &Pki,
    addr: SocketAddr,
    name: &str,
    path: &str,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.crt")).unwrap();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp)).await??;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {NAME}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(STEP, tls.read_to_string(&mut response)).await??;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_is_verified_by_name_when_connecting_by_ip() {
    let pki = dataplane_pki();
    let agent = start(&pki, &["--token-file"]).await;
    let addr = agent.admin_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let response = rustls_get(&pki, addr, NAME, "/v1/status").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains(r#""node":"node-a""#), "{response}");
    let err = rustls_get(&pki, addr, "other.example", "/v1/status").await;
    let err = err.expect_err("a name the certificate lacks is refused");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let stranger = Pki::new("stranger CA");
    let err = rustls_get(&stranger, addr, NAME, "/v1/status").await;
    assert!(err.is_err(), "a server from an untrusted CA is refused");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_config_serves_traffic_and_bad_pushes_change_nothing() {
    let pki = dataplane_pki();
    let (srv1, srv2) = (Demo::http("srv1"), Demo::http("srv2"));
    let agent = start(&pki, &["--token-file"]).await;
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    let r = curl(&pki, &agent, "/v1/config", &bearer(TOKEN)).await;
    assert_eq!(r.status, 404, "{r:?}");

    let good = demo_config(5, &[&srv1, &srv2]);
    let web = good.frontends[0].bind;
    let r = push(&pki, &agent, &good).await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"version": 5}))
    );
    let counts = tally(web, 4).await;
    assert_eq!(counts.get("srv1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("srv2"), Some(&2), "{counts:?}");
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&pki, &agent, "/v1/config", &bearer(TOKEN)).await;
    let running: DataplaneConfig = serde_json::from_str(&r.body).unwrap();
    assert_eq!(running, good);

    let status = curl(&pki, &agent, "/v1/status", &bearer(TOKEN))
        .await
        .json();
    assert_eq!(status["node"], "node-a");
    assert_eq!(status["version"], 5);
    assert_eq!(status["backends"][0]["name"], "app");
    let servers = &status["backends"][0]["servers"];
    assert_eq!(servers[0]["name"], "s0");
    assert_eq!(servers[0]["port"], srv1.addr.port());
    assert_eq!(servers[1]["state"], "unchecked");

    // Rejected: every problem named, nothing changed.
    let mut bad = demo_config(6, &[&srv1, &srv2]);
    bad.backends[0].servers[1].weight = 0;
    bad.frontends[0].default_backend = Some("missing".into());
    let r = push(&pki, &agent, &bad).await;
    assert_eq!(r.status, 422, "{r:?}");
    let errors = r.json()["errors"].clone();
    let text = errors.to_string();
    assert!(text.contains("servers[1].weight"), "{text}");
    assert!(text.contains("missing"), "{text}");
    assert!(errors.as_array().unwrap().len() >= 2, "{text}");
    assert_eq!(tally(web, 2).await.len(), 2, "the old config still serves");

    // Stale: an older version is refused with the running one.
    let r = push(&pki, &agent, &demo_config(4, &[&srv2])).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["running"], 5);
    assert!(r.json()["errors"][0].as_str().unwrap().contains("older"));
    // The same config again is a no-op success.
    let r = push(&pki, &agent, &good).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Malformed: the JSON path is named.
    let r = push_body(
        &pki,
        &agent,
        r#"{"version": 7, "frontends": [{"name": "x", "bind": 5}]}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let message = r.json()["errors"][0].as_str().unwrap().to_string();
    assert!(message.starts_with("frontends[0].bind: "), "{message}");
    let r = curl(&pki, &agent, "/v1/nothing", &bearer(TOKEN)).await;
    assert_eq!(r.status, 404, "{r:?}");
    let mut delete = bearer(TOKEN);
    delete.extend(["-X", "DELETE"].map(String::from));
    let r = curl(&pki, &agent, "/v1/config", &delete).await;
    assert_eq!(r.status, 405, "{r:?}");

    // A newer version replaces it: a new listener, the old one closed.
    let newer = demo_config(7, &[&srv2]);
    let r = push(&pki, &agent, &newer).await;
    assert_eq!(r.status, 200, "{r:?}");
    let counts = tally(newer.frontends[0].bind, 3).await;
    assert_eq!(counts.get("srv2"), Some(&3), "{counts:?}");
    assert!(tokio::net::TcpStream::connect(web).await.is_err());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_are_serialised() {
    let pki = dataplane_pki();
    let srv = Demo::http("srv");
    let agent = start(&pki, &["--token-file"]).await;
    let base = demo_config(0, &[&srv]);
    let mut pushes = tokio::task::JoinSet::new();
    for version in 1..=8u64 {
        let config = DataplaneConfig {
            version,
            ..base.clone()
        };
        let flags = put_flags(&pki, &config.to_json_pretty());
        let (ca, port) = (pki.path("ca.crt"), agent.admin_addr().port());
        pushes.spawn(async move { curl_port(ca, port, "/v1/config", flags).await });
    }
    let replies = pushes.join_all().await;
    for r in &replies {
        assert!(r.status == 200 || r.status == 409, "{r:?}");
    }
    // Whatever the order, the newest version ends up running.
    let status = curl(&pki, &agent, "/v1/status", &bearer(TOKEN))
        .await
        .json();
    assert_eq!(status["version"], 8, "{replies:?}");
    assert_eq!(tally(base.frontends[0].bind, 2).await.get("srv"), Some(&2));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_serves_the_persisted_config_before_any_push() {
    let pki = dataplane_pki();
    let srv = Demo::http("srv");
    let agent = start(&pki, &["--token-file"]).await;
    let good = demo_config(3, &[&srv]);
    let web = good.frontends[0].bind;
    assert_eq!(push(&pki, &agent, &good).await.status, 200);
    agent.stop().await;
    assert!(
        tokio::net::TcpStream::connect(web).await.is_err(),
        "stopped agent still listens"
    );

    let agent = start(&pki, &["--token-file"]).await;
    assert_eq!(tally(web, 2).await.get("srv"), Some(&2));
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let status = curl(&pki, &agent, "/v1/status", &bearer(TOKEN))
        .await
        .json();
    assert_eq!(status["version"], 3);
    // Stale pushes are judged against the restored version.
    let r = push(&pki, &agent, &demo_config(2, &[&srv])).await;
    assert_eq!(r.status, 409, "{r:?}");
    agent.stop().await;

    // A corrupt file is ignored: no config, not ready, pushes work.
    std::fs::write(pki.path("state").join("config.json"), "{\"version\": 3, ").unwrap();
    let agent = start(&pki, &["--token-file"]).await;
    let r = curl(&pki, &agent, "/readyz", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(tokio::net::TcpStream::connect(web).await.is_err());
    assert_eq!(
        push(&pki, &agent, &demo_config(1, &[&srv])).await.status,
        200
    );
    let saved = pki.read("state/config.json");
    assert_eq!(DataplaneConfig::from_json(&saved).unwrap().version, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_flags_name_the_flag() {
    let pki = dataplane_pki();
    let state = pki.path("state");
    let mut bad_cert = options(&pki, &state, &["--token-file"]);
    bad_cert.tls_cert = pki.path("missing.crt");
    let err = Agent::start(&bad_cert).await.err().expect("fails");
    assert!(err.to_string().starts_with("--tls-cert: "), "{err}");
    assert_eq!(err.exit_code(), 2);
    let mut wrong_key = options(&pki, &state, &["--token-file"]);
    wrong_key.tls_key = pki.path("client.key");
    let err = Agent::start(&wrong_key).await.err().expect("fails");
    assert!(err.to_string().starts_with("--tls-key: "), "{err}");
    std::fs::write(pki.path("empty"), " \n").unwrap();
    let mut empty = options(&pki, &state, &["--token-file"]);
    empty.token_file = Some(pki.path("empty"));
    let err = Agent::start(&empty).await.err().expect("fails");
    assert!(err.to_string().starts_with("--token-file: "), "{err}");
}

/// Copies `from`'s CA, serving and client certificates into `to`'s files.
fn rotate(from: &Pki, to: &Pki) {
    for file in [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        std::fs::copy(from.path(file), to.path(file)).unwrap();
    }
}

/// A TLS connection to the agent with `pki`'s client certificate, trusting `pki`'s CA.
async fn mtls_connect(
    pki: &Pki,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        rustls_pki_types::CertificateDer::pem_file_iter(pki.path("ca.crt"))
            .unwrap()
            .map(Result::unwrap),
    );
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(pki.path("client.crt"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(pki.path("client.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(NAME).unwrap();
    let connect = tokio::time::timeout(STEP, connector.connect(name, tcp));
    connect.await.unwrap().unwrap()
}

/// The status of `GET path` on a kept-alive connection (no token).
async fn keepalive_get(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    path: &str,
) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap();
            if body.len() >= length {
                return head[9..12].parse().unwrap();
            }
        }
    };
    tokio::time::timeout(STEP, read).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_credential_files_replace_the_credentials_without_a_restart() {
    let pki = dataplane_pki();
    let (old, new) = (Pki::new("old copy"), Pki::new("rotated CA"));
    rotate(&pki, &old);
    new.issue("server", NAME, &[NAME]);
    new.issue("client", "fairlead-operator", &["fairlead-operator"]);
    let mut flags = options(&pki, &pki.path("state"), &["--token-file", "--client-ca"]);
    flags.credentials_reload = std::time::Duration::from_millis(100);
    let agent = Agent::start(&flags).await.expect("agent starts");
    let mut kept = mtls_connect(&pki, agent.admin_addr()).await;
    assert_eq!(keepalive_get(&mut kept, "/v1/status").await, 200);

    // The Secret behind the files is replaced: new CA, certificates and token.
    rotate(&new, &pki);
    std::fs::write(pki.path("token"), "rotated-token\n").unwrap();
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let r = curl(&pki, &agent, "/v1/status", &bearer("rotated-token")).await;
        if r.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not reloaded: {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = status_with_cert(&pki, &agent, &pki).await;
    assert_eq!(r.status, 200, "the new client certificate: {r:?}");
    let r = curl(&pki, &agent, "/v1/status", &bearer(TOKEN)).await;
    assert_eq!(r.status, 401, "the old token: {r:?}");
    let r = status_with_cert(&old, &agent, &old).await;
    assert_eq!(
        r.status, 0,
        "the old CA no longer verifies the server: {r:?}"
    );
    // A certificate verified under the old CA no longer counts on its connection.
    assert_eq!(keepalive_get(&mut kept, "/v1/status").await, 401);

    // A broken file is not taken: the credentials in use stay.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = curl(&pki, &agent, "/v1/status", &bearer("rotated-token")).await;
    assert_eq!(r.status, 200, "{r:?}");
    agent.stop().await;
}
