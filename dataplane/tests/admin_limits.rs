//! The admin API of the `fairlead-dataplane` binary under hostile load: idle
//! and reconnecting connections from many addresses must not keep the
//! operator out, silent connections are closed in bounded time, running out
//! of file descriptors logs a line a second, and pushes too large are
//! refused with a visible status over HTTP/1.1 and HTTP/2.

#[path = "../../tests/tls/pki.rs"]
mod pki;

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pki::{Pki, arg};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_fairlead-dataplane");
const NAME: &str = "fairlead-dataplane";
const TOKEN: &str = "t0ken-for-the-limits-test";

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A `fairlead-dataplane` accepting the token and client certificates of
/// its CA; stderr in `log` in the PKI dir. `prefix` runs it under another
/// command (such as `prlimit`).
struct Dataplane {
    _child: Child,
    admin: SocketAddr,
    pki: Pki,
}

impl Dataplane {
    async fn start(log: &str, prefix: &[&str]) -> Dataplane {
        let pki = Pki::new("limits CA");
        pki.issue("server", NAME, &[NAME]);
        pki.issue("client", "fairlead-operator", &["fairlead-operator"]);
        std::fs::write(pki.path("token"), format!("{TOKEN}\n")).unwrap();
        let admin = free_addr();
        let (program, args) = match prefix {
            [] => (BIN, &[][..]),
            [first, rest @ ..] => (*first, rest),
        };
        let mut command = Command::new(program);
        if !prefix.is_empty() {
            command.args(args).arg(BIN);
        }
        let child = command
            .arg(format!("--admin-address={admin}"))
            .args(["--tls-cert", &arg(&pki.path("server.crt"))])
            .args(["--tls-key", &arg(&pki.path("server.key"))])
            .args(["--client-ca", &arg(&pki.path("ca.crt"))])
            .args(["--token-file", &arg(&pki.path("token"))])
            .args(["--state-dir", &arg(&pki.path("state"))])
            .args(["--node-name", "node-l", "--shutdown-grace", "1s"])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(pki.path(log)).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("fairlead-dataplane starts");
        let dataplane = Dataplane {
            _child: child,
            admin,
            pki,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while dataplane.curl("/healthz", &[]).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "no /healthz: {}",
                dataplane.pki.read(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dataplane
    }

    /// (HTTP status or 0, body, seconds taken) of a curl call.
    async fn curl(&self, path: &str, extra: &[String]) -> (u16, String, f64) {
        let port = self.admin.port();
        let started = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(arg(&self.pki.path("ca.crt")))
            .args(["--resolve", &format!("{NAME}:{port}:127.0.0.1")])
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://{NAME}:{port}{path}"))
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
        let seconds = started.elapsed().as_secs_f64();
        (code.parse().unwrap_or(0), body, seconds)
    }

    fn client_cert(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            arg(&self.pki.path("client.crt")),
            "--key".into(),
            arg(&self.pki.path("client.key")),
        ]
    }

    /// A TLS connection from `source` that presents no credentials.
    async fn tls_connect(
        &self,
        source: IpAddr,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.pki.path("ca.crt")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = connect_from(source, self.admin).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        connector
            .connect(ServerName::try_from(NAME).unwrap(), tcp)
            .await
    }
}

async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// Waits (at most `limit`) until the server closes `stream`; how long it took.
async fn closed_after<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_reconnecting_connections_cannot_lock_the_operator_out() {
    let dp = Dataplane::start("lockout.log", &[]).await;
    // 270 connections from 30 addresses, 9 each, that send nothing; each
    // connects again 200 ms after the server closes it, for as long as the
    // test runs (at most 40 reconnections each).
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut attackers = Vec::new();
    for n in 0..270u32 {
        let source = IpAddr::from([127, 0, 1, 2 + (n % 30) as u8]);
        let (stop, opened, closed, admin) =
            (stop.clone(), opened.clone(), closed.clone(), dp.admin);
        attackers.push(tokio::spawn(async move {
            for _ in 0..40 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(mut tcp) = connect_from(source, admin).await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf));
                    if read.await.is_ok() {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Plus 30 that finish the TLS handshake and then say nothing.
    let mut silent = Vec::new();
    for n in 0..30u8 {
        if let Ok(tls) = dp.tls_connect(IpAddr::from([127, 0, 2, 2 + n])).await {
            silent.push(tls);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_attack = opened.load(Ordering::Relaxed);
    assert!(
        at_attack >= 270,
        "only {at_attack} attacking connections opened"
    );

    // The operator's mutual-TLS call and a token call get through, promptly,
    // again and again.
    let mut worst: f64 = 0.0;
    for round in 0..5 {
        let (status, body, seconds) = dp.curl("/v1/status", &dp.client_cert()).await;
        assert_eq!(
            status, 200,
            "round {round}: client certificate call: {body}"
        );
        let bearer = vec!["-H".into(), format!("Authorization: Bearer {TOKEN}")];
        let (status, body, token_seconds) = dp.curl("/v1/status", &bearer).await;
        assert_eq!(status, 200, "round {round}: token call: {body}");
        worst = worst.max(seconds).max(token_seconds);
    }
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "operator calls under attack: slowest {worst:.2} s; attacker connections opened {}, closed by the server {}, silent TLS {}",
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
        silent.len()
    );
    assert!(worst < 5.0, "an operator call took {worst:.2} s");
    for attacker in attackers {
        attacker.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_in_bounded_time() {
    let dp = Dataplane::start("silent.log", &[]).await;
    let source = IpAddr::from([127, 0, 0, 1]);
    let mut tcp = connect_from(source, dp.admin).await.unwrap();
    let mut tls = dp.tls_connect(source).await.unwrap();
    // A probe on a connection without credentials is answered; it does not
    // extend that connection's life.
    let (status, _, _) = dp.curl("/readyz", &[]).await;
    assert_eq!(status, 503);
    let limit = Duration::from_secs(15);
    let (tcp_closed, tls_closed) =
        tokio::join!(closed_after(&mut tcp, limit), closed_after(&mut tls, limit));
    eprintln!("no handshake: closed after {tcp_closed:?}; TLS without credentials: {tls_closed:?}");
    let tcp_closed = tcp_closed.expect("a connection without a TLS handshake is closed");
    let tls_closed = tls_closed.expect("a TLS connection without credentials is closed");
    assert!(tcp_closed < Duration::from_secs(7), "{tcp_closed:?}");
    assert!(tls_closed < Duration::from_secs(12), "{tls_closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_logs_a_line_a_second() {
    // Few enough descriptors that 60 connections exhaust them.
    let dp = Dataplane::start("fds.log", &["prlimit", "--nofile=40"]).await;
    // One connection from each address: no address is over its share.
    let mut held = Vec::new();
    for n in 0..60u8 {
        if let Ok(tcp) = connect_from(IpAddr::from([127, 0, 3, 2 + n]), dp.admin).await {
            held.push(tcp);
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = dp.pki.read("fds.log");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{} accept-failure lines in {seconds:.1} s: {lines:?}",
        lines.len()
    );
    assert!(!lines.is_empty(), "descriptors never ran out:\n{log}");
    assert!(lines.len() <= 2 + seconds.ceil() as usize, "{log}");
    assert!(
        lines
            .iter()
            .skip(1)
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "{log}"
    );
    // Descriptors back: the API answers again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dp.curl("/healthz", &[]).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "no /healthz after the descriptors came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PUTs the file `body` to /v1/config with the client certificate;
/// (status, body). `extra` adds curl flags.
async fn put_file(dp: &Dataplane, body: &str, extra: &[&str]) -> (u16, String, f64) {
    let mut flags = dp.client_cert();
    flags.extend(["-X", "PUT", "-H", "Content-Type: application/json"].map(String::from));
    flags.push("--data-binary".into());
    flags.push(format!("@{}", arg(&dp.pki.path(body))));
    flags.extend(extra.iter().map(|f| f.to_string()));
    dp.curl("/v1/config", &flags).await
}

/// A config JSON with `backends` backends of `servers` servers each.
fn servers_json(backends: usize, servers: usize) -> String {
    let server = |i: usize| format!(r#"{{"name":"s{i}","address":"10.1.2.3","port":8080}}"#);
    let backend = |b: usize| {
        let list: Vec<String> = (0..servers).map(server).collect();
        format!(r#"{{"name":"b{b}","servers":[{}]}}"#, list.join(","))
    };
    let list: Vec<String> = (0..backends).map(backend).collect();
    format!(r#"{{"version":1,"backends":[{}]}}"#, list.join(","))
}

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_pushes_are_refused_visibly_before_they_are_parsed() {
    let dp = Dataplane::start("push.log", &[]).await;
    let pid = dp._child.id().unwrap();
    // 17 MiB: over the limit, over HTTP/1.1 (with a length, and chunked) and HTTP/2.
    let big = servers_json(100, 3_500);
    assert!(big.len() > 16 << 20, "{}", big.len());
    std::fs::write(dp.pki.path("big.json"), &big).unwrap();
    for (how, flags) in [
        ("HTTP/1.1", &["--http1.1"][..]),
        (
            "HTTP/1.1 chunked",
            &["--http1.1", "-H", "Transfer-Encoding: chunked"][..],
        ),
        ("HTTP/2", &["--http2"][..]),
    ] {
        let (status, body, seconds) = put_file(&dp, "big.json", flags).await;
        eprintln!("{how}: {status} in {seconds:.2} s");
        assert_eq!(status, 413, "{how}: {body}");
        assert!(body.contains("larger than 16777216 bytes"), "{how}: {body}");
    }
    // Under the size limit but too many objects: 422 before parsing.
    let objects = format!(r#"{{"version":1,"x":[{}]}}"#, vec!["{}"; 250_000].join(","));
    std::fs::write(dp.pki.path("objects.json"), objects).unwrap();
    let (status, body, _) = put_file(&dp, "objects.json", &["--http2"]).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("more than 200000 JSON objects"), "{body}");
    // Within both, but more servers than a config may have: 422 from validate.
    std::fs::write(dp.pki.path("servers.json"), servers_json(11, 10_000)).unwrap();
    let (status, body, _) = put_file(&dp, "servers.json", &[]).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("110000 is more than 100000"), "{body}");
    // A config of a size seen in practice applies.
    std::fs::write(dp.pki.path("ok.json"), servers_json(10, 100)).unwrap();
    let (status, body, seconds) = put_file(&dp, "ok.json", &[]).await;
    assert_eq!(status, 200, "{body}");
    let peak = peak_memory_kib(pid);
    eprintln!(
        "1,000 servers applied in {seconds:.2} s; peak memory {} MiB",
        peak / 1024
    );
}
