//! HTTP mode over real sockets: keep-alive, routing, errors, streaming, upgrade.

mod common;

use std::time::Duration;

use common::*;
use fairlead_dataplane::config::{Balance, Mode, Route};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

async fn single(demo: &Demo) -> (fairlead_dataplane::Engine, std::net::SocketAddr) {
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let e = serve_one(fe, demo).await;
    (e, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_on_both_sides_reuses_server_connections() {
    let counter = CountingServer::start().await;
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let server = fairlead_dataplane::config::Server::new("c", "127.0.0.1", counter.addr.port());
    let _e = serve(
        fe,
        backend("be", Mode::Http, Balance::Roundrobin, vec![server]),
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..50 {
        assert_eq!(conn.get("/").await.status, 200);
    }
    for _ in 0..20 {
        assert_eq!(get(addr, "/").await.status, 200);
    }
    let accepted = counter.accepted();
    assert!(
        accepted <= 2,
        "70 sequential requests opened {accepted} server connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_are_added() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    let mut conn = Conn::open(addr).await;
    conn.send_raw(b"GET /headers HTTP/1.1\r\nHost: app.example:8080\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: keep-alive, x-hop\r\nX-Hop: secret\r\n\r\n")
        .await;
    let body = conn.read_response().await.text().to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 203.0.113.9"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    assert!(body.contains("host: app.example:8080"), "{body}");
    assert!(!body.contains("x-hop"), "hop-by-hop header leaked: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_and_path_with_default() {
    let (api, web, other) = (Demo::http("api"), Demo::http("web"), Demo::http("other"));
    let mut fe = frontend("fe", Mode::Http, "default");
    fe.routes = vec![
        Route {
            host: Some("api.example.com".into()),
            path_prefix: Some("/v1".into()),
            backend: "api".into(),
            ..Default::default()
        },
        Route {
            host: Some("*.example.com".into()),
            backend: "web".into(),
            ..Default::default()
        },
    ];
    let addr = fe.bind;
    let backends = vec![
        backend(
            "api",
            Mode::Http,
            Balance::Roundrobin,
            vec![api.server("s")],
        ),
        backend(
            "web",
            Mode::Http,
            Balance::Roundrobin,
            vec![web.server("s")],
        ),
        backend(
            "default",
            Mode::Http,
            Balance::Roundrobin,
            vec![other.server("s")],
        ),
    ];
    let _e = engine(config(1, vec![fe], backends)).await;
    let cases = [
        ("API.example.com:8080", "/v1/users", "api"),
        ("api.example.com", "/v1", "api"),
        ("api.example.com", "/v10", "web"),
        ("www.example.com", "/v1", "web"),
        ("example.org", "/", "other"),
    ];
    for (host, path, want) in cases {
        let mut c = Conn::open(addr).await;
        c.send_raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        assert_eq!(c.read_response().await.text().trim(), want, "{host}{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_server_gives_503_and_bad_responses_502() {
    let demo = Demo::http("s");
    let (mut fe, empty) = (
        frontend("fe", Mode::Http, "empty"),
        backend("empty", Mode::Http, Balance::Roundrobin, vec![]),
    );
    let mut fe2 = frontend("fe2", Mode::Http, "be");
    fe.routes.clear();
    fe2.routes.clear();
    let (a1, a2) = (fe.bind, fe2.bind);
    let be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    let _e = engine(config(1, vec![fe, fe2], vec![empty, be])).await;
    assert_eq!(get(a1, "/").await.status, 503);
    assert_eq!(get(a2, "/close").await.status, 502);
    assert_eq!(get(a2, "/bad").await.status, 502);
    assert_eq!(
        get(a2, "/").await.status,
        200,
        "the proxy still serves after bad responses"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connect_fails_over_to_another_server() {
    let demo = Demo::http("alive");
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let servers = vec![
        dead_server("dead1"),
        demo.server("alive"),
        dead_server("dead2"),
    ];
    let _e = serve(fe, backend("be", Mode::Http, Balance::Roundrobin, servers)).await;
    assert_eq!(tally(addr, 12).await.get("alive"), Some(&12));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_timeout_gives_504() {
    let demo = Demo::http("s");
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let mut be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    be.server_timeout_ms = 300;
    let _e = serve(fe, be).await;
    let t = std::time::Instant::now();
    assert_eq!(get(addr, "/sleep?ms=3000").await.status, 504);
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(get(addr, "/sleep?ms=10").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_timeout_gives_503() {
    let (blackhole, _queue_filler) = unanswering_server().await;
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let server = fairlead_dataplane::config::Server::new("hole", "127.0.0.1", blackhole.port());
    let mut be = backend("be", Mode::Http, Balance::Roundrobin, vec![server]);
    be.connect_timeout_ms = 200;
    be.retries = 1;
    let _e = serve(fe, be).await;
    let t = std::time::Instant::now();
    assert_eq!(get(addr, "/").await.status, 503);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(3000),
        "two 200 ms attempts took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_client_is_closed_after_client_timeout() {
    let demo = Demo::http("s");
    let mut fe = frontend("fe", Mode::Http, "be");
    fe.client_timeout_ms = 300;
    let addr = fe.bind;
    let _e = serve_one(fe, &demo).await;
    let mut conn = Conn::open(addr).await;
    assert_eq!(conn.get("/").await.status, 200);
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "idle keep-alive connection stayed open"
    );
    // A client that never finishes its headers gets 408 and is dropped too
    // (the http-request timeout defaults to the client timeout when shorter).
    let mut slow = Conn::open(addr).await;
    slow.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    let r = slow.read_response().await;
    assert_eq!(r.status, 408);
    assert!(
        slow.closed_within(Duration::from_secs(3)).await,
        "half-sent request held the connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_requests_get_4xx_and_the_proxy_lives_on() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    let mut c = Conn::open(addr).await;
    c.send_raw(b"THIS IS NOT HTTP\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 400);
    let mut c = Conn::open(addr).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello")
        .await;
    assert_eq!(c.read_response().await.status, 400);
    let mut c = Conn::open(addr).await;
    let big = "a".repeat(20_000);
    c.send_raw(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(c.read_response().await.status, 431);
    for junk in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\r\n\r\n\r\n",
    ] {
        let mut c = Conn::open(addr).await;
        c.send_raw(junk).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(STEP, c.io.read_to_end(&mut buf)).await;
    }
    assert_eq!(get(addr, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_megabytes_stream_both_ways() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    const SIZE: usize = 100 * 1024 * 1024;
    // Upload, chunked, counted by the server without buffering.
    let mut c = Conn::open(addr).await;
    c.send_raw(b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let chunk = vec![b'x'; 1024 * 1024];
    let head = format!("{:x}\r\n", chunk.len());
    for _ in 0..SIZE / chunk.len() {
        c.send_raw(head.as_bytes()).await;
        c.send_raw(&chunk).await;
        c.send_raw(b"\r\n").await;
    }
    c.send_raw(b"0\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.text().trim(), SIZE.to_string());
    // Download on the same connection, streamed by the server.
    let r = c.get(&format!("/stream?bytes={SIZE}")).await;
    assert_eq!(r.body.len(), SIZE);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrade_tunnels_both_ways() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    let mut c = Conn::open(addr).await;
    c.send_raw(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("upgrade").map(|u| u.to_ascii_lowercase()),
        Some("websocket".into())
    );
    for msg in [&b"hello"[..], b"\x81\x05world", &[0u8; 4096][..]] {
        c.io.get_mut().write_all(msg).await.unwrap();
        let mut back = vec![0; msg.len()];
        tokio::time::timeout(STEP, c.io.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

/// An HTTP server that counts accepted connections and answers every request.
struct CountingServer {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut io = tokio::io::BufReader::new(s);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match io.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => {
                                if io
                                    .get_mut()
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        CountingServer { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A listener whose accept queue is full, so further connects hang (SYNs dropped).
async fn unanswering_server() -> (
    std::net::SocketAddr,
    (socket2::Socket, Vec<std::net::TcpStream>),
) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    (addr, (sock, fillers))
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_head_and_http10_requests() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    // Three requests in one write come back in order on one connection.
    let mut c = Conn::open(addr).await;
    c.send_raw(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes?n=3 HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.text(), "s\n");
    assert_eq!(c.read_response().await.body.len(), 3);
    assert_eq!(c.read_response().await.text(), "s\n");
    // HEAD: the length of the body, no body; the next response follows at once.
    c.send_raw(b"HEAD /bytes?n=5 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, c.io.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(raw.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(raw.contains("content-length: 5\r\n"), "{raw}");
    let second = raw
        .find("\r\n\r\nhttp/1.1 200 ok\r\n")
        .expect("second response");
    assert!(raw[second..].contains("connection: close"), "{raw}");
    assert!(raw.ends_with("\r\n\r\ns\n"), "{raw}");
    // HTTP/1.0: a chunked body from the server arrives without chunks, then close.
    let mut c = Conn::open(addr).await;
    c.send_raw(b"GET /stream?bytes=100000 HTTP/1.0\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body.len(), 100_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_continue_and_content_length_upload() {
    let demo = Demo::http("s");
    let (_e, addr) = single(&demo).await;
    let mut c = Conn::open(addr).await;
    c.send_raw(
        b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    // The interim response has no body: its head ends at the blank line.
    let mut interim = String::new();
    while !interim.ends_with("\r\n\r\n") {
        let n = tokio::time::timeout(STEP, c.io.read_line(&mut interim))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {interim:?}");
    }
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send_raw(b"hello").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().trim()), (200, "5"));
    let body = vec![b'x'; 3 * 1024 * 1024];
    c.send_raw(
        format!(
            "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    c.send_raw(&body).await;
    assert_eq!(
        c.read_response().await.text().trim(),
        body.len().to_string()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_the_server_closed_is_not_used() {
    // The server claims keep-alive but closes after each response.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let server = fairlead_dataplane::config::Server::new("c", "127.0.0.1", port);
    let _e = serve(
        fe,
        backend("be", Mode::Http, Balance::Roundrobin, vec![server]),
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..10 {
        let r = conn.get("/").await;
        assert_eq!((r.status, r.text()), (200, "ok".to_string()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_get_408_and_idle_keep_alive_closes() {
    let demo = Demo::http("s");
    let mut fe = frontend("fe", Mode::Http, "be");
    fe.http_request_timeout_ms = Some(600);
    fe.http_keep_alive_timeout_ms = Some(300);
    let addr = fe.bind;
    let _e = serve_one(fe, &demo).await;
    // Slowloris: a header line every 100 ms never completes the head.
    let reader = Conn::open(addr).await; // sends nothing meanwhile
    let (answer, took) = slowloris(addr).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(3), "408 after {took:?}");
    let mut reader = reader;
    // A connection that sent nothing is closed after the http-request timeout.
    assert!(reader.closed_within(Duration::from_secs(2)).await);
    // Idle between requests: closed after the keep-alive timeout.
    let mut c = Conn::open(addr).await;
    assert_eq!(c.get("/").await.status, 200);
    let idle = std::time::Instant::now();
    assert!(c.closed_within(Duration::from_secs(3)).await);
    let idle = idle.elapsed();
    assert!(idle >= Duration::from_millis(250), "closed after {idle:?}");
}

/// Sends a request head a line every 100 ms (for at most 5 s); what came
/// back until the proxy closed, and when.
async fn slowloris(addr: std::net::SocketAddr) -> (String, Duration) {
    let started = std::time::Instant::now();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = async move {
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if w.write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    let mut answer = Vec::new();
    tokio::select! {
        _ = tokio::time::timeout(STEP, r.read_to_end(&mut answer)) => {}
        _ = trickle => {}
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}
