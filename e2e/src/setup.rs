//! Setting up what tests share: the CRDs from `deploy/`, fresh namespaces.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;

use crate::Cluster;
use crate::Kubectl;

/// The fairlead CRDs, as generated into `deploy/`.
pub const CRD_NAMES: [&str; 4] = [
    "frontends.fairlead.io",
    "backends.fairlead.io",
    "virtualips.fairlead.io",
    "addresspools.fairlead.io",
];

/// A path in the repository, from its root (e.g. `deploy/crds/fairlead.io_crds.yaml`).
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

impl Cluster {
    /// Applies `deploy/crds/fairlead.io_crds.yaml` and waits (up to 60 s) until
    /// each CRD is Established. Done once per cluster; later calls return the first result.
    pub fn install_crds(&self) -> anyhow::Result<()> {
        self.crds_installed
            .get_or_init(|| self.apply_crds().map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(anyhow::Error::msg)
    }

    fn apply_crds(&self) -> anyhow::Result<()> {
        let file = repo_path("deploy/crds/fairlead.io_crds.yaml");
        self.kubectl_ok(["apply", "--server-side", "-f", &file.to_string_lossy()])
            .context("installing the CRDs")?;
        let crds: Vec<String> = CRD_NAMES.iter().map(|n| format!("crd/{n}")).collect();
        self.kubectl_ok(
            ["wait", "--for=condition=Established", "--timeout=60s"]
                .into_iter()
                .chain(crds.iter().map(String::as_str)),
        )
        .context("waiting for the CRDs to be Established")?;
        Ok(())
    }

    /// Creates a namespace named `<prefix>-<n>`, unique within this cluster, and returns its name.
    pub fn fresh_namespace(&self, prefix: &str) -> anyhow::Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.kubectl_ok(["create", "namespace", &name])?;
        Ok(name)
    }
}
