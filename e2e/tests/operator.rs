//! The operator against a real API server, with the manifests from deploy/: it
//! runs as its ServiceAccount (RBAC from deploy/rbac.yaml), programs a real
//! fairlead-dataplane process registered as a Pod, reports Programmed, and a
//! standby replica takes over when the leader is killed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fairlead_e2e::{Cluster, Kubectl, Process, free_port, repo_path, workspace_binary};

const NAMESPACE: &str = "fairlead-system";

/// `kubectl apply -k deploy/`, once per test binary.
fn deploy(cluster: &Cluster) -> &'static Result<(), String> {
    static DEPLOYED: OnceLock<Result<(), String>> = OnceLock::new();
    DEPLOYED.get_or_init(|| {
        let dir = repo_path("deploy");
        cluster
            .kubectl_ok(["apply", "-k", &dir.to_string_lossy()])
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    })
}

#[test]
fn deploy_applies_with_kubectl_apply_k() {
    let cluster = Cluster::shared();
    deploy(cluster).as_ref().unwrap();
    for object in [
        "namespace/fairlead-system",
        "serviceaccount/fairlead-operator",
        "serviceaccount/fairlead-dataplane",
        "role/fairlead-operator",
        "rolebinding/fairlead-operator",
        "deployment/fairlead-operator",
        "daemonset/fairlead-dataplane",
        "clusterrole/fairlead-operator",
        "clusterrolebinding/fairlead-operator",
        "crd/frontends.fairlead.io",
    ] {
        cluster
            .kubectl_ok(["get", "-n", NAMESPACE, object, "-o", "name"])
            .unwrap();
    }
    // The operator's RBAC is least privilege: it may not read other Secrets in its namespace.
    let denied = cluster
        .kubectl([
            "auth",
            "can-i",
            "get",
            "secrets/other",
            "-n",
            NAMESPACE,
            "--as=system:serviceaccount:fairlead-system:fairlead-operator",
        ])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&denied.stdout).trim(), "no");
}

/// The processes of a scenario, whose logs a failure shows.
#[derive(Default)]
struct Scene {
    processes: Vec<Process>,
}

impl Scene {
    fn logs(&self) -> String {
        self.processes.iter().map(|p| p.log_tail(30)).collect()
    }

    fn find(&mut self, name: &str) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|p| p.name() == name)
            .expect("a process of this scene")
    }
}

#[test]
fn the_operator_programs_a_dataplane_and_a_standby_takes_over_from_a_killed_leader() {
    let cluster = Cluster::shared();
    let mut scene = Scene::default();
    if let Err(e) = operator_scenario(cluster, &mut scene) {
        panic!("{e:#}\n{}", scene.logs());
    }
}

