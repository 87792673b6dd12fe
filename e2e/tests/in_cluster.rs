//! fairlead as users run it: the Helm chart installed on a real two-node
//! cluster (kubelets, containerd, `NodeCluster`), with the images built from
//! this checkout. The kubelets' own probes decide readiness; traffic goes
//! from a client namespace through each node and through a virtual IP; the
//! master's dataplane is SIGKILLed; the dataplane is upgraded with `helm
//! upgrade` under traffic; `helm uninstall` and `kubectl apply -k deploy/`.
//! Needs root. One test: the steps build on each other and a cluster costs
//! about 1 GiB and ~10 s to start.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fairlead_e2e::images::{self, DEV_TAG, Image};
use fairlead_e2e::{Kubectl, NodeCluster, repo_path};
use serde_json::Value;

const SYSTEM: &str = "fairlead-system";
const DEMO: &str = "demo";
/// The tag the upgrade moves the dataplane to (the same binary, another image).
const UPGRADE_TAG: &str = "0.1.0-upgrade";

/// Repeats `f` every 200 ms until it returns `Some`, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Like [`eventually`], where `f` says what it saw instead of `None`; the
/// last of that and the cluster's state are in the failure message.
fn until<T>(lab: &Lab, limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(value) => return value,
            Err(seen) if start.elapsed() >= limit => {
                panic!(
                    "timed out after {limit:?}: {what}; last seen: {seen}\n{}",
                    lab.state()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The cluster with the chart's images imported, and helpers for the steps.
struct Lab {
    cluster: NodeCluster,
}

impl Lab {
    fn kubectl(&self, args: &[&str]) -> String {
        self.cluster
            .kubectl_ok(args)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.state()))
    }

    fn apply(&self, yaml: &str) {
        self.cluster
            .kubectl_stdin_ok(["apply", "-f", "-"], yaml)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.state()));
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.kubectl(&[args, &["-o", "json"]].concat());
        serde_json::from_str(&text).unwrap()
    }

    /// helm with the cluster's kubeconfig; stdout, or a panic with stderr.
    fn helm(&self, args: &[&str]) -> String {
        let helm = fairlead_e2e::bin_dir().unwrap().join("helm");
        let mut cmd = self.cluster.command(&helm);
        cmd.args(args)
            .env("HELM_CACHE_HOME", self.cluster.dir().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.cluster.dir().join("helm/config"))
            .env("HELM_DATA_HOME", self.cluster.dir().join("helm/data"));
        let out = run(cmd, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "helm {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.state()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pods, events and component logs, for failure messages.
    fn state(&self) -> String {
        let get = |args: &[&str]| match self.cluster.kubectl(args) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("{e:#}"),
        };
        let logs = |selector: &str| {
            get(&[
                "logs",
                "-n",
                SYSTEM,
                "-l",
                selector,
                "--tail=60",
                "--prefix",
            ])
        };
        format!(
            "--- pods\n{}\n--- events\n{}\n--- dataplane logs\n{}\n--- operator logs\n{}\n--- cluster\n{}",
            get(&["get", "pods", "-A", "-o", "wide"]),
            get(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
            logs("app.kubernetes.io/name=fairlead-dataplane"),
            logs("app.kubernetes.io/name=fairlead-operator"),
            self.cluster.logs()
        )
    }

    /// `curl` from the client namespace; the body of a 2xx, else None.
    fn curl(&self, url: &str, extra: &[&str]) -> Option<String> {
        let mut cmd = self.cluster.exec_in_client("curl");
        cmd.args(["-sf", "--max-time", "3"]).args(extra).arg(url);
        let out = run(cmd, Duration::from_secs(10));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `n` answers of `url`, sorted.
    fn answers(&self, url: &str, n: usize, extra: &[&str]) -> Vec<String> {
        let mut seen: Vec<String> = (0..n)
            .map(|_| self.curl(url, extra).unwrap_or_else(|| "<failed>".into()))
            .collect();
        seen.sort();
        seen
    }

    /// True when node `i`'s interface holds `address`.
    fn holds(&self, i: usize, address: &str) -> bool {
        let mut cmd = self.cluster.exec_in_node(i, "ip");
        cmd.args(["-4", "-o", "addr", "show", "dev", "eth0"]);
        let out = run(cmd, Duration::from_secs(5));
        String::from_utf8_lossy(&out.stdout).contains(&format!("inet {address}/"))
    }

    /// The pid of the dataplane process running in node `i`'s namespace.
    fn dataplane_pid(&self, i: usize) -> Option<u32> {
        let netns = std::fs::metadata(self.cluster.node_netns(i)).ok()?.ino();
        let want = format!("net:[{netns}]");
        std::fs::read_dir("/proc").ok()?.find_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (comm.trim() == "fairlead-datapl" && ns.to_str() == Some(&want)).then_some(pid)
        })
    }

    fn rollout(&self, what: &str) {
        self.kubectl(&["rollout", "status", "-n", SYSTEM, what, "--timeout=180s"]);
    }

    /// Asserts the operator Deployment and the dataplane DaemonSet are Ready
    /// on their kubelets' probes, without a restart; returns the dataplane Pods.
    fn assert_installed(&self, nodes: usize) -> Vec<Value> {
        self.rollout("deployment/fairlead-operator");
        self.rollout("daemonset/fairlead-dataplane");
        let deployment = self.json(&["get", "deployment", "-n", SYSTEM, "fairlead-operator"]);
        assert_eq!(deployment["status"]["readyReplicas"], 2, "{deployment}");
        let daemonset = self.json(&["get", "daemonset", "-n", SYSTEM, "fairlead-dataplane"]);
        assert_eq!(daemonset["status"]["numberReady"], nodes, "{daemonset}");
        let pods = self.json(&["get", "pods", "-n", SYSTEM]);
        let pods = pods["items"].as_array().unwrap().clone();
        assert_eq!(pods.len(), 2 + nodes, "{}", self.state());
        for pod in &pods {
            let status = &pod["status"]["containerStatuses"][0];
            assert_eq!(status["ready"], true, "{pod}");
            assert_eq!(status["restartCount"], 0, "probes pass: {pod}");
        }
        pods.into_iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .contains("dataplane")
            })
            .collect()
    }
}

