//! Access logs against a real rsyslog from Debian, configured as the
//! HAProxy tutorial does (imudp on a loopback port, `local2.*` to a file):
//! requests made with curl and TCP connections appear in the file with the
//! right fields, in httplog, tcplog and JSON over RFC 3164 and RFC 5424; a
//! server's health-check transition goes there too; a killed rsyslog loses
//! lines (counted as dropped) but never slows or fails a request.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fairlead_dataplane::config::{
    Balance, HealthCheck, LogFormat, Logging, Mode, Syslog, SyslogFormat,
};

/// An rsyslogd of our own: its config, pid file and work directory in `dir`.
struct Rsyslog {
    child: Child,
    file: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let file = dir.join("haproxy.log");
        let json = dir.join("json.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\")\n\
                 module(load=\"imudp\")\n\
                 input(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\")\n\
                 local2.* {file}\n\
                 local3.* {json}\n",
                work = dir.join("work").display(),
                file = file.display(),
                json = json.display(),
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd runs (apt-get install rsyslog)");
        let r = Rsyslog { child, file };
        // Ready once a probe sent to it lands in the file.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        while !r.text().contains("probe-ready") {
            assert!(started.elapsed() < STEP, "rsyslogd did not start");
            let _ = probe.send_to(b"<150>probe: probe-ready", ("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }

    fn json(&self) -> String {
        std::fs::read_to_string(self.file.with_file_name("json.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `STEP` for `f` to find something.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if started.elapsed() > STEP {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `curl` from `local_port` to `url`: the status code and the bytes
/// received (head and body).
fn curl(url: &str, local_port: u16) -> (u16, u64) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .args(["-w", "%{http_code} %{size_header} %{size_download}"])
        .args(["--local-port", &local_port.to_string(), url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let n: Vec<u64> = text.split(' ').filter_map(|n| n.parse().ok()).collect();
    assert_eq!(n.len(), 3, "curl wrote {text:?}");
    (n[0] as u16, n[1] + n[2])
}

fn syslog(port: u16, facility: &str, format: SyslogFormat) -> Option<Syslog> {
    Some(Syslog {
        address: format!("127.0.0.1:{port}"),
        facility: facility.into(),
        tag: "haproxy".into(),
        format,
    })
}

fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_rsyslog_and_a_dead_rsyslog_costs_nothing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("access_log");
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_addr().port();
    let rsyslog = Rsyslog::start(&dir, port);

    let srv1 = Demo::http("srv1");
    let srv2 = Demo::http("srv2");
    let mut app = backend(
        "default/app",
        Mode::Http,
        Balance::Roundrobin,
        vec![srv1.server("srv1"), srv2.server("srv2")],
    );
    app.health_check = Some(HealthCheck {
        interval_ms: 200,
        timeout_ms: 150,
        fall: 2,
        rise: 1,
        ..HealthCheck::default()
    });
    let echo = Demo::start("echo", "tcp");
    let tcp_be = backend(
        "default/echo",
        Mode::Tcp,
        Balance::Roundrobin,
        vec![echo.server("echo")],
    );
    let mut web = frontend("default/web", Mode::Http, "default/app");
    web.logging = Some(Logging {
        format: LogFormat::Httplog,
        dont_log_null: true,
        stdout: false,
        syslog: syslog(port, "local2", SyslogFormat::Rfc3164),
    });
    let mut tcp = frontend("default/tcp", Mode::Tcp, "default/echo");
    tcp.logging = Some(Logging {
        format: LogFormat::Tcplog,
        dont_log_null: true,
        stdout: false,
        syslog: syslog(port, "local2", SyslogFormat::Rfc3164),
    });
    let mut api = frontend("default/api", Mode::Http, "default/app");
    api.logging = Some(Logging {
        format: LogFormat::Json,
        dont_log_null: false,
        stdout: true,
        syslog: syslog(port, "local3", SyslogFormat::Rfc5424),
    });
    let (web_addr, tcp_addr, api_addr) = (web.bind, tcp.bind, api.bind);
    let engine = engine(config(1, vec![web, tcp, api], vec![app, tcp_be])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An HTTP request with curl, from a known port.
    let local = free_addr().port();
    let (status, received) = curl(&format!("http://{web_addr}/hello?x=1"), local);
    assert_eq!(status, 200);
    let text = rsyslog.text();
    let line = wait_for(|| line_with(&rsyslog.text(), "/hello?x=1").map(str::to_string))
        .unwrap_or_else(|| panic!("no httplog line in {text}"));
    println!("httplog: {line}");
    // TIMESTAMP HOST haproxy[PID]: CLIENT [DATE] FRONTEND BACKEND/SERVER
    // TR/Tw/Tc/Tr/Ta STATUS BYTES - - ---- AC/FC/BC/SC/RC 0/0 "REQUEST"
    let msg = line.split_once(": ").expect("tag").1;
    let f: Vec<&str> = msg.split(' ').collect();
    assert!(line.contains(" haproxy["), "tag: {line}");
    assert_eq!(f[0], format!("127.0.0.1:{local}"));
    assert!(f[1].starts_with('[') && f[1].ends_with(']'), "{msg}");
    assert_eq!(f[2], "default/web");
    assert!(
        f[3] == "default/app/srv1" || f[3] == "default/app/srv2",
        "{msg}"
    );
    let timers: Vec<i64> = f[4].split('/').map(|t| t.parse().unwrap()).collect();
    assert_eq!(timers.len(), 5, "{msg}");
    assert!(
        timers.iter().all(|t| *t >= 0) && timers[4] >= timers[3],
        "{msg}"
    );
    assert_eq!(f[5], "200");
    assert_eq!(f[6], received.to_string(), "bytes as curl got them: {msg}");
    assert_eq!(&f[7..10], ["-", "-", "----"]);
    assert_eq!(f[10].split('/').count(), 5, "{msg}");
    assert_eq!(f[11], "0/0");
    assert!(msg.ends_with("\"GET /hello?x=1 HTTP/1.1\""), "{msg}");

    // A TCP connection that sends and receives, and one that sends nothing
    // (dontLogNull: not logged).
    let mut s = TcpStream::connect(tcp_addr).unwrap();
    let tcp_local = s.local_addr().unwrap().port();
    s.write_all(b"ping\n").unwrap();
    // The demo writes its name, then echoes; on half-close it says bye.
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("ping") {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    // Half-close: the demo says bye and closes; all it sent reached us.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.read_to_end(&mut got).unwrap();
    let n = got.len();
    drop(s);
    let null = TcpStream::connect(tcp_addr).unwrap();
    let null_local = null.local_addr().unwrap().port();
    drop(null);
    let tcp_line = wait_for(|| {
        line_with(&rsyslog.text(), &format!("127.0.0.1:{tcp_local} ")).map(str::to_string)
    })
    .expect("tcplog line");
    println!("tcplog: {tcp_line}");
    let msg = tcp_line.split_once(": ").unwrap().1;
    let f: Vec<&str> = msg.split(' ').collect();
    // CLIENT [DATE] FRONTEND BACKEND/SERVER Tw/Tc/Tt BYTES STATE AC/FC/BC/SC/RC 0/0
    assert_eq!(f.len(), 9, "{msg}");
    assert_eq!(f[2], "default/tcp");
    assert_eq!(f[3], "default/echo/echo");
    assert_eq!(f[4].split('/').count(), 3);
    assert_eq!(f[5], n.to_string(), "bytes to the client");
    assert_eq!(f[6], "--");
    assert_eq!(f[7].split('/').count(), 5);
    assert_eq!(f[8], "0/0");

    // JSON over RFC 5424 to local3, and on stdout.
    let local = free_addr().port();
    assert_eq!(curl(&format!("http://{api_addr}/api"), local).0, 200);
    let json = wait_for(|| line_with(&rsyslog.json(), "GET /api ").map(str::to_string))
        .expect("JSON line");
    println!("json: {json}");
    let object = &json[json.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(object).unwrap();
    assert_eq!(v["client_port"], local);
    assert_eq!(v["frontend_name"], "default/api");
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["http_request"], "GET /api HTTP/1.1");

    // A health-check transition goes to the same syslog.
    drop(srv2);
    let down = wait_for(|| {
        line_with(&rsyslog.text(), "Server default/app/srv2 is DOWN").map(str::to_string)
    })
    .expect("DOWN event");
    println!("event: {down}");
    assert!(
        !rsyslog.text().contains(&format!("127.0.0.1:{null_local} ")),
        "a connection that sent nothing is not logged"
    );

    // Kill rsyslog: requests still succeed, no slower; lines are dropped and counted.
    let timed = move |n: usize| {
        let started = Instant::now();
        let ok = (0..n)
            .filter(|i| {
                let mut c = TcpStream::connect(web_addr).unwrap();
                c.set_read_timeout(Some(STEP)).unwrap();
                write!(c, "GET /t{i} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
                let mut out = String::new();
                let _ = c.read_to_string(&mut out);
                out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")
            })
            .count();
        (ok, started.elapsed())
    };
    let (ok_before, before) = tokio::task::spawn_blocking(move || timed(200))
        .await
        .unwrap();
    let dropped_before = engine.snapshot().process.dropped_logs;
    drop(rsyslog);
    let (ok_after, after) = tokio::task::spawn_blocking(move || timed(200))
        .await
        .unwrap();
    let dropped = engine.snapshot().process.dropped_logs - dropped_before;
    println!(
        "200 requests: {before:?} with rsyslog, {after:?} after its kill; {dropped} lines dropped"
    );
    assert_eq!((ok_before, ok_after), (200, 200));
    assert!(
        after < before * 3 + Duration::from_millis(500),
        "requests slowed: {before:?} then {after:?}"
    );
    assert!(dropped > 0, "lines refused by the dead syslog are counted");
    let metrics = String::from_utf8(engine.metrics().to_vec()).unwrap();
    assert!(
        metrics.contains("haproxy_process_dropped_logs_total "),
        "{metrics}"
    );
}

/// The state field (7th) of the tcplog line from client port `local`.
fn tcplog_state(rsyslog: &Rsyslog, local: u16) -> String {
    let line =
        wait_for(|| line_with(&rsyslog.text(), &format!("127.0.0.1:{local} ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no tcplog line for port {local}:\n{}", rsyslog.text()));
    println!("tcplog: {line}");
    let msg = line.split_once(": ").unwrap().1;
    msg.split(' ').nth(6).unwrap_or_default().to_string()
}

/// HAProxy's termination states in tcplog lines, with real sockets (issue
/// 11): `--` both sides closed, `CD` client reset, `SD` server reset, `cD`
/// idle past the client timeout, `SC` connection refused, `cR` no TLS
/// ClientHello on a passthrough frontend within the client timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcplog_termination_states() {
    use std::net::TcpListener;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("access_log_states");
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_addr().port();
    let rsyslog = Rsyslog::start(&dir, port);
    let logging = Some(Logging {
        format: LogFormat::Tcplog,
        dont_log_null: false,
        stdout: false,
        syslog: syslog(port, "local2", SyslogFormat::Rfc3164),
    });
    let echo = Demo::start("echo", "tcp");
    // A server that sends a line, then resets the connection.
    let resetting = TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_addr = resetting.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in resetting.incoming().take(1) {
            let mut s = s.unwrap();
            s.write_all(b"hello\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    });
    let mut backends = Vec::new();
    let mut frontends = Vec::new();
    for (name, server) in [
        ("echo", echo.server("s")),
        (
            "reset",
            fairlead_dataplane::config::Server::new("s", "127.0.0.1", reset_addr.port()),
        ),
        ("dead", dead_server("s")),
    ] {
        backends.push(backend(name, Mode::Tcp, Balance::Roundrobin, vec![server]));
        let mut fe = frontend(name, Mode::Tcp, name);
        fe.client_timeout_ms = 300;
        fe.logging = logging.clone();
        frontends.push(fe);
    }
    let mut pass = frontend("pass", Mode::Tcp, "echo");
    pass.tls = Some(fairlead_dataplane::config::FrontendTls {
        mode: fairlead_dataplane::config::TlsMode::Passthrough,
        ..fairlead_dataplane::config::FrontendTls::terminate(Vec::new())
    });
    pass.client_timeout_ms = 300;
    pass.logging = logging.clone();
    frontends.push(pass);
    let addrs: Vec<_> = frontends.iter().map(|f| f.bind).collect();
    let _engine = engine(config(1, frontends, backends)).await;
    let local = |s: &TcpStream| s.local_addr().unwrap().port();
    let greet = |s: &mut TcpStream| {
        let mut buf = [0u8; 16];
        s.set_read_timeout(Some(STEP)).unwrap();
        assert!(s.read(&mut buf).unwrap() > 0);
    };
    let mut cases = Vec::new();
    // Both sides close: the client half-closes, the demo says bye and closes.
    let mut s = TcpStream::connect(addrs[0]).unwrap();
    greet(&mut s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    cases.push((local(&s), "--"));
    // The client resets.
    let mut s = TcpStream::connect(addrs[0]).unwrap();
    greet(&mut s);
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    cases.push((local(&s), "CD"));
    drop(s);
    // The client sends nothing past the 300 ms client timeout.
    let mut s = TcpStream::connect(addrs[0]).unwrap();
    greet(&mut s);
    let _ = s.read_to_end(&mut Vec::new());
    cases.push((local(&s), "cD"));
    // The server resets.
    let mut s = TcpStream::connect(addrs[1]).unwrap();
    greet(&mut s);
    let _ = s.read_to_end(&mut Vec::new());
    cases.push((local(&s), "SD"));
    // The server refuses.
    let mut s = TcpStream::connect(addrs[2]).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    cases.push((local(&s), "SC"));
    // No ClientHello on a passthrough frontend.
    let mut s = TcpStream::connect(addrs[3]).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    cases.push((local(&s), "cR"));
    for (port, state) in cases {
        assert_eq!(tcplog_state(&rsyslog, port), state, "client port {port}");
    }
}

/// Requests that never reach a server are logged as HAProxy logs them: a
/// head that does not parse as `<BADREQ>` with 400 and `PR--`, a head not
/// finished within the http-request timeout with 408 and `cR--`, a client
/// gone mid-head with `CR--`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_slow_requests_are_logged_like_haproxy() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("access_log_bad");
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_addr().port();
    let rsyslog = Rsyslog::start(&dir, port);
    let srv = Demo::http("srv1");
    let app = backend(
        "default/app",
        Mode::Http,
        Balance::Roundrobin,
        vec![srv.server("srv1")],
    );
    let mut web = frontend("default/web", Mode::Http, "default/app");
    web.http_request_timeout_ms = Some(300);
    web.logging = Some(Logging {
        format: LogFormat::Httplog,
        dont_log_null: false,
        stdout: false,
        syslog: syslog(port, "local2", SyslogFormat::Rfc3164),
    });
    let addr = web.bind;
    let _engine = engine(config(1, vec![web], vec![app])).await;
    let exchange = |raw: &'static [u8], close: bool| {
        let mut s = TcpStream::connect(addr).unwrap();
        let local = s.local_addr().unwrap().port();
        s.write_all(raw).unwrap();
        if close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        s.set_read_timeout(Some(STEP)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        (local, String::from_utf8_lossy(&got).into_owned())
    };
    let (bad, got) = exchange(b"NOT HTTP AT ALL\r\n\r\n", false);
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    let (slow, got) = exchange(b"GET / HTTP/1.1\r\nHost: x\r\n", false);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    let (gone, got) = exchange(b"GET / HTTP/1.1\r\nHost: x\r\n", true);
    assert!(got.is_empty(), "{got}");
    for (local, status, state) in [
        (bad, "400", "PR--"),
        (slow, "408", "cR--"),
        (gone, "400", "CR--"),
    ] {
        let needle = format!("127.0.0.1:{local} ");
        let line = wait_for(|| line_with(&rsyslog.text(), &needle).map(str::to_string))
            .unwrap_or_else(|| panic!("no line for {needle} in {}", rsyslog.text()));
        let msg = line.split_once(": ").expect("tag").1;
        let f: Vec<&str> = msg.split(' ').collect();
        assert_eq!(f[3], "default/web/<NOSRV>", "{msg}");
        assert_eq!((f[5], f[9]), (status, state), "{msg}");
        assert!(msg.ends_with("\"<BADREQ>\""), "{msg}");
    }
}