fn operator_scenario(cluster: &Cluster, scene: &mut Scene) -> anyhow::Result<()> {
    deploy(cluster).clone().map_err(anyhow::Error::msg)?;
    let building = Instant::now();
    let operator_bin = workspace_binary("fairlead-operator", "fairlead-operator")?;
    let dataplane_bin = workspace_binary("fairlead-dataplane", "fairlead-dataplane")?;
    eprintln!("binaries built in {:.1?}", building.elapsed());
    let started = Instant::now();

    // The operator authenticates as its ServiceAccount, not as admin.
    let kubeconfig = cluster.operator_kubeconfig(NAMESPACE)?;
    scene.processes.push(start_operator(
        cluster,
        &operator_bin,
        &kubeconfig,
        "operator-a",
    )?);
    wait_for(
        "operator-a to hold the Lease",
        Duration::from_secs(30),
        || Ok(lease_holder(cluster)? == "operator-a"),
    )?;

    // The operator makes the dataplane credentials; a dataplane (in a cluster, the DaemonSet) mounts them.
    let credentials = cluster.scratch_dir("credentials")?;
    cluster.write_dataplane_credentials(NAMESPACE, &credentials)?;

    let node_ip = Ipv4Addr::new(127, 0, 0, 51);
    let admin = SocketAddr::from((node_ip, free_port()?));
    let state = cluster.scratch_dir("dataplane-state")?;
    let dataplane = cluster.spawn(
        "dataplane",
        &dataplane_bin,
        [
            format!("--admin-address={admin}"),
            format!("--tls-cert={}", credentials.join("tls.crt").display()),
            format!("--tls-key={}", credentials.join("tls.key").display()),
            format!("--client-ca={}", credentials.join("ca.crt").display()),
            format!("--state-dir={}", state.display()),
            "--node-name=e2e-node-1".to_owned(),
            "--threads=1".to_owned(),
        ],
        &[("RUST_LOG", "info")],
    )?;
    scene.processes.push(dataplane);
    wait_for(
        "the dataplane admin API to listen",
        Duration::from_secs(20),
        || Ok(TcpStream::connect_timeout(&admin, Duration::from_millis(200)).is_ok()),
    )?;
    cluster.register_dataplane_pod(
        NAMESPACE,
        "fairlead-dataplane-e2e-node-1",
        "e2e-node-1",
        node_ip,
        admin.port(),
    )?;

    // A Frontend and Backend as a user writes them, with a real server behind.
    let server = serve_http("hello from e2e")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let ns = cluster.fresh_namespace("apps")?;
    cluster.kubectl_stdin_ok(
        ["apply", "-n", &ns, "-f", "-"],
        &manifests(listen, server, None),
    )?;
    cluster
        .kubectl_ok([
            "wait",
            "-n",
            &ns,
            "--for=condition=Programmed",
            "--timeout=60s",
            "frontend/web",
            "backend/app",
        ])
        .context("waiting for Programmed")?;
    eprintln!(
        "Programmed {:.1?} after the operator started",
        started.elapsed()
    );
    let response = http_get(listen)?;
    if !response.ends_with("hello from e2e") {
        bail!("through the frontend at {listen}: {response}");
    }

    // A second replica waits as a standby; killing the leader hands it the Lease.
    scene.processes.push(start_operator(
        cluster,
        &operator_bin,
        &kubeconfig,
        "operator-b",
    )?);
    std::thread::sleep(Duration::from_secs(1));
    if lease_holder(cluster)? != "operator-a" {
        bail!("a standby took the Lease while the leader was alive");
    }
    scene.find("operator-a").kill();
    let killed = Instant::now();
    cluster.kubectl_stdin_ok(
        ["apply", "-n", &ns, "-f", "-"],
        &manifests(listen, server, Some("after-failover")),
    )?;
    wait_for(
        "operator-b to hold the Lease",
        Duration::from_secs(30),
        || Ok(lease_holder(cluster)? == "operator-b"),
    )?;
    wait_for(
        "the change to be served after the failover",
        Duration::from_secs(30),
        || {
            Ok(http_get(listen)
                .is_ok_and(|r| r.to_ascii_lowercase().contains("x-e2e: after-failover")))
        },
    )?;
    eprintln!(
        "failover: change served {:.1?} after the leader was killed",
        killed.elapsed()
    );
    let generation = cluster.kubectl_ok([
        "get",
        "frontend",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.generation}",
    ])?;
    let observed = format!(
        "--for=jsonpath={{.status.conditions[?(@.type==\"Programmed\")].observedGeneration}}={generation}"
    );
    cluster.kubectl_ok([
        "wait",
        "-n",
        &ns,
        &observed,
        "--timeout=30s",
        "frontend/web",
    ])?;
    cluster.kubectl_ok([
        "wait",
        "-n",
        &ns,
        "--for=condition=Programmed",
        "--timeout=30s",
        "frontend/web",
    ])?;

    // Both stop cleanly on SIGTERM, as in a rolling update.
    for name in ["operator-b", "dataplane"] {
        let stopping = Instant::now();
        let status = scene.find(name).terminate(Duration::from_secs(15))?;
        eprintln!("{name} stopped {:.1?} after SIGTERM", stopping.elapsed());
        if !status.success() {
            bail!("{name} exited with {status} on SIGTERM");
        }
    }
    Ok(())
}

fn start_operator(
    cluster: &Cluster,
    bin: &Path,
    kubeconfig: &Path,
    identity: &str,
) -> anyhow::Result<Process> {
    cluster.spawn(
        identity,
        bin,
        [
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={NAMESPACE}"),
            format!("--identity={identity}"),
            format!("--metrics-address=127.0.0.1:{}", free_port()?),
            "--lease-duration=3".to_owned(),
        ],
        &[("RUST_LOG", "info")],
    )
}

fn lease_holder(cluster: &Cluster) -> anyhow::Result<String> {
    let out = cluster.kubectl([
        "get",
        "lease",
        "fairlead-operator",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A Frontend on `listen` to a Backend with the one `server`; with `header`, the
/// Frontend sets `X-E2E: <header>` on responses.
fn manifests(listen: SocketAddr, server: SocketAddr, header: Option<&str>) -> String {
    let rules = header
        .map(|v| format!("  responseRules:\n    - setHeader: {{name: X-E2E, value: {v}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {{name: web}}\nspec:\n  mode: http\n  \
         bind: {{address: \"{}\", port: {}}}\n  defaultBackend: app\n{rules}---\n\
         apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {{name: app}}\nspec:\n  mode: http\n  \
         servers:\n    - {{name: srv1, address: \"{}\", port: {}}}\n",
        listen.ip(),
        listen.port(),
        server.ip(),
        server.port()
    )
}

/// Calls `check` every 100 ms until it returns true; fails after `timeout`.
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP server on 127.0.0.1 answering every request with `body` (at most 10 000 connections).
fn serve_http(body: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10_000).flatten() {
            std::thread::spawn(move || answer(stream, body));
        }
    });
    Ok(addr)
}

fn answer(mut stream: TcpStream, body: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// `GET /` over a fresh connection; the whole response (head and body).
fn http_get(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: e2e.test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
