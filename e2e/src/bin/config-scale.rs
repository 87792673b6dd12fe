//! Config scale, operator side: a real etcd and kube-apiserver, the release
//! operator and 3 release dataplanes (registered as Pods, as in
//! e2e/tests/operator.rs). For each size, that many servers across 10
//! Backends are created; then `--patches` times one server's weight is
//! changed with `kubectl patch`, and the time from the API server's write to
//! the new config applied on all 3 dataplanes is measured.
//!
//! The write's time is when a watch on the Backends, opened (through
//! `kubectl proxy`) before the patch, receives the event; "applied" is the
//! timestamp of each dataplane's `config applied` log line (JSON logs), taken
//! when its engine runs the new config (before it persists it and answers
//! the push). The operator's `new config version` line splits the time into
//! operator (watch, render, serialize) and push + dataplane apply.
//!
//! Not a test: it prints p50/p99/max. Usage:
//! `config-scale --operator PATH --dataplane PATH [--sizes 1000,10000] [--patches 50]`

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use fairlead_e2e::{Cluster, Kubectl, Process, bin_dir, free_port, repo_path};

const NAMESPACE: &str = "fairlead-system";
const BACKENDS: usize = 10;
const DATAPLANES: u8 = 3;
/// Longest wait for one patch to be applied everywhere.
const PATCH_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    operator: PathBuf,
    dataplane: PathBuf,
    sizes: Vec<usize>,
    patches: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        operator: PathBuf::new(),
        dataplane: PathBuf::new(),
        sizes: vec![1_000, 10_000],
        patches: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--operator" => args.operator = value.into(),
            "--dataplane" => args.dataplane = value.into(),
            "--sizes" => {
                args.sizes = (value.split(',').map(str::parse).collect::<Result<_, _>>())
                    .context("--sizes: comma-separated numbers")?
            }
            "--patches" => args.patches = value.parse().context("--patches")?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    for (flag, path) in [
        ("--operator", &args.operator),
        ("--dataplane", &args.dataplane),
    ] {
        if !path.is_file() {
            bail!(
                "{flag} {}: no such file (build with cargo build --release)",
                path.display()
            );
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let cluster = Cluster::start()?;
    let mut processes = Vec::new();
    let result = run(&cluster, &args, &mut processes);
    if result.is_err() {
        for p in &processes {
            eprintln!("{}", p.log_tail(20));
        }
    }
    result
}

/// A dataplane: its admin address and JSON log.
struct Dataplane {
    admin: SocketAddr,
    log: PathBuf,
}

fn run(cluster: &Cluster, args: &Args, processes: &mut Vec<Process>) -> anyhow::Result<()> {
    let deploy = repo_path("deploy");
    cluster.kubectl_ok(["apply", "-k", &deploy.to_string_lossy()])?;
    let token = cluster.kubectl_ok([
        "create",
        "token",
        "fairlead-operator",
        "-n",
        NAMESPACE,
        "--duration=2h",
    ])?;
    let kubeconfig = cluster.kubeconfig_for_token(&token)?;
    let operator = cluster.spawn(
        "operator",
        &args.operator,
        [
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={NAMESPACE}"),
            "--identity=bench".to_owned(),
            format!("--metrics-address=127.0.0.1:{}", free_port()?),
            "--lease-duration=15".to_owned(),
            "--log-format=json".to_owned(),
        ],
        &[("RUST_LOG", "info")],
    )?;
    let operator_log = operator.log_path().to_path_buf();
    processes.push(operator);

    let credentials = cluster.scratch_dir("credentials")?;
    wait_for("the credentials Secrets", Duration::from_secs(60), || {
        let out =
            cluster.kubectl(["get", "secret", "fairlead-operator-client", "-n", NAMESPACE])?;
        Ok(out.status.success())
    })?;
    for (secret, key, file) in [
        ("fairlead-dataplane-tls", "ca.crt", "ca.crt"),
        ("fairlead-dataplane-tls", "tls.crt", "tls.crt"),
        ("fairlead-dataplane-tls", "tls.key", "tls.key"),
        ("fairlead-operator-client", "tls.crt", "client.crt"),
        ("fairlead-operator-client", "tls.key", "client.key"),
    ] {
        let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
        let value =
            cluster.kubectl_ok(["get", "secret", secret, "-n", NAMESPACE, "-o", &template])?;
        std::fs::write(credentials.join(file), value)?;
    }
    let mut dataplanes = Vec::new();
    for i in 1..=DATAPLANES {
        let ip = Ipv4Addr::new(127, 0, 0, 50 + i);
        let admin = SocketAddr::from((ip, free_port()?));
        let state = cluster.scratch_dir("state")?;
        let node = format!("scale-node-{i}");
        let p = cluster.spawn(
            &format!("dataplane-{i}"),
            &args.dataplane,
            [
                format!("--admin-address={admin}"),
                format!("--tls-cert={}", credentials.join("tls.crt").display()),
                format!("--tls-key={}", credentials.join("tls.key").display()),
                format!("--client-ca={}", credentials.join("ca.crt").display()),
                format!("--state-dir={}", state.display()),
                format!("--node-name={node}"),
                "--threads=1".to_owned(),
                "--log-format=json".to_owned(),
            ],
            &[("RUST_LOG", "info")],
        )?;
        wait_for("a dataplane admin API", Duration::from_secs(20), || {
            Ok(TcpStream::connect_timeout(&admin, Duration::from_millis(200)).is_ok())
        })?;
        cluster.register_dataplane_pod(
            NAMESPACE,
            &format!("fairlead-dataplane-{node}"),
            &node,
            ip,
            admin.port(),
        )?;
        dataplanes.push(Dataplane {
            admin,
            log: p.log_path().to_path_buf(),
        });
        processes.push(p);
    }
    let proxy_port = free_port()?;
    processes.push(cluster.spawn(
        "kubectl-proxy",
        &bin_dir()?.join("kubectl"),
        [
            format!("--kubeconfig={}", cluster.kubeconfig_path().display()),
            "proxy".to_owned(),
            format!("--port={proxy_port}"),
        ],
        &[],
    )?);
    wait_for("kubectl proxy", Duration::from_secs(20), || {
        Ok(TcpStream::connect(("127.0.0.1", proxy_port)).is_ok())
    })?;

    println!(
        "# release operator and 3 release dataplanes (--threads 1), real etcd + kube-apiserver"
    );
    println!("# shared 2-core machine: other builds run at the same time, figures drift");
    println!(
        "{:>7} {:>7} | {:>22} | {:>22} | {:>22}",
        "servers",
        "patches",
        "write->applied p50/p99/max ms",
        "write->operator pushed",
        "pushed->applied (all 3)"
    );
    for &size in &args.sizes {
        let ns = cluster.fresh_namespace("scale")?;
        cluster.kubectl_stdin_ok(["create", "-n", &ns, "-f", "-"], &backends(size))?;
        wait_for(
            "every server to run on every dataplane",
            Duration::from_secs(180),
            || {
                for dp in &dataplanes {
                    let status = admin_get(&credentials, dp.admin, "/v1/status")?;
                    let servers = (status["backends"].as_array().into_iter().flatten())
                        .filter(|b| {
                            b["name"]
                                .as_str()
                                .is_some_and(|n| n.starts_with(&format!("{ns}/")))
                        })
                        .map(|b| b["servers"].as_array().map_or(0, Vec::len))
                        .sum::<usize>();
                    if servers != size {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )?;
        // Let status writes of the creation settle.
        std::thread::sleep(Duration::from_secs(2));
        let list_version = cluster.kubectl_ok([
            "get",
            "backends",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])?;
        let events = watch_backends(proxy_port, &ns, list_version.trim())?;
        let mut total = Vec::new();
        let mut operator_part = Vec::new();
        let mut push_part = Vec::new();
        let mut weight = 1;
        for _ in 0..args.patches {
            weight = weight % 200 + 2;
            let offsets = (dataplanes.iter().map(|d| file_len(&d.log)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let operator_offset = file_len(&operator_log)?;
            let patch =
                format!(r#"[{{"op":"replace","path":"/spec/servers/0/weight","value":{weight}}}]"#);
            cluster.kubectl_ok([
                "patch",
                "backend",
                "b0",
                "-n",
                &ns,
                "--type=json",
                "-p",
                &patch,
            ])?;
            let written = loop {
                let (at, name, w) = events
                    .recv_timeout(PATCH_TIMEOUT)
                    .context("no watch event for the patch")?;
                if name == "b0" && w == weight {
                    break at;
                }
            };
            let mut applied = Vec::new();
            for (dp, offset) in dataplanes.iter().zip(offsets) {
                applied.push(wait_line(&dp.log, offset, "config applied")?);
            }
            let pushed = wait_line(&operator_log, operator_offset, "new config version")?;
            let last = applied.iter().copied().fold(0, u64::max);
            total.push(last.saturating_sub(written));
            operator_part.push(pushed.saturating_sub(written));
            push_part.push(last.saturating_sub(pushed));
            std::thread::sleep(Duration::from_millis(250));
        }
        for dp in &dataplanes {
            let config = admin_get(&credentials, dp.admin, "/v1/config")?;
            let b0 = (config["backends"].as_array().into_iter().flatten())
                .find(|b| b["name"] == format!("{ns}/b0"))
                .context("b0 is not in the running config")?;
            if b0["servers"][0]["weight"] != weight {
                bail!(
                    "{}: b0's first server has weight {}, not {weight}",
                    dp.admin,
                    b0["servers"][0]["weight"]
                );
            }
        }
        println!(
            "{size:>7} {:>7} | {:>22} | {:>22} | {:>22}",
            args.patches,
            quantiles(&mut total),
            quantiles(&mut operator_part),
            quantiles(&mut push_part)
        );
        cluster.kubectl_ok(["delete", "namespace", &ns, "--wait=false"])?;
    }
    Ok(())
}

/// `servers` servers across [`BACKENDS`] Backends `b0`..., all at one address.
fn backends(servers: usize) -> String {
    let mut out = String::new();
    for b in 0..BACKENDS {
        let n = servers / BACKENDS + usize::from(b < servers % BACKENDS);
        out.push_str(&format!(
            "---\napiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {{name: b{b}}}\nspec:\n  mode: http\n  servers:\n"
        ));
        for s in 0..n {
            out.push_str(&format!(
                "    - {{name: s{s}, address: 127.0.0.1, port: 9, weight: 1}}\n"
            ));
        }
    }
    out
}

/// Watch events on the Backends of `ns` after `version`: when each arrived
/// (µs since the Unix epoch), the Backend's name and its first server's weight.
fn watch_backends(
    proxy_port: u16,
    ns: &str,
    version: &str,
) -> anyhow::Result<mpsc::Receiver<(u64, String, u64)>> {
    let url = format!(
        "http://127.0.0.1:{proxy_port}/apis/fairlead.io/v1alpha1/namespaces/{ns}/backends?watch=1&resourceVersion={version}"
    );
    let mut curl = Command::new("curl")
        .args(["-sN", &url])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .context("starting curl (scripts/install-deps.sh installs it)")?;
    let stdout = curl.stdout.take().context("curl's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        // Ends when curl ends or the receiver is gone (the bench moved on).
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let at = unix_us(SystemTime::now());
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                let object = &event["object"];
                let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
                let weight = object["spec"]["servers"][0]["weight"].as_u64().unwrap_or(0);
                if tx.send((at, name, weight)).is_err() {
                    break;
                }
            }
            line.clear();
        }
        let _ = curl.kill();
        let _ = curl.wait();
    });
    Ok(rx)
}

/// The timestamp (µs since the Unix epoch) of the first JSON log line after
/// `offset` in `log` whose message is `message`; waits for it (bounded).
fn wait_line(log: &Path, offset: u64, message: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + PATCH_TIMEOUT;
    loop {
        let mut file = std::fs::File::open(log)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["message"] == message {
                let stamp = v["timestamp"]
                    .as_str()
                    .context("a log line without timestamp")?;
                return parse_rfc3339_us(stamp);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no '{message}' line in {} within {PATCH_TIMEOUT:?}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn file_len(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `2026-12-04T23:55:01.123456Z` as µs since the Unix epoch (UTC only).
fn parse_rfc3339_us(s: &str) -> anyhow::Result<u64> {
    let bad = || format!("timestamp {s}: not YYYY-MM-DDTHH:MM:SS[.frac]Z");
    let s2 = s.strip_suffix('Z').with_context(bad)?;
    let (date, time) = s2.split_once('T').with_context(bad)?;
    let d: Vec<i64> =
        (date.split('-').map(str::parse).collect::<Result<_, _>>()).with_context(bad)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> =
        (hms.split(':').map(str::parse).collect::<Result<_, _>>()).with_context(bad)?;
    if d.len() != 3 || t.len() != 3 {
        bail!(bad());
    }
    let micros: u64 = format!("{frac:0<6}")[..6].parse().with_context(bad)?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).with_context(bad)?;
    Ok(((days * 86_400 + t[0] * 3_600 + t[1] * 60 + t[2]) * 1_000_000) + micros)
}

/// `p50 / p99 / max` in ms of samples in µs.
fn quantiles(samples: &mut [u64]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!("{:.1} / {:.1} / {:.1}", at(0.5), at(0.99), at(1.0))
}

/// `GET path` on a dataplane's admin API with the operator's client certificate.
fn admin_get(
    credentials: &Path,
    admin: SocketAddr,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    let c = |f: &str| credentials.join(f).display().to_string();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "--cacert",
            &c("ca.crt"),
        ])
        .args(["--cert", &c("client.crt"), "--key", &c("client.key")])
        .arg("--resolve")
        .arg(format!(
            "fairlead-dataplane:{}:{}",
            admin.port(),
            admin.ip()
        ))
        .arg(format!("https://fairlead-dataplane:{}{path}", admin.port()))
        .output()?;
    if !out.status.success() {
        bail!(
            "GET {path} on {admin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Calls `check` every 200 ms until it returns true; fails after `timeout`.
fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        assert_eq!(
            parse_rfc3339_us("1970-01-01T00:00:01.5Z").unwrap(),
            1_500_000
        );
        assert_eq!(
            parse_rfc3339_us("2026-12-04T23:55:01.123456Z").unwrap(),
            1_796_428_501_123_456
        );
        assert!(parse_rfc3339_us("2026-12-04 23:55:01").is_err());
    }

    #[test]
    fn servers_are_spread_over_the_backends() {
        let yaml = backends(25);
        assert_eq!(yaml.matches("kind: Backend").count(), BACKENDS);
        assert_eq!(yaml.matches("- {name: s").count(), 25);
    }
}
