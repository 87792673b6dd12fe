//! The node cluster harness end to end: two kubelet nodes in network
//! namespaces run a Deployment (one Pod per node, ready by the kubelet's own
//! HTTP probe) and a hostNetwork DaemonSet of the demo backend image; the
//! client namespace reaches Pod IPs on both nodes and the DaemonSet on the node
//! addresses; `kubectl logs` works; a Pod reaches the API server through the
//! `kubernetes` Service with its ServiceAccount token and `kube-root-ca.crt`;
//! and after shutdown nothing of the run is left. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fairlead_e2e::node_cluster::{RUN_BASE, kubelet_sysctls};
use fairlead_e2e::{Kubectl, NodeCluster, images};

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: demo}}, topologyKey: kubernetes.io/hostname}
      containers:
        - name: demo
          image: IMAGE
          imagePullPolicy: Never
          args: ["--listen=0.0.0.0:8080", "--name=$(POD_NAME)"]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: host-demo, namespace: default}
spec:
  selector: {matchLabels: {app: host-demo}}
  template:
    metadata: {labels: {app: host-demo}}
    spec:
      hostNetwork: true
      containers:
        - name: demo
          image: IMAGE
          imagePullPolicy: Never
          args: ["--listen=0.0.0.0:9090", "--name=$(NODE_NAME)"]
          env:
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
          readinessProbe:
            httpGet: {path: /, port: 9090}
            periodSeconds: 1
"#;

/// Other node cluster runs (their directories), which share the host sysctls.
fn other_runs(mine: &str) -> Vec<String> {
    std::fs::read_dir(RUN_BASE)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let e = e.ok()?;
                    e.file_type().ok()?.is_dir().then_some(())?;
                    e.file_name().into_string().ok()
                })
                .filter(|n| !n.starts_with('.') && n != mine)
                .collect()
        })
        .unwrap_or_default()
}

fn curl(cmd: &mut Command) -> String {
    let out = cmd
        .args(["-sS", "--max-time", "5"])
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pid of the process whose command line is exactly `args` (NUL-separated).
fn pid_of(args: &[&str]) -> u32 {
    let wanted: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted)
        })
        .collect();
    assert_eq!(found.len(), 1, "processes running {args:?}: {found:?}");
    found[0]
}

