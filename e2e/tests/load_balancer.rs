//! Services of type LoadBalancer end to end (needs root): a real API server,
//! `fairlead-operator` as a local process with deploy/'s RBAC, two
//! `fairlead-dataplane` "nodes" in network namespaces (registered as
//! dataplane Pods), endpoints that answer with their name in those
//! namespaces, and a client namespace. No kubelet or EndpointSlice
//! controller runs, so the test writes the EndpointSlices.
//!
//! One test walks the whole story, since every step builds on the last:
//! addresses from the pool in status, traffic through the address, masters
//! on different nodes, a refused UDP port, pool exhaustion, an operator
//! restart that keeps every address, and a SIGKILL failover. It prints the
//! apply-to-first-connection and failover times (BENCHMARKS.md).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fairlead_e2e::{Cluster, Kubectl, eventually, repo_path};
use serde_json::{Value, json};

#[path = "../../operator/tests/netns/mod.rs"]
mod netns;

const SYSTEM: &str = "fairlead-system";

/// Builds the operator and the dataplane (debug) and returns their paths:
/// the executables cargo reports (in `deps/`, named with a hash of this
/// workspace), which other checkouts sharing the target directory do not
/// overwrite as they can `debug/fairlead-operator`.
fn binaries() -> (PathBuf, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--message-format=json",
            "--bin",
            "fairlead-operator",
            "--bin",
            "fairlead-dataplane",
        ])
        .current_dir(repo_path(""))
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "building the binaries failed");
    let executable = |name: &str| -> PathBuf {
        let messages = String::from_utf8_lossy(&out.stdout);
        let found = (messages.lines())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["target"]["name"] == name)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from));
        found.unwrap_or_else(|| panic!("cargo reported no executable {name}"))
    };
    (
        executable("fairlead-operator"),
        executable("fairlead-dataplane"),
    )
}

