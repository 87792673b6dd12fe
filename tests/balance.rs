//! Each algorithm's distribution over real demo backends, through the engine.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use fairlead_dataplane::Engine;
use fairlead_dataplane::config::{Balance, Mode, Server};

/// Demo backends named `names` behind frontend `fe` balancing with
/// `balance`; `tune` edits their two servers first.
async fn two_servers_tuned(
    balance: Balance,
    names: [&str; 2],
    tune: impl FnOnce(&mut [Server; 2]),
) -> (Demo, Demo, Engine, SocketAddr) {
    let (a, b) = (Demo::http(names[0]), Demo::http(names[1]));
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let mut servers = [a.server(names[0]), b.server(names[1])];
    tune(&mut servers);
    let be = backend("be", Mode::Http, balance, servers.into());
    let engine = serve(fe, be).await;
    (a, b, engine, addr)
}

/// Demo backends `a` and `b` behind frontend `fe` balancing with `balance`.
async fn two_servers(balance: Balance) -> (Demo, Demo, Engine, SocketAddr) {
    two_servers_tuned(balance, ["a", "b"], |_| ()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn roundrobin_follows_weights_smoothly() {
    let (_a, _b, _e, addr) =
        two_servers_tuned(Balance::Roundrobin, ["a", "b"], |[a, _]| a.weight = 3).await;
    let mut conn = Conn::open(addr).await;
    let mut seq = String::new();
    for _ in 0..40 {
        seq.push_str(conn.get("/").await.text().trim());
    }
    assert_eq!(seq.matches('a').count(), 30, "{seq}");
    assert!(
        !seq.contains("aaaa"),
        "weighted round robin is not smooth: {seq}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leastconn_avoids_the_busy_server() {
    let (_a, _b, _e, addr) = two_servers(Balance::Leastconn).await;
    // Hold three slow requests; they spread 2/1 or 1/2, then the next fast
    // requests must go to the server with fewer in flight.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut c = Conn::open(addr).await;
        c.send_raw(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        slow.push(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = tally(addr, 6).await;
    let mut busy = Vec::new();
    for c in &mut slow {
        busy.push(c.read_response().await.text().trim().to_string());
    }
    let busier = if busy.iter().filter(|s| *s == "a").count() >= 2 {
        "a"
    } else {
        "b"
    };
    let idle = if busier == "a" { "b" } else { "a" };
    assert!(
        counts.get(idle).copied().unwrap_or(0) >= 3,
        "slow on {busy:?}, fast went {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn source_hash_is_sticky_per_client_and_spreads_clients() {
    let (_a, _b, _e, addr) = two_servers(Balance::Source).await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=16 {
        let local = format!("127.0.1.{i}");
        let mut conn = Conn::open_from(addr, &local).await;
        let first = conn.get("/").await.text();
        for _ in 0..3 {
            assert_eq!(
                Conn::open_from(addr, &local).await.get("/").await.text(),
                first,
                "client {local} moved"
            );
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "16 clients all hashed to {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uri_hash_is_sticky_per_path() {
    let (_a, _b, _e, addr) = two_servers(Balance::Uri).await;
    let mut conn = Conn::open(addr).await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let path = format!("/item/{i}");
        let first = conn.get(&format!("{path}?q=1")).await.text();
        assert_eq!(
            conn.get(&format!("{path}?q=2")).await.text(),
            first,
            "{path} moved (query must not count)"
        );
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "20 paths all hashed to {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn random_uses_every_server() {
    let (_a, _b, _e, addr) = two_servers(Balance::Random).await;
    let counts = tally(addr, 200).await;
    assert!(counts.values().all(|&n| n >= 50), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_fills_servers_in_order() {
    let (_a, _b, _e, addr) =
        two_servers_tuned(Balance::First, ["a", "b"], |[a, _]| a.max_connections = 1).await;
    assert_eq!(tally(addr, 10).await.get("a"), Some(&10));
    // With a's only slot taken, the next request overflows to b.
    let mut held = Conn::open(addr).await;
    held.send_raw(b"GET /sleep?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(addr, "/").await.text().trim(), "b");
    assert_eq!(held.read_response().await.text().trim(), "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_serves_only_when_active_servers_fail() {
    let (a, _backup, _e, addr) =
        two_servers_tuned(Balance::Roundrobin, ["a", "backup"], |[_, b]| {
            b.backup = true
        })
        .await;
    assert_eq!(tally(addr, 10).await.get("a"), Some(&10));
    drop(a);
    // The active server refuses connections: redispatch reaches the backup.
    assert_eq!(tally(addr, 5).await.get("backup"), Some(&5));
}
