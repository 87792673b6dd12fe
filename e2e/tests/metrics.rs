//! Prometheus metrics, end to end: a real Prometheus server (built from its Go
//! module by scripts/build-e2e-bins.sh, e2e/go/prometheus) scrapes a `fairlead
//! run` process on loopback every second while demo backends serve real
//! traffic through it; the test asks Prometheus' HTTP query API whether the
//! counters moved, whether `haproxy_server_status{state="DOWN"}` flips when a
//! server is killed, and whether a dashboard query returns the traffic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fairlead_e2e::{bin_dir, free_port, workspace_binary};

/// A child process killed when dropped; its output goes to `log`.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(program: &Path, args: &[&str], log: PathBuf) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Proc { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `f` to return Some, polling every 200 ms.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET `path` over HTTP/1.0; the whole response (head and body).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs an instant PromQL query; the `data.result` array.
fn query(prometheus: SocketAddr, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "5", "-G"])
        .arg(format!("http://{prometheus}/api/v1/query"))
        .arg("--data-urlencode")
        .arg(format!("query={promql}"));
    let out = curl.stdin(Stdio::null()).output().context("running curl")?;
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{promql}: {}", String::from_utf8_lossy(&out.stdout)))?;
    if body["status"] != "success" {
        bail!("{promql}: {body}");
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The value of a one-sample vector result.
fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The single value of `promql` once it satisfies `ok`, within `limit`.
fn query_until(
    prometheus: SocketAddr,
    promql: &str,
    limit: Duration,
    ok: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let mut last = None;
    let found = wait_for(limit, || {
        let result = query(prometheus, promql).ok()?;
        let v = result.first().map(value)?;
        last = Some(v);
        ok(v).then_some(v)
    });
    found.with_context(|| format!("{promql}: last value {last:?} after {limit:?}"))
}

const BACKEND: &str = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: app}
spec:
  mode: http
  servers:
    - {name: srv1, address: 127.0.0.1, port: PORT1}
    - {name: srv2, address: 127.0.0.1, port: PORT2}
  healthCheck: {interval: 500ms, timeout: 400ms, fall: 2, rise: 1, http: {path: /}}
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {name: web}
spec:
  mode: http
  bind: {address: 127.0.0.1, port: WEB}
  defaultBackend: app
  stats: {prometheusPath: /haproxy-metrics}
";