/// A child killed when dropped, its output in `log`.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(program: &Path, args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info,fairlead_operator=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} ---\n{}\n",
            self.log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct World {
    cluster: &'static Cluster,
    dir: PathBuf,
    kubeconfig: PathBuf,
    operator_bin: PathBuf,
    dataplane_bin: PathBuf,
    operator: Option<Proc>,
    /// The operator's metrics address.
    metrics: SocketAddr,
    dataplanes: Vec<Proc>,
    /// Namespaces made; their Services are deleted at the end.
    namespaces: Vec<String>,
    /// One test at a time: each runs its own operator and pools.
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl World {
    fn new() -> World {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let cluster = Cluster::shared();
        cluster.apply_deploy().unwrap();
        let dir = std::env::temp_dir().join(format!("fairlead-e2e-lb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = cluster.operator_kubeconfig(SYSTEM).unwrap();
        let (operator_bin, dataplane_bin) = binaries();
        World {
            cluster,
            dir,
            kubeconfig,
            operator_bin,
            dataplane_bin,
            operator: None,
            metrics: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            dataplanes: Vec::new(),
            namespaces: Vec::new(),
            _serial: serial,
        }
    }

    /// A lab of `nodes` network namespaces the host reaches, echo servers
    /// `e1` and `e2` in nodes 1 and 2, the operator, dataplanes in nodes 1
    /// and 2, and AddressPool `pool` over `addresses` (adverts every 100 ms).
    fn lab(&mut self, nodes: usize, pool: &str, addresses: &str) -> netns::Lab {
        let mut lab = netns::Lab::new(nodes);
        lab.attach_host("10.88.0.254");
        for i in 1..=2 {
            lab.name_server(i, &format!("e{i}"), &format!("10.88.0.{i}"), 8080);
        }
        self.start_operator(1);
        for i in 1..=2 {
            self.start_dataplane(&lab, i);
        }
        self.apply(
            "default",
            &json!({
                "apiVersion": "fairlead.io/v1alpha1", "kind": "AddressPool",
                "metadata": {"name": pool},
                "spec": {"addresses": [addresses], "advertInterval": "100ms"},
            }),
        );
        lab
    }

    /// A fresh namespace whose Services go when the test ends.
    fn namespace(&mut self, prefix: &str) -> String {
        let ns = self.cluster.fresh_namespace(prefix).unwrap();
        self.namespaces.push(ns.clone());
        ns
    }

    fn logs(&self) -> String {
        (self.operator.iter().chain(&self.dataplanes))
            .map(Proc::tail)
            .collect()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        (self.cluster.kubectl_ok(args.iter().copied()))
            .unwrap_or_else(|e| panic!("kubectl {}: {e:#}\n{}", args.join(" "), self.logs()))
    }

    fn apply(&self, ns: &str, objects: &Value) {
        (self
            .cluster
            .kubectl_stdin_ok(["apply", "-n", ns, "-f", "-"], &objects.to_string()))
        .unwrap_or_else(|e| panic!("kubectl apply: {e:#}\n{}", self.logs()));
    }

    fn start_operator(&mut self, n: u32) {
        let metrics = free_port();
        let args = [
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--namespace={SYSTEM}"),
            format!("--identity=op-lb-{n}"),
            format!("--metrics-address=127.0.0.1:{metrics}"),
            "--leader-election=false".into(),
            "--status-interval=1".into(),
        ];
        let log = self.dir.join(format!("operator-{n}.log"));
        self.operator = Some(Proc::start(&self.operator_bin, &args, log));
        self.metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics));
    }

    /// Writes the dataplane credentials to files, once the operator made them.
    fn credentials(&self) -> PathBuf {
        let dir = self.dir.join("credentials");
        (self.cluster.write_dataplane_credentials(SYSTEM, &dir))
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()));
        dir
    }

    /// A dataplane in node `i` of `lab` (node `n{i}`, admin API on 10.88.0.`i`:9443).
    fn start_dataplane(&mut self, lab: &netns::Lab, i: usize) {
        let proc = self.launch_dataplane(lab, i);
        self.dataplanes.push(proc);
    }

    /// Starts node `i`'s dataplane again (after it was killed).
    fn restart_dataplane(&mut self, lab: &netns::Lab, i: usize) {
        self.dataplanes[i - 1] = self.launch_dataplane(lab, i);
    }

    fn launch_dataplane(&mut self, lab: &netns::Lab, i: usize) -> Proc {
        let creds = self.credentials();
        let ip = Ipv4Addr::new(10, 88, 0, i as u8);
        let (pod, node) = (format!("dataplane-n{i}"), format!("n{i}"));
        let args = vec![
            "netns".into(),
            "exec".into(),
            lab.node(i),
            self.dataplane_bin.display().to_string(),
            format!("--admin-address={ip}:9443"),
            format!("--tls-cert={}", creds.join("tls.crt").display()),
            format!("--tls-key={}", creds.join("tls.key").display()),
            format!("--client-ca={}", creds.join("ca.crt").display()),
            format!("--state-dir={}", self.dir.join(&pod).display()),
            format!("--node-name={node}"),
            "--threads=1".into(),
        ];
        let log = self.dir.join(format!("{pod}.log"));
        let proc = Proc::start(Path::new("ip"), &args, log);
        eventually(Duration::from_secs(10), "the admin port", || {
            TcpStream::connect((ip, 9443)).ok()
        });
        (self
            .cluster
            .register_dataplane_pod(SYSTEM, &pod, &node, ip, 9443))
        .unwrap();
        proc
    }

    fn service(&self, ns: &str, name: &str) -> Value {
        let text = self.kubectl(&["get", "service", name, "-n", ns, "-o", "json"]);
        serde_json::from_str(&text).unwrap()
    }

    /// The Service's fairlead condition once its reason is `reason`.
    fn condition(&self, ns: &str, name: &str, reason: &str) -> Value {
        eventually(
            Duration::from_secs(20),
            &format!("{name}: {reason}"),
            || {
                let s = self.service(ns, name);
                let conditions = s["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                (conditions.into_iter())
                    .find(|c| c["type"] == "fairlead.io/LoadBalancer" && c["reason"] == reason)
            },
        )
    }

    /// Waits (up to `limit`) until the Service's Serving condition names node
    /// `n{master}` as the master.
    fn wait_serving_master(&self, ns: &str, name: &str, master: usize, limit: Duration) {
        let what = format!("n{master} as the master in {name}'s condition");
        eventually(limit, &what, || {
            let c = self.condition(ns, name, "Serving");
            (c["message"].as_str().unwrap())
                .contains(&format!("master: n{master}"))
                .then_some(())
        });
    }

    /// The Service's address, once it has one; panics with its status after 30 s.
    fn wait_address(&self, ns: &str, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(a) = self.address(ns, name) {
                return a;
            }
            if Instant::now() > deadline {
                let s = self.service(ns, name);
                panic!("{name} has no address: {}\n{}", s["status"], self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn address(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.service(ns, name);
        s["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for ns in &self.namespaces {
            let _ = self
                .cluster
                .kubectl(["delete", "services", "--all", "-n", ns]);
        }
        let _ = self.cluster.kubectl(["delete", "addresspool", "--all"]);
        for i in 1..=self.dataplanes.len() {
            let _ = (self.cluster).delete_pod_now(SYSTEM, &format!("dataplane-n{i}"));
        }
    }
}

fn free_port() -> u16 {
    (TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap())
    .port()
}

/// A Service of type LoadBalancer with fairlead's class, port 80 -> 8080 (and `extra` ports).
fn service(name: &str, extra: &[Value]) -> Value {
    let mut ports =
        vec![json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080})];
    ports.extend(extra.iter().cloned());
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "fairlead.io/lb",
                 "selector": {"app": name}, "ports": ports},
    })
}

