//! The `fairlead-operator` process: flags, leader election, the controller,
//! the metrics endpoint, and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fairlead_dataplane::diagnostics::LogFormat;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;

use crate::controller::{self, Settings};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::metrics::{self, Metrics, Readiness};
use crate::{Error, Result};

/// fairlead-operator: reconciles Frontend, Backend and VirtualIP resources into
/// one config and pushes it to every ready dataplane's admin API; writes
/// status conditions and Events. Logs go to stderr (RUST_LOG, default info).
#[derive(Debug, Parser)]
#[command(name = "fairlead-operator", version)]
pub struct OperatorArgs {
    /// kubeconfig file; default: in-cluster, else $KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "FAIRLEAD_OPERATOR_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the dataplane Pods, the credentials Secret and the Lease.
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_NAMESPACE",
        default_value = "fairlead-system"
    )]
    pub namespace: String,
    /// Watch Frontends, Backends, VirtualIPs and what they reference in this
    /// namespace only; default: all namespaces.
    #[arg(long, env = "FAIRLEAD_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// The ServiceAccount (in --namespace) that owns what the operator
    /// creates (its two credentials Secrets and the Lease), so that deleting
    /// the installation (`helm uninstall`, `kubectl delete -k`) removes them
    /// too; the Deployment sets its own. Default: they are not owned.
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_OWNER_SERVICE_ACCOUNT",
        value_name = "NAME"
    )]
    pub owner_service_account: Option<String>,
    /// Elect a leader with a Lease so several replicas are safe; with
    /// `false`, this replica acts at once (run only one).
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub leader_election: bool,
    /// Name of the Lease (in --namespace).
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_LEASE_NAME",
        default_value = "fairlead-operator"
    )]
    pub lease_name: String,
    /// Seconds a leader's Lease stays valid without renewal; a standby takes
    /// over this long after a leader died (at once after a graceful stop).
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_LEASE_DURATION",
        default_value_t = 15,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(3..=300)
    )]
    pub lease_duration: u64,
    /// This replica's name in the Lease and on Events; default: the host
    /// name and a random suffix.
    #[arg(long, env = "FAIRLEAD_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Plain-HTTP address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_METRICS_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_address: SocketAddr,
    /// Least milliseconds between two rounds (render and push): a change
    /// after a quiet spell renders at once, a burst makes one round per window.
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_DEBOUNCE_MS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(0..=10_000)
    )]
    pub debounce_ms: u64,
    /// Seconds between reads of each dataplane's status (server health,
    /// VRRP state, running version).
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_STATUS_INTERVAL",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub status_interval: u64,
    /// Serve Services of type LoadBalancer with this `spec.loadBalancerClass`.
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_LOAD_BALANCER_CLASS",
        default_value = crate::load_balancer::DEFAULT_CLASS
    )]
    pub load_balancer_class: String,
    /// Also serve Services of type LoadBalancer that name no class (for
    /// clusters where fairlead is the only load balancer implementation).
    #[arg(
        long,
        env = "FAIRLEAD_OPERATOR_SERVE_UNCLASSED_SERVICES",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub serve_unclassed_services: bool,
    /// Log lines as text or JSON (one object per line); RUST_LOG sets the level.
    #[arg(long, env = "FAIRLEAD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

impl OperatorArgs {
    /// The identity: the flag, else `<hostname>-<random>`.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "fairlead-operator".into());
            format!("{host}-{:08x}", random_u32())
        })
    }
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = (rustls::crypto::ring::default_provider().secure_random).fill(&mut bytes);
    u32::from_be_bytes(bytes)
}

/// Runs the operator until SIGTERM or SIGINT (then returns `Ok`), or until
/// it loses the leader Lease (then returns the error, and the process should
/// exit so that it restarts as a standby).
pub async fn run(client: Client, args: OperatorArgs) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let server = metrics::serve(args.metrics_address, metrics.clone(), readiness.clone()).await?;
    let server = tokio::spawn(server);
    let identity = args.identity();
    let owner = match &args.owner_service_account {
        Some(name) => Some(owner_reference(client.clone(), &args.namespace, name).await?),
        None => None,
    };
    let settings = Settings {
        owner: owner.clone(),
        namespace: args.namespace.clone(),
        watch_namespace: args.watch_namespace.clone(),
        debounce: Duration::from_millis(args.debounce_ms),
        poll_interval: Duration::from_secs(args.status_interval),
        identity: identity.clone(),
        load_balancer_class: args.load_balancer_class.clone(),
        serve_unclassed_services: args.serve_unclassed_services,
    };
    let mut shutdown = std::pin::pin!(shutdown_signal()?);
    let result = if args.leader_election {
        let mut elector = LeaderElector::new(
            client.clone(),
            LeaseSettings {
                namespace: args.namespace.clone(),
                name: args.lease_name.clone(),
                identity,
                owner,
                duration: Duration::from_secs(args.lease_duration),
                renew_interval: Duration::from_secs(2)
                    .min(Duration::from_secs(args.lease_duration) / 3),
            },
        );
        let acquired = tokio::select! {
            () = elector.acquire(|| readiness.set(true)) => true,
            () = &mut shutdown => false,
        };
        if acquired {
            metrics.set_leader(true);
            readiness.set(false);
            let controller = controller::run(
                client,
                settings,
                metrics.clone(),
                readiness.clone(),
                &mut shutdown,
            );
            let result = tokio::select! {
                result = controller => result,
                lost = elector.hold() => Err(lost),
            };
            metrics.set_leader(false);
            if !matches!(result, Err(Error::LeadershipLost { .. }))
                && let Err(e) = elector.release().await
            {
                tracing::warn!(error = %e, "the Lease was not released; a standby takes over when it expires");
            }
            result
        } else {
            Ok(())
        }
    } else {
        controller::run(
            client,
            settings,
            metrics.clone(),
            readiness.clone(),
            &mut shutdown,
        )
        .await
    };
    server.abort();
    tracing::info!("stopped");
    result
}

/// A reference to ServiceAccount `namespace/name` as the owner of what the
/// operator creates (the garbage collector deletes them with it).
async fn owner_reference(client: Client, namespace: &str, name: &str) -> Result<OwnerReference> {
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, namespace);
    let account = api.get(name).await.map_err(|source| Error::Kube {
        what: format!("--owner-service-account: get ServiceAccount {namespace}/{name}"),
        source,
    })?;
    Ok(OwnerReference {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: name.into(),
        uid: account.metadata.uid.unwrap_or_default(),
        ..Default::default()
    })
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    let mut term = signal(SignalKind::terminate()).map_err(io("handling SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("handling SIGINT"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}
