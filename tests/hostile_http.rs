//! Hostile HTTP/1.1 input over real sockets (issue 12, items 9-11), sent to
//! fairlead and, as the reference, to HAProxy 2.6 in front of the same server.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fairlead_dataplane::config::Mode;
use tokio::io::AsyncWriteExt;

/// HAProxy (`haproxy -db`) proxying one loopback port to `server`; killed on drop.
struct Haproxy {
    addr: SocketAddr,
    child: Child,
}

impl Haproxy {
    async fn start(server: SocketAddr) -> Haproxy {
        let addr = free_addr();
        let dir = std::env::temp_dir().join(format!("fairlead-hostile-{}", addr.port()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
                 frontend fe\n  bind {addr}\n  default_backend be\n\
                 backend be\n  server s {server}\n"
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .expect("haproxy runs (scripts/install-deps.sh installs it)");
        let h = Haproxy { addr, child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("haproxy did not listen on {addr}");
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fairlead and HAProxy in front of one demo backend: (name, address) pairs.
async fn proxies(
    demo: &Demo,
) -> (
    fairlead_dataplane::Engine,
    Haproxy,
    Vec<(&'static str, SocketAddr)>,
) {
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let e = serve_one(fe, demo).await;
    let h = Haproxy::start(demo.addr).await;
    let targets = vec![("fairlead", addr), ("haproxy", h.addr)];
    (e, h, targets)
}

/// Sends `raw` on a new connection and returns the response's status.
async fn status_of(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut conn = Conn::open(addr).await;
    conn.send_raw(raw).await;
    conn.read_response().await.status
}

/// Only a single `chunked` is accepted: `chunked` twice is 400, any other
/// coding 422, as HAProxy 2.6 answers; the connection is closed after.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_or_unknown_transfer_codings_are_refused() {
    let demo = Demo::http("s");
    let (_e, _h, targets) = proxies(&demo).await;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    let ok = format!("POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    let bad = [
        ("Transfer-Encoding: chunked, chunked\r\n", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        ("Transfer-Encoding: foo, chunked\r\n", 422),
        ("Transfer-Encoding: gzip, chunked\r\n", 422),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            422,
        ),
    ];
    for (name, addr) in &targets {
        let mut conn = Conn::open(*addr).await;
        conn.send_raw(ok.as_bytes()).await;
        let resp = conn.read_response().await;
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "5\n"),
            "{name}: plain chunked"
        );
        for (te, want) in bad {
            let raw = format!("POST /count HTTP/1.1\r\nHost: t\r\n{te}\r\n{body}");
            let mut conn = Conn::open(*addr).await;
            conn.send_raw(raw.as_bytes()).await;
            let resp = conn.read_response().await;
            assert_eq!(resp.status, want, "{name}: {te:?} {}", resp.text());
            assert!(conn.closed_within(STEP).await, "{name}: {te:?} left open");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overflowing_chunk_size_from_the_client_is_400() {
    let demo = Demo::http("s");
    let (_e, _h, targets) = proxies(&demo).await;
    let raw = b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n";
    for (name, addr) in &targets {
        assert_eq!(status_of(*addr, raw).await, 400, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_closed_client_still_gets_the_response() {
    let demo = Demo::http("s");
    let (_e, _h, targets) = proxies(&demo).await;
    for (name, addr) in &targets {
        let mut conn = Conn::open(*addr).await;
        conn.send_raw(b"GET /sleep?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        conn.io.get_mut().shutdown().await.unwrap();
        let resp = conn.read_response().await;
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
    }
}
