//! The node cluster's network: namespaces on one bridge, pod subnets, routes.
//!
//! Every name holds the run id, so runs never collide. On 10.89.0.0/24:
//! the control-plane namespace `fl-<id>-ctl` holds the bridge `br0` with
//! 10.89.0.2 (etcd, kube-apiserver, controller-manager, scheduler run there);
//! node i (1-based) is `fl-<id>-node<i>` with `eth0` = 10.89.0.(10+i), its
//! containerd, kubelet and pods (pod subnet 10.244.i.0/24 on the CNI bridge
//! `cni0`); the client namespace `fl-<id>-client` has 10.89.0.200. Every
//! namespace routes each pod subnet to its node. In the node namespaces, the
//! `kubernetes` Service (10.0.0.1:443) is DNATed to the API server (for Pods
//! and for the node itself: hostNetwork), so in-cluster clients work without
//! kube-proxy; other ClusterIPs lead nowhere.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::run_bounded;

/// The API server's address on the bridge (port [`API_PORT`]).
pub const API_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
/// The API server's port.
pub const API_PORT: u16 = 6443;
/// The client namespace's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 200);
/// The ClusterIP range; the `kubernetes` Service gets its first address.
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The `kubernetes` Service's ClusterIP.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The interface name on nodes and the client.
pub const NODE_INTERFACE: &str = "eth0";
/// Prefix of every namespace, cgroup and directory name of a run.
pub const PREFIX: &str = "fl-";

/// Node `i`'s (1-based) address.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 89, 0, 10 + u8::try_from(i).expect("at most 2 nodes"))
}

/// Node `i`'s pod subnet.
pub fn pod_cidr(i: usize) -> String {
    format!("10.244.{i}.0/24")
}

/// A free address on the node subnet for virtual IPs: 10.89.0.(100+n), n < 100.
pub fn vip(n: u8) -> Ipv4Addr {
    assert!(n < 100, "vip({n}): n must be below 100");
    Ipv4Addr::new(10, 89, 0, 100 + n)
}

/// Names of one run's namespaces.
#[derive(Clone)]
pub struct Names {
    pub id: String,
}

impl Names {
    pub fn control(&self) -> String {
        format!("{PREFIX}{}-ctl", self.id)
    }
    pub fn node(&self, i: usize) -> String {
        format!("{PREFIX}{}-node{i}", self.id)
    }
    pub fn client(&self) -> String {
        format!("{PREFIX}{}-client", self.id)
    }
}

/// `/run/netns/<name>`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// `nsenter --net=<netns> <program>`: runs `program` in a namespace without a
/// mount namespace of its own (unlike `ip netns exec`), so mounts it makes
/// (kubelet volumes) are visible to every process.
pub fn in_netns(netns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg(program);
    cmd
}

/// Runs a setup command; an error with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = run_bounded(cmd, None, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args).map(drop)
}

fn sysctl_in(ns: &str, setting: &str) -> anyhow::Result<()> {
    let path = netns_path(ns);
    run(
        "nsenter",
        &[
            &format!("--net={}", path.display()),
            "sysctl",
            "-qw",
            setting,
        ],
    )
    .map(drop)
}

/// Creates the namespaces, the bridge, the links, the routes and the DNAT of
/// the `kubernetes` Service for `nodes` nodes.
pub fn create(names: &Names, nodes: usize) -> anyhow::Result<()> {
    let ctl = names.control();
    ip(&["netns", "add", &ctl])?;
    ip(&["-n", &ctl, "link", "set", "lo", "up"])?;
    // No IGMP snooping: VRRP and other multicast reach every port.
    ip(&[
        "-n",
        &ctl,
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])?;
    ip(&[
        "-n",
        &ctl,
        "addr",
        "add",
        &format!("{API_IP}/24"),
        "dev",
        "br0",
    ])?;
    ip(&["-n", &ctl, "link", "set", "br0", "up"])?;

    let mut members: Vec<(String, Ipv4Addr, String)> = (1..=nodes)
        .map(|i| (names.node(i), node_ip(i), format!("n{i}")))
        .collect();
    members.push((names.client(), CLIENT_IP, "client".to_owned()));
    for (ns, address, port) in &members {
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ctl,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            NODE_INTERFACE,
            "netns",
            ns,
        ])?;
        ip(&["-n", &ctl, "link", "set", port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            NODE_INTERFACE,
        ])?;
        ip(&["-n", ns, "link", "set", NODE_INTERFACE, "up"])?;
    }
    for i in 1..=nodes {
        let node = names.node(i);
        sysctl_in(&node, "net.ipv4.ip_forward=1")?;
        // The node's own connections to ClusterIPs need a route before OUTPUT's DNAT.
        ip(&[
            "-n",
            &node,
            "route",
            "add",
            SERVICE_CIDR,
            "via",
            &API_IP.to_string(),
        ])?;
        // Pods reach the API server through the `kubernetes` Service's ClusterIP.
        let dnat = format!("{API_IP}:{API_PORT}");
        let service = KUBERNETES_SERVICE_IP.to_string();
        for chain in ["PREROUTING", "OUTPUT"] {
            run(
                "nsenter",
                &[
                    &format!("--net={}", netns_path(&node).display()),
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    chain,
                    "-d",
                    &service,
                    "-p",
                    "tcp",
                    "--dport",
                    "443",
                    "-j",
                    "DNAT",
                    "--to-destination",
                    &dnat,
                ],
            )
            .context("DNAT of the kubernetes Service")?;
        }
    }
    // Each pod subnet via its node, from every other namespace.
    let everyone: Vec<String> = std::iter::once(ctl.clone())
        .chain(members.iter().map(|(ns, _, _)| ns.clone()))
        .collect();
    for i in 1..=nodes {
        for ns in &everyone {
            if *ns == names.node(i) {
                continue;
            }
            ip(&[
                "-n",
                ns,
                "route",
                "add",
                &pod_cidr(i),
                "via",
                &node_ip(i).to_string(),
            ])?;
        }
    }
    Ok(())
}

/// The network namespaces of run `id` (names under /run/netns).
pub fn namespaces_of(id: &str) -> Vec<String> {
    let prefix = format!("{PREFIX}{id}-");
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    found.sort();
    found
}

/// Deletes run `id`'s namespaces (their links go with them).
pub fn delete(id: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for ns in namespaces_of(id) {
        if let Err(e) = ip(&["netns", "delete", &ns]) {
            errors.push(format!("{e:#}"));
        }
    }
    errors
}
