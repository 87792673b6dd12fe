//! The stats page in a real browser: headless Chromium from Debian loads it
//! from a running engine (basic auth in the URL), and the test reads the
//! DOM Chromium built: the servers are there with their states and colours,
//! and a killed server's row turns red (`active_down`, DOWN) once its health
//! checks fail. Screenshots at laptop and phone widths are saved under
//! `CARGO_TARGET_TMPDIR/stats_page/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fairlead_dataplane::config::{Balance, BasicAuth, FrontendStats, HealthCheck, Mode};
use tokio::process::Command;

const CHROMIUM: &str = "chromium";

/// Runs headless Chromium with `args` then `url`; its stdout. At most 60 s.
async fn chromium(args: &[&str], url: &str) -> String {
    let profile = out_dir().join("profile");
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        "--run-all-compositor-stages-before-draw",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium runs (apt-get install chromium)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `<tr>` of server `name` in the table of `proxy`, as Chromium serialised it.
fn server_row<'a>(dom: &'a str, proxy: &str, name: &str) -> Option<&'a str> {
    let table = dom.find(&format!("data-proxy=\"{proxy}\""))?;
    let rest = &dom[table..];
    let rest = &rest[..rest.find("</table>")?];
    let at = rest.find(&format!("data-server=\"{name}\""))?;
    let start = rest[..at].rfind("<tr")?;
    let end = at + rest[at..].find("</tr>")?;
    Some(&rest[start..end])
}

fn screenshot(path: &Path, size: &str, url: &str) -> impl std::future::Future<Output = String> {
    let shot = format!("--screenshot={}", path.display());
    let size = format!("--window-size={size}");
    let url = url.to_string();
    async move { chromium(&[&shot, &size, "--virtual-time-budget=2000"], &url).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_servers_and_a_killed_server_turns_red() {
    let srv1 = Demo::http("srv1");
    let srv2 = Demo::http("srv2");
    let srv3 = Demo::http("srv3");
    let docs = Demo::http("docs");
    let mut app = backend(
        "default/app",
        Mode::Http,
        Balance::Roundrobin,
        vec![srv1.server("srv1"), srv2.server("srv2"), {
            let mut s = srv3.server("srv3");
            s.backup = true;
            s
        }],
    );
    app.health_check = Some(HealthCheck {
        interval_ms: 300,
        timeout_ms: 250,
        fall: 3,
        rise: 2,
        ..HealthCheck::default()
    });
    let static_be = backend(
        "default/static",
        Mode::Http,
        Balance::Roundrobin,
        vec![docs.server("docs<1>")],
    );
    let web = frontend("default/web", Mode::Http, "default/app");
    let web_addr = web.bind;
    let mut stats = frontend("default/stats", Mode::Http, "default/static");
    stats.stats = Some(FrontendStats {
        path: Some("/haproxy/stats".into()),
        refresh_seconds: 10,
        show_node: true,
        auth: Some(BasicAuth {
            username: "admin".into(),
            password: "s3cret".into(),
        }),
        ..FrontendStats::default()
    });
    let stats_addr = stats.bind;
    let engine = engine(config(7, vec![web, stats], vec![app, static_be])).await;
    // Real traffic, so counters show.
    for _ in 0..30 {
        assert_eq!(get(web_addr, "/").await.status, 200);
    }
    // Let the first checks pass.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let page = format!("http://{stats_addr}/haproxy/stats");
    let authed = format!("http://admin:s3cret@{stats_addr}/haproxy/stats");

    // Without credentials, no page.
    let dom = chromium(&["--dump-dom"], &page).await;
    assert!(!dom.contains("data-proxy"), "served without auth: {dom}");
    let plain = get(stats_addr, "/haproxy/stats").await;
    assert_eq!(plain.status, 401);
    assert_eq!(
        plain.header("www-authenticate"),
        Some("Basic realm=\"fairlead statistics\"")
    );
    // The frontend that has no stats block does not answer the path.
    let forwarded = get(web_addr, "/haproxy/stats").await;
    assert_eq!(forwarded.status, 200);
    assert!(forwarded.text().contains("srv"), "{}", forwarded.text());

    let dom = chromium(&["--dump-dom"], &authed).await;
    std::fs::write(out_dir().join("up.html"), &dom).unwrap();
    for (name, class) in [
        ("srv1", "active_up"),
        ("srv2", "active_up"),
        ("srv3", "backup_up"),
    ] {
        let row = server_row(&dom, "default/app", name)
            .unwrap_or_else(|| panic!("no row for {name} in {dom}"));
        assert!(row.contains(&format!("class=\"{class}\"")), "{row}");
        assert!(row.contains("data-status=\"UP\""), "{row}");
        assert!(row.contains("L4OK"), "last check shown: {row}");
    }
    let docs_row = server_row(&dom, "default/static", "docs&lt;1&gt;").expect("escaped name");
    assert!(docs_row.contains("class=\"active_no_check\""), "{docs_row}");
    assert!(dom.contains("id=\"node\""), "show-node");
    assert!(dom.contains("id=\"config-version\">v7<"), "config version");
    assert!(dom.contains("http-equiv=\"refresh\" content=\"10\""));
    // 30 connections, and the one that asked the web frontend for the path.
    let frontend_row = dom
        .find("data-proxy=\"default/web\"")
        .map(|i| &dom[i..])
        .unwrap();
    assert!(frontend_row.contains("<td>31</td>"), "31 sessions shown");

    let shots = out_dir();
    screenshot(&shots.join("laptop-up.png"), "1400,900", &authed).await;

    // Kill srv2: after 3 failed checks (about 1 s) its row is red.
    drop(srv2);
    let started = Instant::now();
    let mut seen_going_down = false;
    let row = loop {
        let dom = chromium(&["--dump-dom"], &authed).await;
        let row = server_row(&dom, "default/app", "srv2").map(str::to_string);
        if let Some(row) = &row {
            seen_going_down |= row.contains("active_going_down");
            if row.contains("class=\"active_down\"") {
                break row.clone();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "srv2 not red after 30 s: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(row.contains("data-status=\"DOWN\""), "{row}");
    assert!(row.contains("L4CON"), "the failed check shown: {row}");
    println!(
        "srv2 red {:.1} s after its kill (going down seen on the way: {seen_going_down})",
        started.elapsed().as_secs_f64()
    );
    let laptop = shots.join("laptop.png");
    let phone = shots.join("phone.png");
    screenshot(&laptop, "1400,900", &authed).await;
    screenshot(&phone, "390,844", &authed).await;
    for shot in [&laptop, &phone] {
        let png = std::fs::read(shot).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            shot.display()
        );
        println!("screenshot: {}", shot.display());
    }
    drop(engine);
}
