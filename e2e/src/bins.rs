//! Where the e2e binaries (etcd, kube-apiserver, kubectl) are.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

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