#[test]
fn prometheus_scrapes_counters_server_state_and_dashboard_queries() -> anyhow::Result<()> {
    let prometheus_bin = bin_dir()?.join("prometheus");
    if !prometheus_bin.is_file() {
        bail!(
            "{} is missing: run scripts/build-e2e-bins.sh",
            prometheus_bin.display()
        );
    }
    let fairlead = workspace_binary("fairlead-operator", "fairlead")?;
    let demo = workspace_binary("fairlead-tests", "demo-backend")?;
    let dir = std::env::temp_dir().join(format!("fairlead-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("manifests"))?;

    let (p1, p2, web, metrics, prom) = (
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
    );
    let srv1 = Proc::start(
        &demo,
        &["--listen", &format!("127.0.0.1:{p1}"), "--name", "srv1"],
        dir.join("srv1.log"),
    )?;
    let mut srv2 = Some(Proc::start(
        &demo,
        &["--listen", &format!("127.0.0.1:{p2}"), "--name", "srv2"],
        dir.join("srv2.log"),
    )?);
    let manifest = BACKEND
        .replace("PORT1", &p1.to_string())
        .replace("PORT2", &p2.to_string())
        .replace("WEB", &web.to_string());
    std::fs::write(dir.join("manifests/lb.yaml"), manifest)?;
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], metrics).into();
    let lb = Proc::start(
        &fairlead,
        &[
            "run",
            "-f",
            &dir.join("manifests").to_string_lossy(),
            "--threads",
            "1",
            "--metrics-address",
            &metrics_addr.to_string(),
        ],
        dir.join("fairlead.log"),
    )?;
    let web_addr: SocketAddr = ([127, 0, 0, 1], web).into();
    wait_for(Duration::from_secs(60), || {
        http_get(web_addr, "/").filter(|r| r.contains("srv"))
    })
    .with_context(|| format!("fairlead does not serve:\n{}", lb.log()))?;

    // The frontend's own exporter path and the metrics listener answer alike.
    let on_frontend = http_get(web_addr, "/haproxy-metrics").context("GET /haproxy-metrics")?;
    assert!(
        on_frontend.contains("text/plain; version=0.0.4"),
        "{on_frontend}"
    );
    assert!(on_frontend.contains("haproxy_frontend_http_requests_total{proxy=\"default/web\"}"));
    let healthz = http_get(metrics_addr, "/healthz").context("GET /healthz")?;
    assert!(
        healthz.starts_with("HTTP/1.0 200") || healthz.starts_with("HTTP/1.1 200"),
        "{healthz}"
    );

    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n  - job_name: fairlead\n    static_configs: [{{targets: ['{metrics_addr}']}}]\n"
        ),
    )?;
    let prom_addr: SocketAddr = ([127, 0, 0, 1], prom).into();
    let prometheus = Proc::start(
        &prometheus_bin,
        &[
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address={prom_addr}"),
        ],
        dir.join("prometheus.log"),
    )?;
    query_until(
        prom_addr,
        "up{job=\"fairlead\"}",
        Duration::from_secs(30),
        |v| v == 1.0,
    )
    .with_context(|| prometheus.log())?;

    // Real traffic: 200 requests over about 4 s.
    let mut answered = 0;
    for _ in 0..200 {
        if http_get(web_addr, "/")
            .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
        {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(answered, 200);

    // Counters moved, as Prometheus scraped them.
    let requests = query_until(
        prom_addr,
        "haproxy_frontend_http_requests_total{proxy=\"default/web\"}",
        Duration::from_secs(15),
        |v| v >= 200.0,
    )?;
    let sessions = query_until(
        prom_addr,
        "sum(haproxy_server_sessions_total{proxy=\"default/app\"})",
        Duration::from_secs(15),
        |v| v >= 200.0,
    )?;
    let bytes = query_until(
        prom_addr,
        "haproxy_frontend_bytes_out_total{proxy=\"default/web\"}",
        Duration::from_secs(15),
        |v| v > 0.0,
    )?;
    let ok = query_until(
        prom_addr,
        "haproxy_backend_http_responses_total{proxy=\"default/app\",code=\"2xx\"}",
        Duration::from_secs(15),
        |v| v >= 200.0,
    )?;
    // The dashboard kind of query: per-proxy response rate.
    let rates = query(
        prom_addr,
        "sum by (proxy) (rate(haproxy_frontend_http_responses_total[1m]))",
    )?;
    let web_rate = rates
        .iter()
        .find(|r| r["metric"]["proxy"] == "default/web")
        .map(value)
        .with_context(|| format!("no rate for default/web: {rates:?}"))?;
    assert!(web_rate > 0.5, "rate {web_rate}");
    eprintln!(
        "requests {requests}, server sessions {sessions}, bytes out {bytes}, 2xx {ok}, rate {web_rate:.2}/s"
    );

    // A killed server turns DOWN after its failed checks, and Prometheus sees it.
    let down = "haproxy_server_status{proxy=\"default/app\",server=\"srv2\",state=\"DOWN\"}";
    assert_eq!(query(prom_addr, down)?.first().map(value), Some(0.0));
    let killed = Instant::now();
    drop(srv2.take());
    query_until(prom_addr, down, Duration::from_secs(20), |v| v == 1.0)?;
    eprintln!(
        "srv2 DOWN in Prometheus {:?} after the kill",
        killed.elapsed()
    );
    query_until(
        prom_addr,
        "haproxy_server_check_up_down_total{server=\"srv2\"}",
        Duration::from_secs(10),
        |v| v == 1.0,
    )?;
    let up = "haproxy_server_status{proxy=\"default/app\",server=\"srv1\",state=\"UP\"}";
    assert_eq!(query(prom_addr, up)?.first().map(value), Some(1.0));
    drop((prometheus, lb, srv1));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
