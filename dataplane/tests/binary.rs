//! The `fairlead-dataplane` binary as a process: exit codes for unusable
//! flags, a push served to clients, SIGTERM, restart from the state
//! directory, and a corrupt state file. Cargo builds the binary for this
//! test (`CARGO_BIN_EXE_`), which is why it lives in this package; the admin
//! API's behaviour in detail is tested in `tests/admin.rs`.

#[path = "../../tests/tls/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fairlead_dataplane::DataplaneConfig;
use fairlead_dataplane::config::{Backend, Balance, Frontend, Mode, Server};
use pki::{Pki, arg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_fairlead-dataplane");
const NAME: &str = "fairlead-dataplane";
const STEP: Duration = Duration::from_secs(10);

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn dataplane_pki() -> Pki {
    let pki = Pki::new("dataplane CA");
    pki.issue("server", NAME, &[NAME]);
    std::fs::write(pki.path("token"), "t0ken\n").unwrap();
    pki
}

/// A `fairlead-dataplane` process; its stderr goes to `log` in the PKI dir.
struct Dataplane {
    child: Child,
    admin: SocketAddr,
}

impl Dataplane {
    /// Starts the binary with a token (given through its env twin) and the
    /// state in `pki`'s `state` directory, and waits for /healthz.
    async fn start(pki: &Pki, log: &str) -> Dataplane {
        let admin = free_addr();
        let child = Command::new(BIN)
            .arg(format!("--admin-address={admin}"))
            .args(["--tls-cert", &arg(&pki.path("server.crt"))])
            .args(["--tls-key", &arg(&pki.path("server.key"))])
            .env("FAIRLEAD_TOKEN_FILE", pki.path("token"))
            .env("FAIRLEAD_STATE_DIR", pki.path("state"))
            .args(["--node-name", "node-b", "--shutdown-grace", "2s"])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(pki.path(log)).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("fairlead-dataplane starts");
        let dataplane = Dataplane { child, admin };
        let deadline = Instant::now() + STEP;
        while dataplane.curl(pki, "/healthz", &[]).await.0 != 200 {
            assert!(Instant::now() < deadline, "no /healthz: {}", pki.read(log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dataplane
    }

    /// (HTTP status or 0, body) of an admin call, with the token when `auth`.
    async fn curl(&self, pki: &Pki, path: &str, extra: &[&str]) -> (u16, String) {
        let port = self.admin.port();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                &arg(&pki.path("ca.crt")),
            ])
            .args(["--resolve", &format!("{NAME}:{port}:127.0.0.1")])
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://{NAME}:{port}{path}"))
            .stdin(Stdio::null())
            .output();
        let out = tokio::time::timeout(STEP, out).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate(mut self) -> (ExitStatus, Duration) {
        let pid = self.child.id().unwrap().to_string();
        let sent = Instant::now();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(kill.unwrap().success());
        let status = tokio::time::timeout(STEP, self.child.wait()).await;
        (status.expect("exits in time").unwrap(), sent.elapsed())
    }
}

const TOKEN: [&str; 2] = ["-H", "Authorization: Bearer t0ken"];

/// An HTTP server answering `hello` to every request, on a free port.
async fn hello_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply =
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// Plain-HTTP GET through the frontend at `addr`; (status, body).
async fn get(addr: SocketAddr) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(STEP, out).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (code.parse().unwrap_or(0), body.to_string())
}

fn config(version: u64, web: SocketAddr, server: SocketAddr) -> DataplaneConfig {
    let mut fe = Frontend::new("web", Mode::Http, web);
    fe.default_backend = Some("app".into());
    let servers = vec![Server::new("s1", "127.0.0.1", server.port())];
    let be = Backend::new("app", Mode::Http, Balance::Roundrobin, servers);
    DataplaneConfig {
        version,
        frontends: vec![fe],
        backends: vec![be],
        ..Default::default()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_flags_exit_2_naming_the_flag() {
    let pki = dataplane_pki();
    let (cert, key) = (arg(&pki.path("server.crt")), arg(&pki.path("server.key")));
    let state = format!("--state-dir={}", arg(&pki.path("state")));
    let cases: [(&[&str], &str); 4] = [
        (
            &["--tls-cert", &cert, "--tls-key", &key, &state],
            "--token-file",
        ),
        (
            &["--tls-key", &key, "--token-file", "t", &state],
            "--tls-cert",
        ),
        (
            &[
                "--tls-cert",
                "/nonexistent.crt",
                "--tls-key",
                &key,
                "--token-file",
                "t",
                &state,
            ],
            "--tls-cert",
        ),
        (
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--token-file",
                "/nonexistent",
                &state,
            ],
            "--token-file",
        ),
    ];
    for (args, flag) in cases {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("FAIRLEAD_TOKEN_FILE")
            .env_remove("FAIRLEAD_CLIENT_CA")
            .output();
        let out = tokio::time::timeout(STEP, out).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let out = Command::new(BIN)
        .args([
            "--tls-cert",
            "/nonexistent.crt",
            "--tls-key",
            "/k",
            "--token-file",
            "/t",
        ])
        .env("FAIRLEAD_LOG_FORMAT", "json")
        .output();
    let out = tokio::time::timeout(STEP, out).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stderr}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("--tls-cert: /nonexistent.crt"),
        "{line}"
    );
    let out = Command::new(BIN).args(["--log-format", "xml"]).output();
    let out = tokio::time::timeout(STEP, out).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown format is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[possible values: text, json]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_serve_terminate_and_restart_from_the_state_dir() {
    let pki = dataplane_pki();
    let server = hello_server().await;
    let web = free_addr();

    let dp = Dataplane::start(&pki, "log1").await;
    assert_eq!(dp.curl(&pki, "/readyz", &[]).await.0, 503);
    assert_eq!(dp.curl(&pki, "/v1/status", &[]).await.0, 401);
    write(
        &pki.path("push.json"),
        &config(9, web, server).to_json_pretty(),
    );
    let body = format!("@{}", arg(&pki.path("push.json")));
    let put = [&TOKEN[..], &["-X", "PUT", "--data-binary", &body]].concat();
    assert_eq!(
        dp.curl(&pki, "/v1/config", &put).await,
        (200, "{\"version\":9}\n".into())
    );
    assert_eq!(get(web).await, (200, "hello\n".into()));
    let (code, status) = dp.curl(&pki, "/v1/status", &TOKEN).await;
    assert_eq!(code, 200);
    assert!(
        status.starts_with(r#"{"node":"node-b","version":9,"#),
        "{status}"
    );
    let (exit, took) = dp.terminate().await;
    assert!(exit.success(), "{exit:?}: {}", pki.read("log1"));
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    let log = pki.read("log1");
    assert!(
        log.contains("config applied") && log.contains("version=9"),
        "{log}"
    );
    assert!(log.contains("admin API call refused"), "{log}");
    assert_eq!(get(web).await.0, 0, "stopped dataplane still serves");

    // Restarted: serves the persisted config before anyone pushes.
    let dp = Dataplane::start(&pki, "log2").await;
    assert_eq!(dp.curl(&pki, "/readyz", &[]).await.0, 200);
    assert_eq!(get(web).await, (200, "hello\n".into()));
    assert!(pki.read("log2").contains("persisted config applied"));
    let (exit, _) = dp.terminate().await;
    assert!(exit.success(), "{exit:?}");

    // A corrupt state file is logged and ignored.
    write(&pki.path("state/config.json"), "{\"version\": 9, \"fron");
    let dp = Dataplane::start(&pki, "log3").await;
    assert_eq!(dp.curl(&pki, "/readyz", &[]).await.0, 503);
    assert_eq!(get(web).await.0, 0);
    let log = pki.read("log3");
    assert!(log.contains("persisted config is corrupt"), "{log}");
    let (exit, _) = dp.terminate().await;
    assert!(exit.success(), "{exit:?}");
}