#[test]
fn two_nodes_run_pods_and_leave_nothing_behind() {
    // Valid as the host's own values only when no other run (live, or killed and
    // about to be swept) has changed them.
    let sysctls_before = other_runs("").is_empty().then(kubelet_sysctls);
    let kubelet_dir = Path::new("/var/lib/kubelet");
    let kubelet_dir_before = kubelet_dir.exists();
    let image = images::demo_backend_image().expect("building the demo backend image");

    let started = Instant::now();
    let cluster = NodeCluster::start(2).unwrap_or_else(|e| panic!("{e:#}"));
    let start_time = started.elapsed();
    let id = cluster.run_id().to_owned();
    let dir = cluster.dir().to_owned();
    let idle_rss = cluster.rss_bytes();

    let nodes = cluster
        .kubectl_ok([
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type=="InternalIP")].address} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ])
        .unwrap();
    assert_eq!(nodes, "node1 10.89.0.11 True\nnode2 10.89.0.12 True\n");

    let imported = Instant::now();
    cluster.import_image(&image.archive).unwrap();
    let import_time = imported.elapsed();

    let applied = Instant::now();
    cluster
        .kubectl_stdin_ok(
            ["apply", "-f", "-"],
            &MANIFESTS.replace("IMAGE", &image.name),
        )
        .unwrap();
    for workload in ["daemonset/host-demo", "deployment/demo"] {
        cluster
            .kubectl_ok(["rollout", "status", workload, "--timeout=100s"])
            .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    }
    let ready_time = applied.elapsed();

    // One demo Pod per node, each answering its name on its Pod IP from the client namespace.
    let pods = cluster
        .kubectl_ok([
            "get",
            "pods",
            "-l",
            "app=demo",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}"#,
        ])
        .unwrap();
    let pods: Vec<Vec<&str>> = pods.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let mut on_nodes: Vec<&str> = pods.iter().map(|p| p[2]).collect();
    on_nodes.sort_unstable();
    assert_eq!(on_nodes, ["node1", "node2"]);
    for pod in &pods {
        let (name, ip, node) = (pod[0], pod[1], pod[2]);
        let subnet = if node == "node1" {
            "10.244.1."
        } else {
            "10.244.2."
        };
        assert!(ip.starts_with(subnet), "{name} on {node} has {ip}");
        let answer = curl(
            cluster
                .exec_in_client("curl")
                .arg(format!("http://{ip}:8080/")),
        );
        assert_eq!(answer.trim(), name);
    }
    // The hostNetwork DaemonSet answers on each node's address.
    for (i, node) in cluster.node_names().iter().enumerate() {
        let url = format!("http://{}:9090/", cluster.node_ip(i));
        let answer = curl(cluster.exec_in_client("curl").arg(url));
        assert_eq!(answer.trim(), node);
    }

    // kubectl logs goes through the API server to the kubelet.
    let logs = cluster.kubectl_ok(["logs", pods[0][0]]).unwrap();
    assert!(
        logs.contains(&format!(
            "demo-backend {} listening on 0.0.0.0:8080",
            pods[0][0]
        )),
        "{logs}"
    );

    // In a Pod's network namespace, with the Pod's own ServiceAccount files:
    // the `kubernetes` Service (DNAT) reaches the API server, whose certificate
    // kube-root-ca.crt verifies, and which accepts the projected token.
    let pid = pid_of(&[
        "/demo-backend",
        "--listen=0.0.0.0:8080",
        &format!("--name={}", pods[0][0]),
    ]);
    let secrets = PathBuf::from(format!(
        "/proc/{pid}/root/var/run/secrets/kubernetes.io/serviceaccount"
    ));
    let token = std::fs::read_to_string(secrets.join("token")).unwrap();
    let api = curl(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("curl")
            .arg("--cacert")
            .arg(secrets.join("ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .arg("https://10.0.0.1/api"),
    );
    assert!(api.contains(r#""kind": "APIVersions""#), "{api}");
    // And from the node's own namespace (hostNetwork Pods), with the cluster CA.
    let ready = curl(
        cluster
            .exec_in_node(1, "curl")
            .arg("--cacert")
            .arg(dir.join("ca.crt"))
            .arg("https://10.0.0.1/readyz"),
    );
    assert_eq!(ready, "ok");

    let busy_rss = cluster.rss_bytes();
    eprintln!(
        "node cluster: start {start_time:.1?} (2 nodes Ready), image import {import_time:.1?}, \
         Deployment + DaemonSet Ready {ready_time:.1?}; RSS {} MiB idle, {} MiB with 4 Pods",
        idle_rss >> 20,
        busy_rss >> 20
    );

    let stopping = Instant::now();
    let problems = cluster.shutdown();
    eprintln!("node cluster: teardown {:.1?}", stopping.elapsed());
    assert!(problems.is_empty(), "teardown problems: {problems:?}");

    // Nothing is left: namespaces, processes, cgroups, the directory.
    let prefix = format!("fl-{id}-");
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|e| {
            e.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "namespaces left: {netns:?}");
    let needle = dir.display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().into_string().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(&needle)
                .then_some(format!("{pid}: {cmdline}"))
        })
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let hierarchy = hierarchy.unwrap().path();
        for i in 1..=2 {
            let cgroup = hierarchy.join(format!("{prefix}node{i}"));
            assert!(!cgroup.exists(), "cgroup left: {}", cgroup.display());
        }
    }
    assert!(!dir.exists(), "{} left", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&needle), "mounts left under {needle}");
    // Nor files outside the run: log links, CNI results (they name the netns path).
    for shared in ["/var/log/containers", "/var/lib/cni/results"] {
        for entry in std::fs::read_dir(shared).into_iter().flatten() {
            let path = entry.unwrap().path();
            let target = std::fs::read_link(&path).unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                !target.starts_with(&dir) && !text.contains(&needle),
                "{} is left from the run",
                path.display()
            );
        }
    }
    // The kubelets changed host sysctls; the last run to stop restores them.
    let others = other_runs(&id);
    match sysctls_before {
        Some(before) if others.is_empty() => {
            assert_eq!(kubelet_sysctls(), before);
            // The kubelets' device plugin socket is at a fixed path there.
            assert_eq!(kubelet_dir.exists(), kubelet_dir_before);
        }
        _ => eprintln!("other node cluster runs were there: host sysctls not checked"),
    }
}

/// One node, started while the two-node test may run (runs never collide):
/// a bare Pod (which needs the namespace's ServiceAccount at once) is Ready
/// and answers from its node's namespace.
#[test]
fn one_node_runs_a_bare_pod() {
    let image = images::demo_backend_image().expect("building the demo backend image");
    let cluster = NodeCluster::start(1).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cluster.node_names(), ["node1"]);
    cluster.import_image(&image.archive).unwrap();
    cluster
        .kubectl_ok([
            "run",
            "solo",
            &format!("--image={}", image.name),
            "--image-pull-policy=Never",
            "--",
            "--listen=0.0.0.0:8080",
            "--name=solo",
        ])
        .unwrap();
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Ready",
            "pod/solo",
            "--timeout=100s",
        ])
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    let ip = cluster
        .kubectl_ok(["get", "pod", "solo", "-o", "jsonpath={.status.podIP}"])
        .unwrap();
    assert!(ip.starts_with("10.244.1."), "{ip}");
    let answer = curl(
        cluster
            .exec_in_node(0, "curl")
            .arg(format!("http://{ip}:8080/")),
    );
    assert_eq!(answer.trim(), "solo");
    assert_eq!(cluster.shutdown(), Vec::<String>::new());
}
