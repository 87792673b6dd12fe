//! The plain manifests of `deploy/` in a test cluster, and what an operator and
//! dataplanes started by a test need from them: the operator's kubeconfig, the
//! dataplane credentials.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Cluster, Kubectl, repo_path};

/// The Secret the operator makes for the dataplanes' admin API, and its keys.
const CREDENTIALS_SECRET: &str = "fairlead-dataplane-tls";
const CREDENTIALS_KEYS: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

impl Cluster {
    /// `kubectl apply -k deploy/`, then waits (up to 60 s) until every CRD is Established.
    pub fn apply_deploy(&self) -> anyhow::Result<()> {
        let deploy = repo_path("deploy");
        (self.kubectl_ok(["apply", "-k", &deploy.to_string_lossy()]))
            .context("kubectl apply -k deploy/")?;
        let wait = [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ];
        self.kubectl_ok(wait)?;
        Ok(())
    }

    /// A kubeconfig with a token (valid 2 h) of the `fairlead-operator`
    /// ServiceAccount in `namespace`: the operator authenticates as itself, not as admin.
    pub fn operator_kubeconfig(&self, namespace: &str) -> anyhow::Result<PathBuf> {
        let token = [
            "create",
            "token",
            "fairlead-operator",
            "-n",
            namespace,
            "--duration=2h",
        ];
        let token = (self.kubectl_ok(token)).context("a token of the operator's ServiceAccount")?;
        self.kubeconfig_for_token(&token)
    }

    /// Waits (up to 30 s) until the operator made the dataplane credentials
    /// Secret in `namespace`, and writes its keys to files in `dir`.
    pub fn write_dataplane_credentials(&self, namespace: &str, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        for key in CREDENTIALS_KEYS {
            let template = format!("--template={{{{index .data \"{key}\" | base64decode}}}}");
            let get = ["get", "secret", CREDENTIALS_SECRET, "-n", namespace];
            let value = loop {
                let args = get.into_iter().chain(["-o", "go-template", &template]);
                let last = match self.kubectl_ok(args) {
                    Ok(value) if !value.is_empty() => break value,
                    Ok(_) => "empty".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                if Instant::now() >= deadline {
                    bail!("{namespace}/{CREDENTIALS_SECRET}: no {key} within 30 s ({last})");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let path = dir.join(key);
            std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Deletes Pod `namespace/name` at once (`--grace-period=0 --force`).
    pub fn delete_pod_now(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let delete = [
            "delete",
            "pod",
            name,
            "-n",
            namespace,
            "--grace-period=0",
            "--force",
        ];
        self.kubectl_ok(delete).map(drop)
    }
}
