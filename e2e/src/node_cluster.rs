//! A real Kubernetes cluster with kubelets: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (built like the other e2e
//! binaries) plus one or two nodes, each a network namespace with its own
//! containerd (Debian's, with runc and the bridge CNI plugin) and kubelet, so
//! that Pods really run: images, probes, DaemonSets, Deployments, hostNetwork.
//! No kube-proxy and no DNS: Pods reach each other by Pod IP, and the
//! `kubernetes` Service (10.0.0.1:443) is DNATed to the API server on every
//! node. Needs root.
//!
//! Network (10.89.0.0/24 on a bridge in the control-plane namespace, which
//! holds the API server at 10.89.0.2:6443): node i is 10.89.0.(10+i) on `eth0`
//! with Pod subnet 10.244.i.0/24, the client namespace is 10.89.0.200, and
//! every namespace routes each Pod subnet to its node. Names carry a per-run
//! id (`fl-<id>-ctl`, `fl-<id>-node<i>`, `fl-<id>-client`), so runs never
//! collide; files are under `/tmp/fairlead-nodes/<id>/`. A run whose test
//! process was killed is removed by the next start.
//!
//! ```no_run
//! use fairlead_e2e::Kubectl;
//! let cluster = fairlead_e2e::NodeCluster::start(2).unwrap();
//! let nodes = cluster.kubectl_ok(["get", "nodes", "-o", "name"]).unwrap();
//! assert_eq!(nodes.lines().count(), 2);
//! // Dropping it removes every process, mount, cgroup and namespace it made.
//! ```

mod containerd;
mod control_plane;
mod kubelet;
mod network;
mod teardown;

use std::ffi::{OsStr, OsString};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use network::{API_IP, API_PORT, CLIENT_IP, KUBERNETES_SERVICE_IP, NODE_INTERFACE, vip};
pub use teardown::BASE as RUN_BASE;

use crate::kubeconfig::{self, Credentials};
use crate::process::{Process, run_bounded};
use crate::{Kubectl, bins, pki};

/// How long nodes may take to become Ready after the API server is.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the API server may take to report ready.
const API_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one kubectl (or `command`) run may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// A running cluster with `nodes` kubelets. Dropping it tears everything down.
pub struct NodeCluster {
    id: String,
    dir: PathBuf,
    names: network::Names,
    node_names: Vec<String>,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    // Stopped in this order, then whatever is left is killed by the teardown.
    kubelets: Vec<Process>,
    containerds: Vec<Process>,
    control_plane: Vec<Process>,
    stopped: bool,
}

impl NodeCluster {
    /// Starts the control plane and `nodes` (1 or 2) nodes named `node1`,
    /// `node2`, and waits (bounded) until every node is Ready. First removes
    /// what runs of killed test processes left behind. On failure, everything
    /// started is removed and the error holds the logs' tails.
    pub fn start(nodes: usize) -> anyhow::Result<NodeCluster> {
        if !(1..=2).contains(&nodes) {
            bail!("NodeCluster::start({nodes}): 1 or 2 nodes");
        }
        let started = Instant::now();
        for problem in teardown::sweep() {
            eprintln!("fairlead-e2e: sweep: {problem}");
        }
        let kubectl = bins::binary("kubectl")?;
        let kubelet_bin = bins::binary("kubelet")?;
        let (id, dir) = teardown::new_run()?;
        let names = network::Names { id: id.clone() };
        // From here on, dropping `cluster` (also on error) removes everything.
        let mut cluster = NodeCluster {
            kubeconfig: dir.join("admin.kubeconfig"),
            node_names: (1..=nodes).map(|i| format!("node{i}")).collect(),
            id,
            dir,
            names,
            kubectl,
            kubelets: Vec::new(),
            containerds: Vec::new(),
            control_plane: Vec::new(),
            stopped: false,
        };
        let phases = match cluster.bring_up(&kubelet_bin) {
            Ok(phases) => phases,
            Err(e) => {
                let logs = cluster.logs();
                return Err(e.context(logs));
            }
        };
        eprintln!(
            "fairlead-e2e: node cluster {} with {nodes} Ready node(s) in {:.1?} ({phases}; logs in {})",
            cluster.id,
            started.elapsed(),
            cluster.dir.display()
        );
        Ok(cluster)
    }

