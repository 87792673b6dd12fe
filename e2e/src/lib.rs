//! End-to-end test harness: a real etcd and kube-apiserver (built from Go modules
//! in `e2e/go/` by `scripts/build-e2e-bins.sh`) on loopback with RBAC on, an admin
//! kubeconfig, the built kubectl, and Pod objects standing in for dataplane pods
//! (no kubelet runs, so the harness sets their status).
//!
//! ```no_run
//! use fairlead_e2e::Kubectl;
//! let cluster = fairlead_e2e::Cluster::shared();
//! let namespaces = cluster.kubectl_ok(["get", "ns", "-o", "name"]).unwrap();
//! assert!(namespaces.contains("namespace/default"));
//! ```
#![forbid(unsafe_code)]

mod bins;
mod deploy;
pub mod images;
mod kubeconfig;
mod kubectl;
pub mod node_cluster;
mod pki;
mod pods;
mod poll;
mod process;
mod setup;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use bins::{K8S_VERSION, bin_dir, workspace_binary};
use kubeconfig::Credentials;
pub use kubectl::Kubectl;
pub use node_cluster::NodeCluster;
pub use pods::DATAPLANE_LABEL;
pub use poll::eventually;
use process::run_bounded;
pub use process::{Process, free_port};
pub use setup::{CRD_NAMES, repo_path};

/// How long the API server may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one kubectl command may run (`kubectl wait` needs its own `--timeout` below this).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// A running etcd + kube-apiserver pair in a temporary directory. Dropping it
/// kills both and removes the directory.
pub struct Cluster {
    dir: PathBuf,
    server_url: String,
    ca_pem: String,
    ca_file: PathBuf,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    crds_installed: OnceLock<Result<(), String>>,
    // Killed in this order: the API server before its etcd.
    apiserver: Process,
    etcd: Process,
}

impl Cluster {
    /// Starts etcd and kube-apiserver on free loopback ports and waits (bounded)
    /// until `/readyz` answers ok. On failure the processes' logs are in the error.
    pub fn start() -> anyhow::Result<Cluster> {
        let etcd_bin = bins::binary("etcd")?;
        let apiserver_bin = bins::binary("kube-apiserver")?;
        let kubectl = bins::binary("kubectl")?;
        let dir = temp_dir()?;
        let started = Instant::now();
        let result = Self::start_in(&dir, &etcd_bin, &apiserver_bin, kubectl);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let cluster = result?;
        eprintln!(
            "fairlead-e2e: kube-apiserver {K8S_VERSION} ready at {} in {:.1?} (logs in {})",
            cluster.server_url,
            started.elapsed(),
            cluster.dir.display()
        );
        Ok(cluster)
    }

