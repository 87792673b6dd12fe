//! Where the e2e binaries (etcd, kube-apiserver, kubectl) are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::run_bounded;
use crate::setup::repo_path;

/// The Kubernetes release the binaries come from; `e2e/go/kube-apiserver/go.mod`
/// pins the same one (a unit test checks), and `scripts/build-e2e-bins.sh` reads it there.
pub const K8S_VERSION: &str = "v1.37.2";

/// The directory holding the binaries: `$FAIRLEAD_E2E_BIN`, else
/// `~/.cache/fairlead-e2e/<K8S_VERSION>` (where the build script puts them).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FAIRLEAD_E2E_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set (needed to find ~/.cache/fairlead-e2e)")?;
    Ok(Path::new(&home)
        .join(".cache/fairlead-e2e")
        .join(K8S_VERSION))
}

/// The path of one binary, or an error saying how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run scripts/build-e2e-bins.sh (builds etcd, kube-apiserver and kubectl {K8S_VERSION} from e2e/go/)",
            path.display()
        );
    }
    Ok(path)
}

/// Builds binary `bin` of workspace package `package` (dev profile, as `cargo
/// test` builds; a no-op when up to date) and returns its path.
pub fn workspace_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--message-format=json",
        "-p",
        package,
        "--bin",
        bin,
    ])
    .current_dir(repo_path(""));
    let out = run_bounded(cmd, None, Duration::from_secs(1200))?;
    if !out.status.success() {
        bail!(
            "cargo build -p {package} --bin {bin} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    for line in stdout.lines() {
        let message: serde_json::Value =
            serde_json::from_str(line).context("reading cargo's JSON messages")?;
        if message["target"]["name"] == bin
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo build -p {package} --bin {bin} reported no executable")
}

#[cfg(test)]
mod tests {
    use super::K8S_VERSION;

    #[test]
    fn version_matches_the_go_module() {
        let go_mod = include_str!("../go/kube-apiserver/go.mod");
        let wanted = format!("k8s.io/kubernetes {K8S_VERSION}");
        assert!(
            go_mod
                .lines()
                .any(|l| l.trim().trim_start_matches("require ") == wanted),
            "e2e/go/kube-apiserver/go.mod does not require {wanted}"
        );
    }
}