/// The EndpointSlice of Service `name`: both node addresses, port 8080, ready.
fn endpoints(name: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.88.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.88.0.2"], "conditions": {"ready": true}},
        ],
    })
}

/// The name an endpoint answers with through `address:80`, from the client namespace.
fn answer(lab: &netns::Lab, address: &str) -> Option<String> {
    let script = "import socket,sys\ns=socket.create_connection((sys.argv[1],80),timeout=1)\n\
                  s.settimeout(1)\nprint(s.recv(64).decode().strip())";
    let out = lab.run(&lab.client(), "python3", &["-c", script, address]);
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

/// Connects to `argv[1]`:80 from the client every 3 ms, for at most
/// `argv[2]` seconds; once a connection failed, prints the Unix time in ms of
/// the next one an endpoint answers.
const OUTAGE: &str = r#"
import socket, sys, time
host, limit = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
failed = False
deadline = time.time() + limit
while time.time() < deadline:
    try:
        with socket.create_connection((host, 80), timeout=0.05) as c:
            c.settimeout(0.2)
            ok = bool(c.recv(64))
    except OSError:
        ok = False
    if ok and failed:
        print(int(time.time() * 1000), flush=True)
        sys.exit(0)
    failed = failed or not ok
    time.sleep(0.003)
sys.exit(1)
"#;

/// A client probe, running before the kill, that sees the outage end.
struct Outage {
    child: Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Outage {
    fn start(lab: &netns::Lab, address: &str) -> Outage {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.client(),
                "python3",
                "-c",
                OUTAGE,
                address,
                "15",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        Outage { child, stdout }
    }

    /// The Unix time in ms of the first answer after the outage.
    fn wait(mut self) -> u64 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.stdout, &mut line).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "no answer after the outage");
        line.trim().parse().unwrap()
    }
}

/// The virtual router ID the operator gives virtual IP `name` when no other
/// is in the way: its hash (FNV-1a of "vrid", 0, name, then SplitMix64's
/// finalizer, as `operator/src/load_balancer/spread.rs`) mod 255, plus 1.
fn predicted_vrid(name: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "vrid".bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    ((h ^ (h >> 31)) % 255) as u8 + 1
}