    fn start_in(
        dir: &Path,
        etcd_bin: &Path,
        apiserver_bin: &Path,
        kubectl: PathBuf,
    ) -> anyhow::Result<Cluster> {
        let pki = pki::write(dir, &[])?;
        let etcd_client = format!("http://127.0.0.1:{}", free_port()?);
        let etcd_peer = format!("http://127.0.0.1:{}", free_port()?);
        let etcd_args = etcd_args(&dir.join("etcd"), &etcd_client, &etcd_peer);
        let etcd = Process::start(
            "etcd",
            etcd_bin,
            &etcd_args,
            &[],
            dir.join("etcd.log"),
            Some(dir),
        )?;

        let port = free_port()?;
        let server_url = format!("https://127.0.0.1:{port}");
        let apiserver_args = [
            format!("--etcd-servers={etcd_client}"),
            "--advertise-address=127.0.0.1".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--service-account-issuer={server_url}"),
            format!("--service-account-key-file={}", pki.sa_public_key.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_private_key.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            // No controller-manager runs to create the token Secrets this plugin expects.
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            "--allow-privileged=true".to_owned(),
            // The `kubernetes` Service's endpoints may not be loopback addresses.
            "--endpoint-reconciler-type=none".to_owned(),
        ];
        // Dropping etcd (on error) kills it.
        let log = dir.join("kube-apiserver.log");
        let apiserver = Process::start(
            "kube-apiserver",
            apiserver_bin,
            &apiserver_args,
            &[],
            log,
            Some(dir),
        )?;

        let kubeconfig = dir.join("admin.kubeconfig");
        let admin = Credentials::ClientCert {
            cert: &pki.admin_cert,
            key: &pki.admin_key,
        };
        std::fs::write(
            &kubeconfig,
            kubeconfig::render(&server_url, &pki.ca_cert, "admin", admin),
        )?;

        let mut cluster = Cluster {
            dir: dir.to_owned(),
            server_url,
            ca_pem: pki.ca_pem,
            ca_file: pki.ca_cert,
            kubeconfig,
            kubectl,
            crds_installed: OnceLock::new(),
            apiserver,
            etcd,
        };
        if let Err(e) = cluster.wait_ready() {
            let logs = cluster.logs();
            cluster.kill();
            bail!("{e:#}\n{logs}");
        }
        Ok(cluster)
    }

    /// A cluster shared by every test of this test binary, started on first use.
    /// Its processes end with the test process (see the watchdog in `process`).
    /// Panics when it cannot start, with the reason and the servers' logs.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| match Cluster::start() {
            Ok(c) => c,
            Err(e) => panic!("the e2e cluster did not start: {e:#}"),
        })
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            for server in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = server.exited() {
                    bail!(
                        "{} exited ({status}) before the API server was ready",
                        server.name()
                    );
                }
            }
            let out = self.kubectl(["get", "--raw=/readyz", "--request-timeout=5s"])?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("kube-apiserver was not ready within {START_TIMEOUT:?}; last /readyz answer: {last}")
    }

    /// The tail of both servers' logs, for error messages.
    pub fn logs(&self) -> String {
        self.etcd.log_tail(40) + &self.apiserver.log_tail(40)
    }

    /// Starts `program args...` with extra `env` as a [`Process`] whose log is
    /// `<name>.log` in the cluster's directory; it ends when dropped, or with the test process.
    pub fn spawn<I, S>(
        &self,
        name: &str,
        program: &Path,
        args: I,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let log = self.dir.join(format!(
            "{name}-{}.log",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Process::start(name, program, args, env, log, None)
    }

    /// A directory for a test's files (state dirs, credentials), inside the cluster's and removed with it.
    pub fn scratch_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = self
            .dir
            .join(format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    fn kill(&mut self) {
        self.apiserver.kill();
        self.etcd.kill();
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The CA that signed the API server's certificate and the client certificates (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes a kubeconfig that authenticates with `token` (e.g. from
    /// `kubectl create token <serviceaccount> -n <namespace>`) and returns its path.
    pub fn kubeconfig_for_token(&self, token: &str) -> anyhow::Result<PathBuf> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = self.dir.join(format!(
            "token-{}.kubeconfig",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let text = kubeconfig::render(
            &self.server_url,
            &self.ca_file,
            "token",
            Credentials::Token(token.trim()),
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Runs the built kubectl with another kubeconfig (see [`Cluster::kubeconfig_for_token`]).
    pub fn kubectl_as<I, S>(
        &self,
        kubeconfig: &Path,
        args: I,
        stdin: Option<&str>,
    ) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            // Discovery cache in the temp dir; no user preferences from ~/.kube/kuberc.
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .env("KUBERC", "off");
        run_bounded(cmd, stdin.map(str::as_bytes), KUBECTL_TIMEOUT)
    }
}

impl Kubectl for Cluster {
    fn kubectl_with<I, S>(&self, args: I, stdin: Option<&str>) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_as(&self.kubeconfig, args, stdin)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The arguments of a one-member etcd keeping its data in `data_dir`, serving
/// clients on URL `client` and its peer on `peer`.
fn etcd_args(data_dir: &Path, client: &str, peer: &str) -> [String; 7] {
    [
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
        // Test data: durability is not worth the fsync latency.
        "--unsafe-no-fsync=true".to_owned(),
    ]
}

/// A new directory under the system temp dir, unique to this process and call.
fn temp_dir() -> anyhow::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "fairlead-e2e-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
