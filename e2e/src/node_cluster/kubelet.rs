//! One kubelet per node: its client certificate (`system:node:<name>`), its
//! config file (cgroupfs driver under a cgroup root of its own, cgroup v1
//! allowed, per-node root, log and plugin dirs), started in the node's network
//! namespace with the node's address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::network::in_netns;
use crate::kubeconfig::{self, Credentials};
use crate::pki::Pki;
use crate::process::Process;

/// What one kubelet needs to start.
pub struct Kubelet<'a> {
    pub name: &'a str,
    pub ip: Ipv4Addr,
    pub netns: &'a Path,
    /// The node's directory (the kubelet's root dir and config go in `kubelet/`).
    pub dir: &'a Path,
    pub containerd_socket: &'a Path,
    /// A cgroup name at the top of every hierarchy, e.g. `fl-<id>-node1`.
    pub cgroup_root: &'a str,
    pub server_url: &'a str,
    pub pki: &'a Pki,
}

/// The cgroup v1 hierarchies (and the v2 one, in hybrid mode) under /sys/fs/cgroup.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if found.is_empty() && Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        // Pure cgroup v2: one hierarchy at the top.
        found.push(PathBuf::from("/sys/fs/cgroup"));
    }
    found.sort();
    found
}

/// Creates `/<name>` in every hierarchy (the kubelet expects its cgroup root to
/// exist everywhere, `name=systemd` included); cpuset gets its parent's CPUs and memory nodes.
pub fn create_cgroup_root(name: &str) -> anyhow::Result<()> {
    for hierarchy in cgroup_hierarchies() {
        let dir = hierarchy.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = hierarchy.join(file);
            if parent.exists() {
                let value = std::fs::read_to_string(&parent)?;
                std::fs::write(dir.join(file), value.trim())
                    .with_context(|| format!("writing {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}

impl Kubelet<'_> {
    /// Writes the credentials and config and starts the kubelet.
    pub fn start(&self, bin: &Path) -> anyhow::Result<Process> {
        let dir = self.dir.join("kubelet");
        let root = dir.join("root");
        let logs = dir.join("pod-logs");
        let plugins = dir.join("volume-plugins");
        for d in [&root, &logs, &plugins] {
            std::fs::create_dir_all(d)?;
        }
        let (cert, key) = self.pki.client_cert(
            &dir,
            "client",
            &format!("system:node:{}", self.name),
            "system:nodes",
        )?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig::render(
                self.server_url,
                &self.pki.ca_cert,
                self.name,
                Credentials::ClientCert {
                    cert: &cert,
                    key: &key,
                },
            ),
        )?;
        let config = dir.join("config.json");
        std::fs::write(&config, self.config(&logs, &plugins).to_string())?;
        let args: Vec<String> = vec![
            format!("--config={}", config.display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-dir={}", root.display()),
            // Its self-signed serving certificate; the default is /var/lib/kubelet/pki.
            format!("--cert-dir={}", dir.join("pki").display()),
            format!("--hostname-override={}", self.name),
            format!("--node-ip={}", self.ip),
            "--v=1".to_owned(),
        ];
        super::spawn(
            &format!("kubelet-{}", self.name),
            in_netns(self.netns, bin),
            &args,
            self.dir.join("kubelet.log"),
        )
    }

    fn config(&self, logs: &Path, plugins: &Path) -> serde_json::Value {
        json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            // This machine has cgroup v1 (hybrid); the kubelet refuses it by default.
            "failCgroupV1": false,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": format!("/{}", self.cgroup_root),
            "containerRuntimeEndpoint": format!("unix://{}", self.containerd_socket.display()),
            "address": self.ip.to_string(),
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": { "enabled": false },
                "webhook": { "enabled": true },
                // The API server calls (logs, exec) with its client certificate.
                "x509": { "clientCAFile": self.pki.ca_cert },
            },
            "authorization": { "mode": "Webhook" },
            "podLogsDir": logs,
            "volumePluginDir": plugins,
            "failSwapOn": false,
            "hairpinMode": "none",
            // Other builds share this disk: evict nothing for its use, collect no images.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "serializeImagePulls": false,
        })
    }
}