    /// Starts everything; returns how long the phases took, for the log.
    fn bring_up(&mut self, kubelet_bin: &Path) -> anyhow::Result<String> {
        let started = Instant::now();
        teardown::save_host_state()?;
        let nodes = self.node_names.len();
        network::create(&self.names, nodes).context("creating the network")?;
        let names = control_plane::serving_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pki = pki::write(&self.dir, &names)?;
        let server_url = control_plane::server_url();
        std::fs::write(
            &self.kubeconfig,
            kubeconfig::render(
                &server_url,
                &pki.ca_cert,
                "admin",
                Credentials::ClientCert {
                    cert: &pki.admin_cert,
                    key: &pki.admin_key,
                },
            ),
        )?;
        let control_netns = network::netns_path(&self.names.control());
        self.control_plane =
            control_plane::start(&self.dir, &control_netns, &pki, &self.kubeconfig)?.processes;

        // Nodes start while the API server comes up.
        let pause = containerd::build_pause_image(&self.dir)?;
        for i in 1..=nodes {
            kubelet::create_cgroup_root(&self.cgroup_root(i))?;
            let paths = self.containerd_paths(i);
            std::fs::create_dir_all(&paths.dir)?;
            containerd::write_config(&paths, &self.names.node(i), i)?;
            let netns = network::netns_path(&self.names.node(i));
            let process = containerd::start(&paths, &netns, &format!("containerd-node{i}"))?;
            self.containerds.push(process);
            containerd::import(&paths, &pause)?;
        }
        let nodes_started = started.elapsed();
        self.wait_api_ready()?;
        let api_ready = started.elapsed();
        for i in 1..=nodes {
            let paths = self.containerd_paths(i);
            let netns = network::netns_path(&self.names.node(i));
            let node_dir = self.dir.join(format!("node{i}"));
            let cgroup_root = self.cgroup_root(i);
            let kubelet = kubelet::Kubelet {
                name: &self.node_names[i - 1],
                ip: network::node_ip(i),
                netns: &netns,
                dir: &node_dir,
                containerd_socket: &paths.socket(),
                cgroup_root: &cgroup_root,
                server_url: &server_url,
                pki: &pki,
            };
            self.kubelets.push(kubelet.start(kubelet_bin)?);
        }
        self.wait_nodes_ready()?;
        let nodes_ready = started.elapsed();
        // Pods need their namespace's ServiceAccount, made by the controller-manager.
        self.wait_until("the default ServiceAccount", |c| {
            let out = c.kubectl(["get", "serviceaccount", "default", "-n", "default"])?;
            Ok(out.status.success())
        })?;
        Ok(format!(
            "network, pause image and containerds {nodes_started:.1?}, API ready {api_ready:.1?}, \
             nodes Ready {nodes_ready:.1?}"
        ))
    }

    fn cgroup_root(&self, i: usize) -> String {
        self.names.node(i)
    }

    fn containerd_paths(&self, i: usize) -> containerd::Paths {
        containerd::Paths {
            dir: self.dir.join(format!("node{i}/containerd")),
        }
    }

