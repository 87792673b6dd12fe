//! The node cluster's control plane in its own network namespace: etcd on
//! that namespace's loopback; kube-apiserver on 0.0.0.0:6443 advertising the
//! bridge address (so the `kubernetes` Service's endpoint is reachable); and
//! kube-controller-manager (ServiceAccount tokens and `kube-root-ca.crt`,
//! Deployments, DaemonSets, EndpointSlices, node lifecycle) and kube-scheduler,
//! both as cluster admin.

use std::path::{Path, PathBuf};

use super::network::{API_IP, API_PORT, KUBERNETES_SERVICE_IP, SERVICE_CIDR, in_netns};
use crate::bins;
use crate::pki::Pki;
use crate::process::Process;

/// The kube-controller-manager controllers that run.
const CONTROLLERS: [&str; 20] = [
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "daemonset-controller",
    "statefulset-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "service-cidr-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
];

/// The four processes, in the order they are stopped.
pub struct ControlPlane {
    pub processes: Vec<Process>,
}

/// `https://10.89.0.2:6443`.
pub fn server_url() -> String {
    format!("https://{API_IP}:{API_PORT}")
}

/// Names the API server's certificate must hold beyond the defaults.
pub fn serving_names() -> Vec<String> {
    vec![
        API_IP.to_string(),
        KUBERNETES_SERVICE_IP.to_string(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ]
}

/// Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler in
/// `netns`; `admin_kubeconfig` is used by the last two. Returns at once: the
/// caller waits for readiness.
pub fn start(
    dir: &Path,
    netns: &Path,
    pki: &Pki,
    admin_kubeconfig: &Path,
) -> anyhow::Result<ControlPlane> {
    let mut processes = Vec::new();
    let etcd_client = "http://127.0.0.1:2379";
    let etcd_peer = "http://127.0.0.1:2380";
    let etcd_args = crate::etcd_args(&dir.join("etcd"), etcd_client, etcd_peer);
    processes.push(start_one(dir, netns, "etcd", &etcd_args)?);

    let p = |path: &PathBuf| path.display().to_string();
    let apiserver_args = [
        format!("--etcd-servers={etcd_client}"),
        format!("--advertise-address={API_IP}"),
        "--bind-address=0.0.0.0".to_owned(),
        format!("--secure-port={API_PORT}"),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", p(&pki.serving_cert)),
        format!("--tls-private-key-file={}", p(&pki.serving_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        "--authorization-mode=Node,RBAC".to_owned(),
        "--enable-admission-plugins=NodeRestriction".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
        format!("--service-account-key-file={}", p(&pki.sa_public_key)),
        format!(
            "--service-account-signing-key-file={}",
            p(&pki.sa_private_key)
        ),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--allow-privileged=true".to_owned(),
        // `kubectl logs` and `exec` reach kubelets at the nodes' addresses, as admin.
        "--kubelet-preferred-address-types=InternalIP".to_owned(),
        format!("--kubelet-client-certificate={}", p(&pki.admin_cert)),
        format!("--kubelet-client-key={}", p(&pki.admin_key)),
    ];
    processes.push(start_one(dir, netns, "kube-apiserver", &apiserver_args)?);

    let kubeconfig = format!("--kubeconfig={}", admin_kubeconfig.display());
    let controller_manager_args = [
        kubeconfig.clone(),
        "--leader-elect=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        format!(
            "--service-account-private-key-file={}",
            p(&pki.sa_private_key)
        ),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        "--use-service-account-credentials=true".to_owned(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        // What Pods, workloads, Services and ServiceAccounts need; the rest
        // (volumes, quotas, autoscaling, certificates, ...) only slows the start.
        format!("--controllers={}", CONTROLLERS.join(",")),
        // Not the default /usr/libexec/kubernetes/..., which it would create on the host.
        format!(
            "--flex-volume-plugin-dir={}",
            dir.join("flex-volumes").display()
        ),
    ];
    processes.push(start_one(
        dir,
        netns,
        "kube-controller-manager",
        &controller_manager_args,
    )?);
    let scheduler_args = [
        kubeconfig,
        "--leader-elect=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
    ];
    processes.push(start_one(dir, netns, "kube-scheduler", &scheduler_args)?);
    // Stopped in reverse: the API server's clients before it, etcd last.
    processes.reverse();
    Ok(ControlPlane { processes })
}

fn start_one(dir: &Path, netns: &Path, name: &str, args: &[String]) -> anyhow::Result<Process> {
    let bin = bins::binary(name)?;
    super::spawn(
        name,
        in_netns(netns, bin),
        args,
        dir.join(format!("{name}.log")),
    )
}