/// Debian's keepalived in the client namespace: a VRRPv3 router with `vrid`
/// and 10.88.0.250, alone on it, so it becomes master and advertises.
fn keepalived(lab: &netns::Lab, dir: &Path, vrid: u8) -> Keepalived {
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n  router_id foreign\n  vrrp_version 3\n}}\n\
             vrrp_instance FOREIGN {{\n  state BACKUP\n  interface eth0\n  \
             virtual_router_id {vrid}\n  priority 100\n  advert_int 1\n  \
             virtual_ipaddress {{\n    10.88.0.250/24\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let (mut proc, _) = lab.keepalived(&lab.client(), &conf, dir);
    proc.wait_for("Entering MASTER STATE", Duration::from_secs(15));
    Keepalived(proc)
}

/// keepalived, stopped with SIGTERM (which stops its VRRP child too) when dropped.
struct Keepalived(netns::Proc);

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.0.signal("TERM");
        self.0.wait_exit(Duration::from_secs(5));
    }
}

/// One HTTP GET of `/metrics` on the operator; `None` while it does not answer.
fn metrics(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn services_get_addresses_spread_masters_survive_restarts_and_fail_over() {
    let mut world = World::new();
    let lab = world.lab(2, "lab", "10.88.0.100-10.88.0.102");
    // The API server refuses pools the schema and CEL rules reject.
    for (spec, message) in [
        (
            json!({"addresses": []}),
            "spec.addresses: set at least one CIDR or range",
        ),
        (json!({"addresses": ["10.0.0.0/8x"]}), "should match"),
        (
            json!({"addresses": ["10.0.0.0/8"], "peers": {"mode": "unicast", "addresses": ["10.0.0.1"]}}),
            "a pool's peers are the dataplane nodes; list none",
        ),
    ] {
        let pool = json!({"apiVersion": "fairlead.io/v1alpha1", "kind": "AddressPool",
                          "metadata": {"name": "bad"}, "spec": spec});
        let out = (world.cluster)
            .kubectl_stdin(["apply", "-f", "-"], &pool.to_string())
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "{spec}: {stderr}"
        );
    }
    let ns = world.namespace("lb");
    world.apply(&ns, &endpoints("a"));

    // Apply -> first connection through the new address.
    let applied = Instant::now();
    world.apply(&ns, &service("a", &[]));
    let first = eventually(
        Duration::from_secs(30),
        "a connection through 10.88.0.100",
        || answer(&lab, "10.88.0.100"),
    );
    let to_first_connection = applied.elapsed();
    assert!(first == "e1" || first == "e2", "{first}");
    let served = world.condition(&ns, "a", "Serving");
    assert_eq!(world.address(&ns, "a").as_deref(), Some("10.88.0.100"));
    let s = world.service(&ns, "a");
    assert_eq!(s["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    let message = served["message"].as_str().unwrap();
    assert!(
        message.starts_with("10.88.0.100 from AddressPool lab, virtual router "),
        "{message}"
    );
    // Both endpoints answer, whichever node is master.
    let names: std::collections::BTreeSet<String> =
        (0..8).filter_map(|_| answer(&lab, "10.88.0.100")).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["e1", "e2"]);

    // A second Service, with a UDP port fairlead refuses: the other address,
    // the other node as master.
    world.apply(&ns, &endpoints("b"));
    let dns = json!({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53});
    world.apply(&ns, &service("b", &[dns]));
    let refused = world.condition(&ns, "b", "PortsRefused");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("53/UDP is not served"),
        "{refused}"
    );
    assert_eq!(world.address(&ns, "b").as_deref(), Some("10.88.0.101"));
    let ports = &world.service(&ns, "b")["status"]["loadBalancer"]["ingress"][0]["ports"];
    assert_eq!(
        ports[1],
        json!({"port": 53, "protocol": "UDP", "error": "fairlead.io/ProtocolNotSupported"})
    );
    eventually(Duration::from_secs(10), "b answers", || {
        answer(&lab, "10.88.0.101")
    });
    let master_a = eventually(Duration::from_secs(5), "one holder of a", || {
        let h = lab.holders("10.88.0.100");
        (h.len() == 1).then(|| h[0])
    });
    let master_b = eventually(Duration::from_secs(5), "one holder of b", || {
        let h = lab.holders("10.88.0.101");
        (h.len() == 1).then(|| h[0])
    });
    assert_ne!(master_a, master_b, "both masters on n{master_a}");
    let message = world.condition(&ns, "a", "Serving")["message"]
        .as_str()
        .unwrap()
        .to_string();
    world.wait_serving_master(&ns, "a", master_a, Duration::from_secs(10));

    // Another router on the link (keepalived, in the client namespace) uses
    // the ID Service d would get: the dataplanes hear it, the conditions
    // report it, and d gets another one.
    let vrid_of = |name: &str| -> u8 {
        let c = world.condition(
            &ns,
            name,
            if name == "b" {
                "PortsRefused"
            } else {
                "Serving"
            },
        );
        let m = c["message"].as_str().unwrap().to_string();
        let after = m.split("virtual router ").nth(1).unwrap();
        after.split(';').next().unwrap().parse().unwrap()
    };
    // The prediction is right where no other router is in the way.
    assert_eq!(vrid_of("b"), predicted_vrid(&format!("service:{ns}/b")));
    let taken = predicted_vrid(&format!("service:{ns}/d"));
    let _keepalived = keepalived(&lab, &world.dir, taken);
    let avoided = format!("avoided: {taken}");
    eventually(
        Duration::from_secs(20),
        "the foreign ID in a's condition",
        || {
            let c = world.condition(&ns, "a", "Serving");
            c["message"]
                .as_str()
                .unwrap()
                .contains(&avoided)
                .then_some(())
        },
    );
    world.apply(&ns, &endpoints("d"));
    world.apply(&ns, &service("d", &[]));
    eventually(Duration::from_secs(10), "d answers", || {
        answer(&lab, "10.88.0.102")
    });
    let d = vrid_of("d");
    assert_ne!(d, taken);

    // The pool is exhausted: the next Service gets a clear condition and no address.
    world.apply(&ns, &service("c", &[]));
    let exhausted = world.condition(&ns, "c", "PoolExhausted");
    assert_eq!(exhausted["status"], "False");
    assert!(
        exhausted["message"]
            .as_str()
            .unwrap()
            .contains("AddressPool lab"),
        "{exhausted}"
    );
    assert_eq!(world.address(&ns, "c"), None);
    let events = eventually(Duration::from_secs(10), "a PoolExhausted Event", || {
        let args = [
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "reason=PoolExhausted",
            "-o",
            "name",
        ];
        let out = world.kubectl(&args);
        (!out.is_empty()).then_some(out)
    });
    assert!(!events.is_empty());

    // A restarted operator keeps every address (the statuses say them), and
    // c stays refused.
    let versions_before = world.kubectl(&[
        "get",
        "service",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].status.loadBalancer.ingress[*].ip}",
    ]);
    world.operator = None;
    world.start_operator(2);
    let metrics_address = world.metrics;
    eventually(
        Duration::from_secs(20),
        "the new operator serving two Services",
        || {
            let text = metrics(metrics_address)?;
            text.contains("fairlead_operator_load_balancer_services 3")
                .then_some(())
        },
    );
    // Let it write statuses, then check nothing moved.
    std::thread::sleep(Duration::from_secs(3));
    let versions_after = world.kubectl(&[
        "get",
        "service",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].status.loadBalancer.ingress[*].ip}",
    ]);
    assert_eq!(versions_after, versions_before);
    assert_eq!(world.address(&ns, "a").as_deref(), Some("10.88.0.100"));
    assert_eq!(world.address(&ns, "b").as_deref(), Some("10.88.0.101"));
    world.condition(&ns, "c", "PoolExhausted");
    // c stops being a LoadBalancer: fairlead's condition leaves its status.
    let patch = r#"{"spec": {"type": "ClusterIP", "loadBalancerClass": null}}"#;
    world.kubectl(&[
        "patch",
        "service",
        "c",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        patch,
    ]);
    eventually(
        Duration::from_secs(20),
        "c without fairlead's condition",
        || {
            let s = world.service(&ns, "c");
            let conditions = s["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (!conditions
                .iter()
                .any(|c| c["type"] == "fairlead.io/LoadBalancer"))
            .then_some(())
        },
    );
    let pools = metrics(metrics_address).unwrap();
    assert!(
        pools.contains("fairlead_operator_pool_addresses{pool=\"lab\",state=\"allocated\"} 3"),
        "{pools}"
    );
    assert!(
        pools.contains("fairlead_operator_pool_addresses{pool=\"lab\",state=\"free\"} 0"),
        "{pools}"
    );
    assert!(message.contains("virtual router"));

    // SIGKILL of a's master dataplane: the client is answered through the other node.
    let other = 3 - master_a;
    let probe = Outage::start(&lab, "10.88.0.100");
    let killed_at = netns::now_ms();
    world.dataplanes[master_a - 1].child.kill().unwrap();
    let failover = probe.wait().saturating_sub(killed_at);
    lab.wait_holds(other, "10.88.0.100", Duration::from_secs(3));
    // The VRRP floor at 100 ms adverts: 3 x 100 ms + skew; with margin for a shared machine.
    assert!(failover < 1500, "failover took {failover} ms");
    world.wait_serving_master(&ns, "a", other, Duration::from_secs(20));
    eprintln!(
        "BENCH load balancer: apply to first connection {:.0} ms; SIGKILL failover to an answer {failover} ms",
        to_first_connection.as_secs_f64() * 1000.0
    );
}