fn run(mut cmd: Command, limit: Duration) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The four demo servers of the tutorial examples (HTTP srv1 :9001, srv2
/// :9002; TCP srv1 :9101, srv2 :9102) on every node's loopback, as the
/// examples expect them, in a hostNetwork DaemonSet.
fn demo_servers(image: &str) -> String {
    let container = |name: &str, port: u16, mode: &str| {
        format!(
            "        - name: {name}-{port}\n          image: {image}\n          imagePullPolicy: Never\n          args: [--listen=127.0.0.1:{port}, --name={name}, --mode={mode}]\n"
        )
    };
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: demo-servers, namespace: {DEMO}}}
spec:
  selector: {{matchLabels: {{app: demo-servers}}}}
  template:
    metadata: {{labels: {{app: demo-servers}}}}
    spec:
      hostNetwork: true
      containers:
{}{}{}{}",
        container("srv1", 9001, "http"),
        container("srv2", 9002, "http"),
        container("srv1", 9101, "tcp"),
        container("srv2", 9102, "tcp"),
    )
}

/// A Deployment of two demo servers on the Pod network, each answering with
/// its Pod name, behind the Service `web` (port `http`); a Backend of that
/// Service, a Frontend on :8090, and one on the virtual IP `vip`.
fn web_service(image: &str, vip: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {DEMO}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {image}
          imagePullPolicy: Never
          args: [--listen=0.0.0.0:8080]
          env:
            - name: DEMO_BACKEND_NAME
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /, port: http}}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {DEMO}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: web, namespace: {DEMO}}}
spec:
  service: {{name: web, port: http}}
  healthCheck: {{interval: 1s, http: {{path: /}}}}
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web, namespace: {DEMO}}}
spec:
  bind: {{port: 8090}}
  defaultBackend: web
