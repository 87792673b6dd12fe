//! Active health checks against real demo backends that are stopped and
//! started again on the same port: time to leave and rejoin rotation, no
//! request to a server marked down, backups, 503, HTTP checks, the status API.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fairlead_dataplane::Engine;
use fairlead_dataplane::config::{Balance, HealthCheck, HttpCheck, Mode, StatusRange};
use fairlead_dataplane::health::status::{ServerState, ServerStatus};

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(50);
const FALL: u32 = 3;
const RISE: u32 = 2;
/// Allowance for scheduling on a loaded test machine, on top of each bound.
const SLACK: Duration = Duration::from_millis(250);

fn fast_check() -> HealthCheck {
    HealthCheck {
        interval_ms: INTERVAL.as_millis() as u64,
        timeout_ms: TIMEOUT.as_millis() as u64,
        fall: FALL,
        rise: RISE,
        ..HealthCheck::default()
    }
}

/// Polls the status API until `server` of `backend` satisfies `done`; at most `STEP`.
async fn wait_for(
    engine: &Engine,
    backend: &str,
    server: &str,
    done: impl Fn(&ServerStatus) -> bool,
) -> ServerStatus {
    let deadline = Instant::now() + STEP;
    loop {
        let status = engine.status().await;
        let s = status
            .backends
            .iter()
            .find(|b| b.name == backend)
            .and_then(|b| b.servers.iter().find(|s| s.name == server))
            .unwrap_or_else(|| panic!("{backend}/{server} in {status:?}"))
            .clone();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{backend}/{server} stuck: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn is(state: ServerState) -> impl Fn(&ServerStatus) -> bool {
    move |s| s.state == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_leaves_rotation_in_time_and_returns_when_started_again() {
    let a = Demo::http("a");
    let b = Demo::http("b");
    let mut be = backend(
        "app",
        Mode::Http,
        Balance::Roundrobin,
        vec![a.server("a"), b.server("b")],
    );
    // Without retries, a request sent to a dead server would fail: none may be.
    be.retries = 0;
    be.health_check = Some(fast_check());
    let fe = frontend("web", Mode::Http, "app");
    let addr = fe.bind;
    let mut cfg = config(1, vec![fe], vec![be]);
    let engine = engine(cfg.clone()).await;
    let checked = |s: &ServerStatus| s.last_check.as_ref().is_some_and(|c| c.ok);
    let first = wait_for(&engine, "app", "a", checked).await;
    assert_eq!(first.state, ServerState::Up);
    assert_eq!(first.last_check.unwrap().reason, "connected");
    assert_eq!(first.last_change_unix_ms, None, "started up, never changed");

    let a_addr = a.addr;
    drop(a);
    let stopped = Instant::now();
    let down = wait_for(&engine, "app", "a", is(ServerState::Down)).await;
    let took = stopped.elapsed();
    let bound = INTERVAL * FALL + TIMEOUT;
    eprintln!("left rotation {took:?} after the stop (bound {bound:?})");
    assert!(
        took <= bound + SLACK,
        "down after {took:?}, bound {bound:?}"
    );
    assert!(
        took >= INTERVAL * (FALL - 1),
        "down after {took:?}: too early"
    );
    assert_eq!(down.last_check.unwrap().reason, "connection refused");
    assert!(down.last_change_unix_ms.is_some());

    for _ in 0..50 {
        let r = get(addr, "/").await;
        assert_eq!((r.status, r.text().trim()), (200, "b"));
    }
    assert_eq!(
        tally(addr, 50).await.into_iter().collect::<Vec<_>>(),
        [("b".to_string(), 50)]
    );

    // A reload with the same backend keeps the state (and the checker).
    cfg.version = 2;
    cfg.frontends[0].client_timeout_ms = 30_000;
    engine.apply(cfg).await.unwrap();
    let status = engine.status().await;
    assert_eq!(status.version, 2);
    assert_eq!(status.backends[0].servers[0].state, ServerState::Down);

    let _a = Demo::start_at(a_addr, "a", "http");
    let started = Instant::now();
    let up = wait_for(&engine, "app", "a", is(ServerState::Up)).await;
    let took = started.elapsed();
    let bound = INTERVAL * RISE;
    eprintln!("back in rotation {took:?} after the start (bound {bound:?})");
    assert!(took <= bound + SLACK, "up after {took:?}, bound {bound:?}");
    assert!(
        took >= INTERVAL * (RISE - 1),
        "up after {took:?}: too early"
    );
    assert!(up.last_change_unix_ms > down.last_change_unix_ms);
    let counts = tally(addr, 20).await;
    assert_eq!((counts["a"], counts["b"]), (10, 10), "{counts:?}");
    engine.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_serve_while_every_active_server_is_down_and_none_gives_503() {
    let a = Demo::http("a");
    let c = Demo::http("c");
    let mut backup = c.server("c");
    backup.backup = true;
    let mut be = backend(
        "app",
        Mode::Http,
        Balance::Roundrobin,
        vec![a.server("a"), backup],
    );
    be.retries = 0;
    be.health_check = Some(HealthCheck {
        fall: 1,
        rise: 1,
        ..fast_check()
    });
    let fe = frontend("web", Mode::Http, "app");
    let addr = fe.bind;
    let engine = serve(fe, be).await;
    assert_eq!(tally(addr, 4).await["a"], 4);

    let a_addr = a.addr;
    drop(a);
    wait_for(&engine, "app", "a", is(ServerState::Down)).await;
    assert_eq!(tally(addr, 10).await["c"], 10, "the backup takes over");

    drop(c);
    wait_for(&engine, "app", "c", is(ServerState::Down)).await;
    for _ in 0..5 {
        assert_eq!(get(addr, "/").await.status, 503);
    }

    let _a = Demo::start_at(a_addr, "a", "http");
    wait_for(&engine, "app", "a", is(ServerState::Up)).await;
    assert_eq!(tally(addr, 4).await["a"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_judge_status_ranges_timeouts_and_garbage_and_tcp_checks_use_their_port() {
    let d = Demo::http("d");
    let http = |path: &str, expect: Vec<StatusRange>| HealthCheck {
        http: Some(HttpCheck {
            path: path.into(),
            expect_status: expect,
            ..HttpCheck::default()
        }),
        fall: 1,
        ..fast_check()
    };
    let ok_2xx = vec![StatusRange { from: 200, to: 299 }];
    let only_204 = vec![StatusRange { from: 204, to: 204 }];
    let checked = [
        ("ok", http("/", ok_2xx.clone())),
        ("strict", http("/", only_204)),
        ("slow", http("/sleep?ms=1000", ok_2xx.clone())),
        ("garbage", http("/bad", ok_2xx)),
    ];
    let mut backends: Vec<_> = checked
        .into_iter()
        .map(|(name, check)| {
            let mut b = backend(name, Mode::Http, Balance::Roundrobin, vec![d.server("d")]);
            b.health_check = Some(check);
            b
        })
        .collect();
    // A TCP check on another port: the dead server port does not matter, the check port does.
    let mut elsewhere = backend(
        "elsewhere",
        Mode::Http,
        Balance::Roundrobin,
        vec![dead_server("d")],
    );
    elsewhere.health_check = Some(HealthCheck {
        port: Some(d.addr.port()),
        ..fast_check()
    });
    let mut dead_port = backend(
        "dead-port",
        Mode::Http,
        Balance::Roundrobin,
        vec![d.server("d")],
    );
    dead_port.health_check = Some(HealthCheck {
        port: Some(free_addr().port()),
        fall: 1,
        ..fast_check()
    });
    let unchecked = backend(
        "unchecked",
        Mode::Http,
        Balance::Roundrobin,
        vec![d.server("d")],
    );
    backends.extend([elsewhere, dead_port, unchecked]);
    let fe = frontend("web", Mode::Http, "strict");
    let addr = fe.bind;
    let engine = engine(config(1, vec![fe], backends)).await;

    let checked = |s: &ServerStatus| s.last_check.is_some();
    let ok = wait_for(&engine, "ok", "d", checked).await;
    assert_eq!(ok.state, ServerState::Up);
    assert_eq!(ok.last_check.unwrap().reason, "HTTP status 200");
    for (backend, reason) in [
        ("strict", "HTTP status 200"),
        ("slow", "timeout after 50ms"),
        ("garbage", "malformed status line"),
        ("dead-port", "connection refused"),
    ] {
        let s = wait_for(&engine, backend, "d", is(ServerState::Down)).await;
        assert_eq!(s.last_check.unwrap().reason, reason, "{backend}");
    }
    let s = wait_for(&engine, "elsewhere", "d", checked).await;
    assert_eq!((s.state, s.last_check.unwrap().ok), (ServerState::Up, true));
    let s = wait_for(&engine, "unchecked", "d", |_| true).await;
    assert_eq!((s.state, s.last_check), (ServerState::Unchecked, None));
    assert_eq!(get(addr, "/").await.status, 503, "strict has no server up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_avoid_a_server_marked_down() {
    use tokio::io::AsyncBufReadExt;

    let a = Demo::start("a", "tcp");
    let b = Demo::start("b", "tcp");
    let mut be = backend(
        "app",
        Mode::Tcp,
        Balance::Roundrobin,
        vec![a.server("a"), b.server("b")],
    );
    be.retries = 0;
    be.health_check = Some(fast_check());
    let fe = frontend("tcp-in", Mode::Tcp, "app");
    let addr = fe.bind;
    let engine = serve(fe, be).await;
    drop(a);
    wait_for(&engine, "app", "a", is(ServerState::Down)).await;
    for _ in 0..20 {
        let mut conn = Conn::open(addr).await;
        let mut greeting = String::new();
        tokio::time::timeout(STEP, conn.io.read_line(&mut greeting))
            .await
            .expect("greeting in time")
            .unwrap();
        assert_eq!(greeting, "b\n");
    }
}