/// Median, min and max of `values` (sorted in place).
fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "median {median:.0} ms, min {:.0}, max {:.0} ({} runs)",
        values[0],
        values[values.len() - 1],
        values.len()
    )
}

/// The figures of BENCHMARKS.md, run by hand (root, about 3 minutes):
/// `cargo test -p fairlead-e2e --test load_balancer -- --ignored --nocapture`.
/// Apply-to-first-connection and SIGKILL failover of a Service's address,
/// 10 times each on two nodes; then 100 Services on three nodes, counting
/// which node holds each address.
#[test]
#[ignore]
fn measure_apply_failover_and_spread() {
    let mut world = World::new();
    let lab = world.lab(3, "bench", "10.88.0.100-10.88.0.163");
    let ns = world.namespace("lb-bench");
    let (mut applied, mut failovers) = (Vec::new(), Vec::new());
    for run in 0..10 {
        let name = format!("s{run}");
        world.apply(&ns, &endpoints(&name));
        let start = Instant::now();
        world.apply(&ns, &service(&name, &[]));
        let address = world.wait_address(&ns, &name);
        eventually(Duration::from_secs(30), "a connection", || {
            answer(&lab, &address)
        });
        applied.push(start.elapsed().as_secs_f64() * 1000.0);
        let master = eventually(Duration::from_secs(5), "one holder", || {
            let h = lab.holders(&address);
            (h.len() == 1).then(|| h[0])
        });
        // Kill at a random point of the advertisement interval.
        std::thread::sleep(Duration::from_millis(
            200 + u64::from(netns::now_ms() as u32 % 100),
        ));
        let probe = Outage::start(&lab, &address);
        let killed_at = netns::now_ms();
        world.dataplanes[master - 1].child.kill().unwrap();
        let _ = world.dataplanes[master - 1].child.wait();
        failovers.push(probe.wait().saturating_sub(killed_at) as f64);
        // The node comes back (its last config from disk) and takes over again.
        world.restart_dataplane(&lab, master);
        lab.wait_sole_holder(master, &address, Duration::from_secs(10));
    }
    eprintln!("BENCH apply to first connection: {}", summary(&mut applied));
    eprintln!(
        "BENCH SIGKILL failover to an answer: {}",
        summary(&mut failovers)
    );

    // 100 Services on three nodes: who is master of what.
    world.start_dataplane(&lab, 3);
    world.apply(
        "default",
        &json!({
            "apiVersion": "fairlead.io/v1alpha1", "kind": "AddressPool",
            "metadata": {"name": "bench"},
            "spec": {"addresses": ["10.88.0.100-10.88.0.163", "10.88.0.164-10.88.0.199"], "advertInterval": "1s"},
        }),
    );
    let items: Vec<Value> = (10..100)
        .flat_map(|i| [endpoints(&format!("s{i}")), service(&format!("s{i}"), &[])])
        .collect();
    world.apply(
        &ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    );
    // Masters by the VRRP states the dataplanes report (the conditions).
    let start = Instant::now();
    let masters = eventually(
        Duration::from_secs(120),
        "a master for each of 100 Services",
        || {
            let path = "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"fairlead.io/LoadBalancer\")].message}{\"\\n\"}{end}";
            let out = world.kubectl(&["get", "service", "-n", &ns, "-o", path]);
            let mut per_node = [0usize; 3];
            for line in out.lines() {
                let node = line
                    .split("master: n")
                    .nth(1)?
                    .chars()
                    .next()?
                    .to_digit(10)?;
                per_node[node as usize - 1] += 1;
            }
            (per_node.iter().sum::<usize>() == 100).then_some(per_node)
        },
    );
    let settled = start.elapsed().as_secs_f64();
    // And on the wire: who holds each address.
    let out = world.kubectl(&[
        "get",
        "service",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].status.loadBalancer.ingress[0].ip}",
    ]);
    let (mut held, mut extra) = ([0usize; 3], 0);
    for address in out.split_whitespace() {
        let h = lab.holders(address);
        for n in &h {
            held[n - 1] += 1;
        }
        extra += h.len().saturating_sub(1);
    }
    eprintln!(
        "BENCH 100 Services on 3 nodes: masters per node {masters:?} (all reported {settled:.1} s after the apply); \
         addresses held per node {held:?}, {extra} held by a second node"
    );
}