---
apiVersion: fairlead.io/v1alpha1
kind: VirtualIP
metadata: {{name: vip, namespace: {DEMO}}}
spec:
  addresses: [{vip}/24]
  virtualRouterID: 61
  advertInterval: 100ms
  priorities: [{{node: node1, priority: 120}}, {{node: node2, priority: 110}}]
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web-vip, namespace: {DEMO}}}
spec:
  bind: {{virtualIP: vip, port: 80}}
  defaultBackend: web
"
    )
}

/// Starts a client in the client namespace that GETs `url` on a new
/// connection every 20 ms until stdin closes (at most 300 s), then prints
/// `ok N failed M` and one line per failure.
fn traffic(lab: &Lab, url: &str) -> Child {
    const CLIENT: &str = r#"
import sys, threading, time, urllib.request
url, stop = sys.argv[1], threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
ok, failures, start = 0, [], time.time()
print("ready", flush=True)
while not stop.is_set() and time.time() - start < 300:
    t = time.time()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
            ok += 1
    except Exception as e:
        failures.append("%.3f %s" % (t - start, e))
    time.sleep(0.02)
print("ok", ok, "failed", len(failures))
for f in failures:
    print(f)
"#;
    let mut cmd = lab.cluster.exec_in_client("python3");
    cmd.args(["-c", CLIENT, url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Ends a `traffic` client: (requests answered, failure lines).
fn finish(mut child: Child) -> (u64, Vec<String>) {
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let summary: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(summary.first(), Some(&"ok"), "{text}");
    (
        summary[1].parse().unwrap(),
        lines.map(String::from).collect(),
    )
}

fn import(cluster: &NodeCluster, image: &Image) {
    cluster.import_image(&image.archive).unwrap();
}

#[test]
fn helm_chart_on_real_kubelets_serves_fails_over_upgrades_and_uninstalls() {
    let operator = images::operator_image().unwrap();
    let dataplane = images::dataplane_image().unwrap();
    let upgraded = images::dataplane_image_tagged(UPGRADE_TAG).unwrap();
    let demo = images::demo_backend_image().unwrap();
    let cluster = NodeCluster::start(2).unwrap();
    for image in [&operator, &dataplane, &upgraded, &demo] {
        import(&cluster, image);
    }
    let lab = Lab { cluster };
    for node in lab.cluster.node_names() {
        lab.kubectl(&["label", "node", node, "fairlead.io/lb=true"]);
    }

    // helm install: the kubelets' probes make both Ready, with no restart.
    let chart = repo_path("charts/fairlead");
    let chart = chart.to_str().unwrap();
    // The nodes share this machine's file system: state under the run's
    // directory, or a dataplane would start with an earlier run's config.
    let state_dir = lab.cluster.dir().join("state");
    let images = [
        format!("--set=dataplane.stateDir={}", state_dir.display()),
        format!("--set=images.operator.tag={DEV_TAG}"),
        format!("--set=images.dataplane.tag={DEV_TAG}"),
        "--set=images.operator.pullPolicy=Never".into(),
        "--set=images.dataplane.pullPolicy=Never".into(),
    ];
    let started = Instant::now();
    let install = [
        "install",
        "fairlead",
        chart,
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "--wait",
        "--timeout=180s",
    ];
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    let notes = lab.helm(&[&install[..], &images[..]].concat());
    assert!(notes.contains("fairlead.io/lb=true"), "NOTES: {notes}");
    lab.assert_installed(2);
    eprintln!("helm install: Ready in {:.1?}", started.elapsed());

    // The tutorial examples, unchanged, with their demo servers on each node.
    lab.kubectl(&["create", "namespace", DEMO]);
    lab.apply(&demo_servers(&demo.name));
    lab.kubectl(&[
        "rollout",
        "status",
        "-n",
        DEMO,
        "daemonset/demo-servers",
        "--timeout=120s",
    ]);
    let site = repo_path("deploy/examples/site.pem");
    let site = site.to_str().unwrap();
    lab.kubectl(&[
        "create", "secret", "tls", "site", "-n", DEMO, "--cert", site, "--key", site,
    ]);
    let examples = repo_path("deploy/examples");
    lab.kubectl(&["apply", "-n", DEMO, "-f", examples.to_str().unwrap()]);
    lab.kubectl(&[
        "wait",
        "-n",
        DEMO,
        "--for=condition=Programmed",
        "--timeout=120s",
        "frontend/http-in",
        "frontend/https-in",
        "frontend/tcp-in",
        "backend/app",
        "backend/tcp-app",
    ]);
    for i in 0..2 {
        let node = lab.cluster.node_ip(i);
        let http = format!("http://{node}:8080/");
        let seen = eventually(Duration::from_secs(30), "round robin on both", || {
            let seen = lab.answers(&http, 4, &[]);
            (seen == ["srv1", "srv1", "srv2", "srv2"]).then_some(seen)
        });
        eprintln!("node{}: {http} -> {seen:?}", i + 1);
        let https = format!("https://{node}:8443/");
        let seen = lab.answers(&https, 2, &["-k", "--http2"]);
        assert_eq!(seen, ["srv1", "srv2"], "TLS termination on node{}", i + 1);
        until(
            &lab,
            Duration::from_secs(30),
            "tcp-in relays to a demo server",
            || {
                let mut nc = lab.cluster.exec_in_client("python3");
                nc.args([
                "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1],8081),3); print(s.recv(64).decode().strip())",
                &node.to_string(),
            ]);
                let out = run(nc, Duration::from_secs(10));
                let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (name == "srv1" || name == "srv2")
                    .then_some(())
                    .ok_or_else(|| format!("node{}: {out:?}", i + 1))
            },
        );
    }

    // A Backend from a real Service whose endpoints are Pods, on every node
    // and through the virtual IP.
    let vip = lab.cluster.vip(1).to_string();
    lab.apply(&web_service(&demo.name, &vip));
    lab.kubectl(&[
        "rollout",
        "status",
        "-n",
        DEMO,
        "deployment/web",
        "--timeout=120s",
    ]);
    lab.kubectl(&[
        "wait",
        "-n",
        DEMO,
        "--for=condition=Programmed",
        "--timeout=120s",
        "backend/web",
        "frontend/web",
        "frontend/web-vip",
    ]);
    lab.kubectl(&[
        "wait",
        "-n",
        DEMO,
        "--for=condition=Ready",
        "--timeout=60s",
        "virtualip/vip",
    ]);
    let pods = lab.kubectl(&[
        "get",
        "pods",
        "-n",
        DEMO,
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut pods: Vec<String> = pods.split_whitespace().map(String::from).collect();
    pods.sort();
    for url in [
        format!("http://{}:8090/", lab.cluster.node_ip(0)),
        format!("http://{}:8090/", lab.cluster.node_ip(1)),
        format!("http://{vip}/"),
    ] {
        eventually(Duration::from_secs(30), "both Pods answer", || {
            let mut seen = lab.answers(&url, 4, &[]);
            seen.dedup();
            (seen == pods).then_some(())
        });
    }

    // SIGKILL of the master's dataplane container: node2 answers on the
    // virtual IP within the VRRP floor (3 x 100 ms + skew); the kubelet
    // restarts the container and node1 (120) takes the address back.
    assert_eq!(
        lab.json(&["get", "virtualip", "vip", "-n", DEMO])["status"]["master"],
        "node1"
    );
    eventually(
        Duration::from_secs(10),
        "node1 alone holds the address",
        || (lab.holds(0, &vip) && !lab.holds(1, &vip)).then_some(()),
    );
    let pid = lab.dataplane_pid(0).expect("node1's dataplane process");
    let killed = Instant::now();
    nix_kill(pid);
    let url = format!("http://{vip}/");
    let answered = eventually(Duration::from_secs(5), "an answer through node2", || {
        lab.curl(&url, &["--max-time", "0.5"])
            .map(|_| killed.elapsed())
    });
    assert!(
        lab.holds(1, &vip),
        "node2 holds the address after the failover"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    eprintln!("SIGKILL of the master's dataplane: answered through node2 after {answered:.2?}");
    assert!(answered < Duration::from_millis(1500), "{answered:?}");
    eventually(
        Duration::from_secs(60),
        "node1 restarted and master again",
        || {
            let pods = lab.json(&[
                "get",
                "pods",
                "-n",
                SYSTEM,
                "-l",
                "app.kubernetes.io/name=fairlead-dataplane",
                "--field-selector",
                "spec.nodeName=node1",
            ]);
            let restarts = &pods["items"][0]["status"]["containerStatuses"][0]["restartCount"];
            (restarts == 1 && lab.holds(0, &vip) && !lab.holds(1, &vip)).then_some(())
        },
    );
    until(
        &lab,
        Duration::from_secs(30),
        "the status and Events follow",
        || {
            let status = &lab.json(&["get", "virtualip", "vip", "-n", DEMO])["status"];
            let master = &status["master"];
            let events = lab.kubectl(&[
                "get",
                "events",
                "-n",
                DEMO,
                "--field-selector",
                "reason=Failover",
                "-o",
                "custom-columns=FIRST:.firstTimestamp,LAST:.lastTimestamp,COUNT:.count,NOTE:.message",
            ]);
            let programmed = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Programmed" && c["status"] == "True");
            let seen = master == "node1"
                && programmed
                && events.contains("from node1 to node2")
                && events.contains("from node2 to node1");
            seen.then_some(())
                .ok_or_else(|| format!("status {status}, Failover Events {events:?}"))
        },
    );

    // A Service of type LoadBalancer gets an address from an AddressPool,
    // and its Pods answer through it.
    let (first, last) = (lab.cluster.vip(50), lab.cluster.vip(59));
    lab.apply(&format!(
        "apiVersion: fairlead.io/v1alpha1
kind: AddressPool
metadata: {{name: lan}}
spec: {{addresses: [{first}-{last}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-lb, namespace: {DEMO}}}
spec:
  type: LoadBalancer
  loadBalancerClass: fairlead.io/lb
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"
    ));
    let address = until(
        &lab,
        Duration::from_secs(60),
        "an address in the Service's status",
        || {
            let service = lab.json(&["get", "service", "web-lb", "-n", DEMO]);
            let ingress = &service["status"]["loadBalancer"]["ingress"][0];
            match (ingress["ip"].as_str(), ingress["ipMode"].as_str()) {
                (Some(ip), Some("VIP")) => Ok(ip.to_string()),
                _ => Err(service["status"].to_string()),
            }
        },
    );
    let (first_octet, last_octet) = (first.octets()[3], last.octets()[3]);
    let octet: u8 = address.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        (first_octet..=last_octet).contains(&octet),
        "{address} from the pool"
    );
    let lb = format!("http://{address}/");
    eventually(
        Duration::from_secs(30),
        "both Pods through the Service's address",
        || {
            let mut seen = lab.answers(&lb, 4, &[]);
            seen.dedup();
            (seen == pods).then_some(())
        },
    );
    eprintln!("Service of type LoadBalancer: {address} serves both Pods");

    // helm upgrade to another dataplane image, one node at a time, while a
    // client sends requests through the virtual IP.
    let client = traffic(&lab, &url);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let upgrade = [
        "upgrade",
        "fairlead",
        chart,
        "--namespace",
        SYSTEM,
        "--reuse-values",
        "--wait",
        "--timeout=240s",
    ];
    let tag = format!("--set=images.dataplane.tag={UPGRADE_TAG}");
    lab.helm(&[&upgrade[..], &[tag.as_str()]].concat());
    lab.rollout("daemonset/fairlead-dataplane");
    let took = started.elapsed();
    eventually(Duration::from_secs(30), "node1 master again", || {
        (lab.holds(0, &vip) && !lab.holds(1, &vip)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failures) = finish(client);
    eprintln!(
        "helm upgrade of the dataplane under traffic: {took:.1?}, {ok} requests answered, {} failed: {failures:?}",
        failures.len()
    );
    let dataplanes = lab.assert_installed(2);
    for pod in &dataplanes {
        let image = pod["spec"]["containers"][0]["image"].as_str().unwrap();
        assert!(image.ends_with(&format!(":{UPGRADE_TAG}")), "{image}");
    }
    assert!(ok > 100, "the client kept being answered: {ok}");
    assert!(
        failures.len() <= 2,
        "{} of {} requests failed during the upgrade: {failures:?}",
        failures.len(),
        ok + failures.len() as u64
    );

    // helm uninstall removes everything but the CRDs (and the resources).
    lab.helm(&["uninstall", "fairlead", "--namespace", SYSTEM, "--wait"]);
    eventually(
        Duration::from_secs(60),
        "nothing of the release left",
        || {
            let left = lab.kubectl(&[
                "get",
                "deployments,daemonsets,pods,serviceaccounts,roles,rolebindings,secrets,leases",
                "-n",
                SYSTEM,
                "-o",
                "name",
                "--field-selector=metadata.name!=default",
            ]);
            let cluster_wide =
                lab.kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "name"]);
            let left: Vec<&str> = left
                .lines()
                .chain(cluster_wide.lines().filter(|l| l.contains("fairlead")))
                .collect();
            left.is_empty().then_some(()).or_else(|| {
                eprintln!("left: {left:?}");
                None
            })
        },
    );
    let crds = lab.kubectl(&["get", "crds", "-o", "name"]);
    let chart_crds =
        std::fs::read_to_string(repo_path("charts/fairlead/crds/fairlead.io_crds.yaml"));
    let kept = chart_crds
        .unwrap()
        .matches("kind: CustomResourceDefinition")
        .count();
    assert_eq!(crds.matches("fairlead.io").count(), kept, "{crds}");

    // kubectl apply -k deploy/ (its images retagged to the test ones and its
    // state directory moved into the run's by an overlay) reaches the same
    // state, and the examples are served again.
    let overlay = lab.cluster.dir().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    // kustomize takes bases by relative path only.
    let deploy = repo_path("deploy").canonicalize().unwrap();
    let up = "../".repeat(overlay.canonicalize().unwrap().components().count() - 1);
    let deploy = format!("{up}{}", deploy.strip_prefix("/").unwrap().display());
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "resources: [{}]
images:
  - {{name: docker.io/fairlead/operator, newTag: {DEV_TAG}}}
  - {{name: docker.io/fairlead/dataplane, newTag: {DEV_TAG}}}
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: DaemonSet
      metadata: {{name: fairlead-dataplane, namespace: {SYSTEM}}}
      spec:
        template:
          spec:
            volumes:
              - name: state
                hostPath: {{path: {}, type: DirectoryOrCreate}}
",
            deploy,
            state_dir.display()
        ),
    )
    .unwrap();
    lab.kubectl(&["apply", "-k", overlay.to_str().unwrap()]);
    lab.assert_installed(2);
    let http = format!("http://{}:8080/", lab.cluster.node_ip(1));
    eventually(
        Duration::from_secs(60),
        "examples served after apply -k",
        || (lab.answers(&http, 2, &[]) == ["srv1", "srv2"]).then_some(()),
    );
    let problems = lab.cluster.shutdown();
    assert!(problems.is_empty(), "teardown: {problems:?}");
}

fn nix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
