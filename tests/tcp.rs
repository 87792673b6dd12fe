//! TCP mode over real sockets: relay with half-close, retries, timeouts, maxconn.

mod common;

use std::time::Duration;

use common::*;
use fairlead_dataplane::config::{Balance, Mode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

async fn greeting(c: &mut Conn) -> String {
    let mut line = String::new();
    tokio::time::timeout(STEP, c.io.read_line(&mut line))
        .await
        .expect("greeting in time")
        .unwrap();
    line.trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_both_ways_and_honours_half_close() {
    let demo = Demo::start("echo", "tcp");
    let fe = frontend("fe", Mode::Tcp, "be");
    let addr = fe.bind;
    let _e = serve(
        fe,
        backend("be", Mode::Tcp, Balance::Roundrobin, vec![demo.server("s")]),
    )
    .await;
    let mut c = Conn::open(addr).await;
    assert_eq!(greeting(&mut c).await, "echo");
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = c.io.into_inner().into_split();
    let send = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&send).await.unwrap();
        w.shutdown().await.unwrap(); // half-close: the server still answers after this
    });
    let mut back = Vec::new();
    tokio::time::timeout(STEP, r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(&back[..payload.len()], &payload[..]);
    assert_eq!(
        String::from_utf8_lossy(&back[payload.len()..]).trim(),
        "bye echo"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connect_is_retried_on_another_server() {
    let demo = Demo::start("alive", "tcp");
    let fe = frontend("fe", Mode::Tcp, "be");
    let addr = fe.bind;
    let servers = vec![dead_server("d1"), dead_server("d2"), demo.server("alive")];
    let _e = serve(fe, backend("be", Mode::Tcp, Balance::Roundrobin, servers)).await;
    for _ in 0..6 {
        assert_eq!(greeting(&mut Conn::open(addr).await).await, "alive");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_session_is_closed_after_timeout_but_busy_one_lives() {
    let demo = Demo::start("echo", "tcp");
    let mut fe = frontend("fe", Mode::Tcp, "be");
    fe.client_timeout_ms = 400;
    let addr = fe.bind;
    let mut be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![demo.server("s")]);
    be.server_timeout_ms = 400;
    let _e = serve(fe, be).await;
    let mut busy = Conn::open(addr).await;
    greeting(&mut busy).await;
    // Traffic every 150 ms for 1.2 s keeps a session alive past the 400 ms timeout.
    let mut last = std::time::Instant::now();
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        busy.send_raw(format!("ping{i}\n").as_bytes()).await;
        assert_eq!(greeting(&mut busy).await, format!("ping{i}"));
        last = std::time::Instant::now();
    }
    assert!(
        busy.closed_within(Duration::from_secs(3)).await,
        "idle session stayed open"
    );
    let idle = last.elapsed();
    assert!(
        idle >= Duration::from_millis(350),
        "closed after only {idle:?} idle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_queues_further_clients() {
    let demo = Demo::start("echo", "tcp");
    let mut fe = frontend("fe", Mode::Tcp, "be");
    fe.max_connections = 2;
    let addr = fe.bind;
    let _e = serve(
        fe,
        backend("be", Mode::Tcp, Balance::Roundrobin, vec![demo.server("s")]),
    )
    .await;
    let mut first = Conn::open(addr).await;
    let mut second = Conn::open(addr).await;
    greeting(&mut first).await;
    greeting(&mut second).await;
    let mut third = Conn::open(addr).await; // the kernel accepts it; fairlead does not serve it yet
    let mut line = String::new();
    let early =
        tokio::time::timeout(Duration::from_millis(500), third.io.read_line(&mut line)).await;
    assert!(
        early.is_err(),
        "third client served beyond maxconn: {line:?}"
    );
    drop(first);
    assert_eq!(greeting(&mut third).await, "echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_server_closes_the_client() {
    let fe = frontend("fe", Mode::Tcp, "be");
    let addr = fe.bind;
    let _e = serve(fe, backend("be", Mode::Tcp, Balance::Roundrobin, vec![])).await;
    let mut c = Conn::open(addr).await;
    assert!(c.closed_within(Duration::from_secs(2)).await);
}

/// `sendProxyV2` against HAProxy (Debian's), which accepts PROXY v2 on its
/// bind (`accept-proxy`) and answers with the addresses the header carried.
#[tokio::test(flavor = "multi_thread")]
async fn send_proxy_v2_gives_haproxy_the_client_address() {
    let haproxy_addr = free_addr();
    let dir = std::env::temp_dir().join(format!("fairlead-proxy-v2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
             frontend f\n  bind {haproxy_addr} accept-proxy\n  \
             http-request return status 200 content-type text/plain lf-string \"%[src]:%[src_port] %[dst]:%[dst_port]\"\n"
        ),
    )
    .unwrap();
    let mut haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(haproxy_addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fe = frontend("fe", Mode::Tcp, "be");
    let addr = fe.bind;
    let server = fairlead_dataplane::config::Server::new("h", "127.0.0.1", haproxy_addr.port());
    let mut be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![server]);
    be.send_proxy_v2 = true;
    let _e = serve(fe, be).await;
    let mut c = Conn::open_from(addr, "127.0.0.9").await;
    let local = c.io.get_ref().local_addr().unwrap();
    let resp = c.get("/").await;
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), format!("{local} {addr}"));
}

/// A client served (greeted) within `wait`.
async fn greeted_within(c: &mut Conn, wait: Duration) -> bool {
    let mut line = String::new();
    matches!(tokio::time::timeout(wait, c.io.read_line(&mut line)).await, Ok(Ok(n)) if n > 0)
}

/// maxConnections changed on a full frontend (issue 12, item 8), with the
/// listener on two runtimes (a socket each): raised, waiting clients are
/// served at once; lowered, none is let in until the count is below the new
/// limit; sampled every millisecond, the count is never above the limit.
#[tokio::test(flavor = "multi_thread")]
async fn max_connections_changes_apply_at_once_and_are_never_exceeded() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let workers =
        fairlead_dataplane::engine::Workers::start(std::num::NonZeroUsize::new(2)).unwrap();
    let demo = Demo::start("echo", "tcp");
    let mut fe = frontend("fe", Mode::Tcp, "be");
    fe.max_connections = 10;
    let addr = fe.bind;
    let be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![demo.server("s")]);
    let engine = Arc::new(fairlead_dataplane::Engine::new().serving_on(workers.handles()));
    let apply = |version, limit| {
        let mut fe = fe.clone();
        fe.max_connections = limit;
        let engine = engine.clone();
        let cfg = config(version, vec![fe], vec![be.clone()]);
        async move { engine.apply(cfg).await.expect("applies") }
    };
    apply(1, 10).await;
    // The highest count sampled while the limit was 20, and once below 12 after lowering to it.
    let (max_20, max_12, lowered, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = tokio::spawn({
        let (engine, max_20, max_12, lowered, done) = (
            engine.clone(),
            max_20.clone(),
            max_12.clone(),
            lowered.clone(),
            done.clone(),
        );
        async move {
            let mut below = false;
            for _ in 0..60_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let n = engine.active_connections();
                if !lowered.load(Ordering::SeqCst) {
                    max_20.fetch_max(n, Ordering::SeqCst);
                } else if n <= 12 || below {
                    below = true;
                    max_12.fetch_max(n, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut held = Vec::new();
    for i in 0..10 {
        let mut c = Conn::open(addr).await;
        let ok = greeted_within(&mut c, STEP).await;
        assert!(
            ok,
            "client {i} not served; {} open",
            engine.active_connections()
        );
        held.push(c);
    }
    let mut waiting = Vec::new();
    for _ in 0..5 {
        waiting.push(Conn::open(addr).await);
    }
    for c in &mut waiting {
        assert!(
            !greeted_within(c, Duration::from_millis(100)).await,
            "served beyond 10"
        );
    }
    let raised = std::time::Instant::now();
    apply(2, 20).await;
    for c in &mut waiting {
        assert!(
            greeted_within(c, Duration::from_secs(1)).await,
            "not served after the raise"
        );
    }
    let took = raised.elapsed();
    println!("5 waiting clients served {took:?} after raising the limit");
    held.append(&mut waiting);
    // 15 open: 5 more get in, 5 wait.
    let (mut served, mut queued) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let mut c = Conn::open(addr).await;
        match greeted_within(&mut c, Duration::from_millis(300)).await {
            true => served.push(c),
            false => queued.push(c),
        }
    }
    assert_eq!(served.len(), 5, "20 is the limit");
    assert_eq!(engine.active_connections(), 20);
    // Lowered to 12 with 20 open: none gets in; 10 leave, then 2 get in.
    apply(3, 12).await;
    for c in &mut queued {
        assert!(
            !greeted_within(c, Duration::from_millis(60)).await,
            "served beyond 12"
        );
    }
    lowered.store(true, Ordering::SeqCst);
    held.truncate(5);
    for _ in 0..500 {
        if engine.active_connections() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut admitted = 0;
    for c in &mut queued {
        admitted += greeted_within(c, Duration::from_millis(300)).await as usize;
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let (max_20, max_12) = (max_20.load(Ordering::SeqCst), max_12.load(Ordering::SeqCst));
    println!("highest count: {max_20} under 20; {max_12} under 12 once below it");
    assert!(max_20 <= 20, "{max_20} open under a limit of 20");
    assert!(max_12 <= 12, "{max_12} open under a limit of 12");
    assert_eq!(admitted, 2, "after lowering to 12 with 10 open, 2 more");
    assert_eq!(engine.active_connections(), 12);
    engine.shutdown(Duration::from_millis(100)).await;
}