    /// Polls `done` every 100 ms until it holds, failing when a process
    /// exits or after [`READY_TIMEOUT`].
    fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&Self) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            self.check_alive()?;
            if done(self)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{what} not there within {READY_TIMEOUT:?}")
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        let all = self
            .control_plane
            .iter_mut()
            .chain(&mut self.containerds)
            .chain(&mut self.kubelets);
        for process in all {
            if let Some(status) = process.exited() {
                bail!("{} exited ({status})", process.name());
            }
        }
        Ok(())
    }

    fn wait_api_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + API_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.check_alive()?;
            let out = self.kubectl(["get", "--raw=/readyz", "--request-timeout=5s"])?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("kube-apiserver was not ready within {API_TIMEOUT:?}; last /readyz answer: {last}")
    }

    fn wait_nodes_ready(&mut self) -> anyhow::Result<()> {
        let wanted = self.node_names.clone();
        let mut last = String::new();
        let result = self.wait_until("every node Ready", |c| {
            let out = c.kubectl([
                "get",
                "nodes",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
            ])?;
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok(wanted
                .iter()
                .all(|n| last.lines().any(|l| l == format!("{n}=True"))))
        });
        result.with_context(|| format!("nodes: {last:?}"))
    }

    /// The tails of every component's log, for error messages.
    pub fn logs(&self) -> String {
        self.control_plane
            .iter()
            .chain(&self.containerds)
            .chain(&self.kubelets)
            .map(|p| p.log_tail(30))
            .collect()
    }

    /// This run's id (in namespace and cgroup names: `fl-<id>-...`).
    pub fn run_id(&self) -> &str {
        &self.id
    }

    /// This run's directory (logs of every component, node state), under [`RUN_BASE`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (client certificate in `system:masters`). Its
    /// server, `https://10.89.0.2:6443`, is reachable only from the run's
    /// namespaces: use it with [`NodeCluster::command`] (e.g. for helm).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `program` run in the control-plane namespace (where the API server
    /// listens), with `KUBECONFIG` set to the admin kubeconfig.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = network::in_netns(&network::netns_path(&self.names.control()), program);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .env("KUBERC", "off");
        cmd
    }

    /// Imports an image archive (`ctr images import`: OCI layout or `docker
    /// save` format) into every node's containerd. Pods use it with
    /// `imagePullPolicy: Never` or `IfNotPresent` (no registry is reachable).
    pub fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        for i in 1..=self.node_names.len() {
            containerd::import(&self.containerd_paths(i), archive)?;
        }
        Ok(())
    }

    /// The node names: `node1`, `node2`.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// The address of node `i` (0-based index into [`NodeCluster::node_names`]):
    /// 10.89.0.11, 10.89.0.12; on [`NODE_INTERFACE`] of the node's namespace.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        self.check_node(i);
        network::node_ip(i + 1)
    }

    /// The network namespace of node `i` (0-based): `/run/netns/fl-<id>-node<i+1>`.
    /// hostNetwork Pods run in it.
    pub fn node_netns(&self, i: usize) -> PathBuf {
        self.check_node(i);
        network::netns_path(&self.names.node(i + 1))
    }

    /// The Pod subnet of node `i` (0-based): 10.244.(i+1).0/24.
    pub fn pod_cidr(&self, i: usize) -> String {
        self.check_node(i);
        network::pod_cidr(i + 1)
    }

    fn check_node(&self, i: usize) {
        assert!(
            i < self.node_names.len(),
            "node index {i} out of range: the cluster has {} node(s)",
            self.node_names.len()
        );
    }

    /// The client namespace ([`CLIENT_IP`], routes to every Pod subnet), for test traffic.
    pub fn client_netns(&self) -> PathBuf {
        network::netns_path(&self.names.client())
    }

    /// `program` run in the client namespace, e.g. `exec_in_client("curl")`.
    pub fn exec_in_client(&self, program: impl AsRef<OsStr>) -> Command {
        network::in_netns(&self.client_netns(), program)
    }

    /// `program` run in node `i`'s (0-based) namespace.
    pub fn exec_in_node(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        network::in_netns(&self.node_netns(i), program)
    }

    /// A free address on the node subnet for virtual IPs: 10.89.0.(100+n), n < 100.
    pub fn vip(&self, n: u8) -> Ipv4Addr {
        vip(n)
    }

    /// The nodes' interface on the node subnet: `eth0`.
    pub fn node_interface(&self) -> &'static str {
        NODE_INTERFACE
    }

    /// The API server's address directly, as the env a Pod may set instead of
    /// the default `kubernetes` Service (which works too: it is DNATed on every node).
    pub fn api_server_env(&self) -> Vec<(String, String)> {
        vec![
            ("KUBERNETES_SERVICE_HOST".to_owned(), API_IP.to_string()),
            ("KUBERNETES_SERVICE_PORT".to_owned(), API_PORT.to_string()),
        ]
    }

    /// Resident memory of every process of the run (control plane, containerds,
    /// shims, kubelets, containers), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let mut pids = teardown::processes_naming(&format!("{}/", self.dir.display()));
        pids.extend(teardown::processes_in_cgroups(&format!(
            "{}{}-",
            network::PREFIX,
            self.id
        )));
        pids.sort_unstable();
        pids.dedup();
        pids.iter()
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .sum()
    }

    /// Stops everything and removes what the run made; returns what could not
    /// be removed (empty when all is gone). Dropping does the same and prints the problems.
    pub fn shutdown(mut self) -> Vec<String> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<String> {
        self.stopped = true;
        // Kubelets first: they would restart what the teardown kills.
        for process in &mut self.kubelets {
            process.kill();
        }
        let problems = teardown::teardown(&self.id);
        for process in self.containerds.iter_mut().chain(&mut self.control_plane) {
            process.kill();
        }
        self.kubelets.clear();
        self.containerds.clear();
        self.control_plane.clear();
        problems
    }
}

/// kubectl through [`NodeCluster::command`].
impl Kubectl for NodeCluster {
    fn kubectl_with<I, S>(&self, args: I, stdin: Option<&str>) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(&self.kubectl);
        cmd.args(args);
        run_bounded(cmd, stdin.map(str::as_bytes), KUBECTL_TIMEOUT)
    }
}

impl Drop for NodeCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        for problem in self.stop() {
            eprintln!("fairlead-e2e: node cluster {} teardown: {problem}", self.id);
        }
    }
}

/// The current values of the host sysctls the kubelet changes (it sets
/// `vm.overcommit_memory`, `kernel.panic` and others at start; the last
/// cluster to stop restores them).
pub fn kubelet_sysctls() -> Vec<(String, String)> {
    teardown::kubelet_sysctls()
}

/// Starts `base` (a program with leading args, e.g. from [`network::in_netns`])
/// plus `args` as a [`Process`] logging to `log`.
fn spawn<I, S>(name: &str, base: Command, args: I, log: PathBuf) -> anyhow::Result<Process>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = PathBuf::from(base.get_program());
    let all: Vec<OsString> = base
        .get_args()
        .map(OsStr::to_owned)
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
        .collect();
    Process::start(name, &program, all, &[], log, None)
}
