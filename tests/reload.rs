//! Hitless config changes: kept sockets, connections held across applies,
//! rejected configs that leave the running one serving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use fairlead_dataplane::config::{Backend, Balance, Frontend, Mode};
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_connection_follows_the_new_config_and_no_request_fails() {
    let (a, b) = (Demo::http("a"), Demo::http("b"));
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let cfg = |v, server: &Demo, name| {
        config(
            v,
            vec![fe.clone()],
            vec![backend(
                "be",
                Mode::Http,
                Balance::Roundrobin,
                vec![server.server(name)],
            )],
        )
    };
    let engine = Arc::new(engine(cfg(1, &a, "a")).await);
    let mut held = Conn::open(addr).await;
    assert_eq!(held.get("/").await.text().trim(), "a");

    // Clients hammer the listener on new connections while the config flips 20 times.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => {
                        let mut c = Conn {
                            io: tokio::io::BufReader::new(s),
                        };
                        let r = c.get("/").await;
                        if r.status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed)
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed)
                        };
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    for v in 2..22 {
        let (server, name) = if v % 2 == 0 { (&b, "b") } else { (&a, "a") };
        engine.apply(cfg(v, server, name)).await.unwrap();
        assert_eq!(engine.version(), v);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} requests succeeded",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
    // Version 21 points at a: the held keep-alive connection sees it.
    assert_eq!(held.get("/").await.text().trim(), "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_session_survives_reload_and_removal_of_its_listener() {
    let echo = Demo::start("echo", "tcp");
    let fe = frontend("fe", Mode::Tcp, "be");
    let addr = fe.bind;
    let be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![echo.server("s")]);
    let engine = engine(config(1, vec![fe.clone()], vec![be.clone()])).await;
    let mut session = Conn::open(addr).await;
    let mut line = String::new();
    session.io.read_line(&mut line).await.unwrap();
    // Remove the frontend: the listener closes, the session goes on.
    engine.apply(config(2, vec![], vec![be])).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "removed listener still accepts"
    );
    session.send_raw(b"still here\n").await;
    line.clear();
    tokio::time::timeout(STEP, session.io.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line.trim(), "still here");
}

/// HTTP frontend `fe` sending to backend `be`, whose one server is demo `s`.
fn one_http_server() -> (Demo, Frontend, Backend) {
    let demo = Demo::http("s");
    let fe = frontend("fe", Mode::Http, "be");
    let servers = vec![demo.server("s")];
    let be = backend("be", Mode::Http, Balance::Roundrobin, servers);
    (demo, fe, be)
}

#[tokio::test(flavor = "multi_thread")]
async fn in_flight_request_finishes_when_its_listener_is_removed() {
    let (_demo, fe, be) = one_http_server();
    let addr = fe.bind;
    let engine = serve(fe, be.clone()).await;
    let mut c = Conn::open(addr).await;
    c.send_raw(b"GET /sleep?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.apply(config(2, vec![], vec![be])).await.unwrap();
    assert_eq!(c.read_response().await.status, 200);
    assert!(
        c.closed_within(Duration::from_secs(2)).await,
        "connection of a removed listener stays open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_config_leaves_the_running_one_untouched() {
    let (_demo, fe, be) = one_http_server();
    let addr = fe.bind;
    let engine = engine(config(1, vec![fe.clone()], vec![be.clone()])).await;

    // Invalid: a frontend pointing at a missing backend.
    let mut broken = fe.clone();
    broken.default_backend = Some("missing".into());
    let err = engine
        .apply(config(2, vec![broken], vec![be.clone()]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("backend \"missing\" does not exist"),
        "{err}"
    );

    // Valid but unbindable: a second frontend on a port someone else holds.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut extra = frontend("extra", Mode::Http, "be");
    extra.bind = squatter.local_addr().unwrap();
    let err = engine
        .apply(config(3, vec![fe.clone(), extra], vec![be]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("frontend extra: bind"), "{err}");

    assert_eq!(engine.version(), 1);
    assert_eq!(get(addr, "/").await.status, 200);
}
