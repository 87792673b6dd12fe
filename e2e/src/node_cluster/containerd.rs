//! One containerd per node, with its own config, root, state, socket, runc
//! root and CNI config under the node's directory, started in the node's
//! network namespace (never the system service); and the pause image.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::network::{in_netns, pod_cidr};
use crate::process::{Process, run_bounded};
use crate::setup::repo_path;

/// The sandbox image every node's containerd uses (built by [`build_pause_image`]).
pub const PAUSE_IMAGE: &str = "fairlead.local/e2e/pause:1";
/// containerd's namespace for the CRI (the one the kubelet sees).
const CRI_NAMESPACE: &str = "k8s.io";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A pause process: blocks until SIGTERM or SIGINT, reaps children.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"#;

/// Where one node's containerd keeps everything.
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    fn config(&self) -> PathBuf {
        self.dir.join("containerd.toml")
    }
}

/// Writes the CNI config (bridge `cni0` with node `i`'s pod subnet, host-local
/// addresses kept under `dir`) and containerd's config.
pub fn write_config(paths: &Paths, network_name: &str, i: usize) -> anyhow::Result<()> {
    let dir = &paths.dir;
    let cni_dir = dir.join("cni");
    std::fs::create_dir_all(&cni_dir)?;
    let cni = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": network_name,
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": pod_cidr(i) }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": dir.join("cni-ipam"),
            },
        }],
    });
    std::fs::write(cni_dir.join("10-bridge.conflist"), cni.to_string())?;
    let d = dir.display();
    let config = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{d}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: never lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces under the state dir, not in the shared /run/netns.
  netns_mounts_under_state_dir = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d}/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d}/cni"
"#
    );
    std::fs::write(paths.config(), config)?;
    Ok(())
}

/// Starts containerd in `netns` and waits (bounded) until it answers on its socket.
pub fn start(paths: &Paths, netns: &Path, name: &str) -> anyhow::Result<Process> {
    let cmd = in_netns(netns, "containerd");
    let mut process = super::spawn(
        name,
        cmd,
        ["--config".as_ref(), paths.config().as_os_str()],
        paths.dir.join("containerd.log"),
    )?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(status) = process.exited() {
            bail!("{name} exited ({status})\n{}", process.log_tail(30));
        }
        if paths.socket().exists() {
            let out = ctr(paths, &["version"])?;
            if out.status.success() {
                return Ok(process);
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{name} did not answer within {START_TIMEOUT:?}: {last}\n{}",
        process.log_tail(30)
    )
}

fn ctr(paths: &Paths, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(paths.socket())
        .args(["--namespace", CRI_NAMESPACE])
        .args(args);
    run_bounded(cmd, None, Duration::from_secs(120))
}

/// `ctr images import <archive>` into this containerd's CRI namespace.
pub fn import(paths: &Paths, archive: &Path) -> anyhow::Result<()> {
    let archive = archive
        .to_str()
        .context("image archive path is not UTF-8")?;
    let out = ctr(paths, &["images", "import", archive])?;
    if !out.status.success() {
        bail!(
            "ctr images import {archive} into {} failed ({}): {}",
            paths.socket().display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Compiles the pause program statically with `musl-gcc` and packs it with
/// `scripts/build-image.py` into `dir/pause.tar`, named [`PAUSE_IMAGE`].
pub fn build_pause_image(dir: &Path) -> anyhow::Result<PathBuf> {
    let source = dir.join("pause.c");
    let binary = dir.join("pause");
    let archive = dir.join("pause.tar");
    std::fs::write(&source, PAUSE_C)?;
    let mut cc = Command::new("musl-gcc");
    cc.args(["-static", "-Os", "-o"]).arg(&binary).arg(&source);
    checked(cc, "musl-gcc (Debian package musl-tools)")?;
    let mut pack = Command::new("python3");
    pack.arg(repo_path("scripts/build-image.py"))
        .args(["--name", PAUSE_IMAGE, "--file"])
        .arg(format!("{}:/pause", binary.display()))
        .args(["--entrypoint", "/pause", "--out"])
        .arg(&archive);
    checked(pack, "scripts/build-image.py")?;
    Ok(archive)
}

fn checked(cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = run_bounded(cmd, None, Duration::from_secs(60))
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
