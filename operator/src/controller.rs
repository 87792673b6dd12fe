//! The controller: watches every input of [`render`](crate::render) and the
//! dataplane Pods, and runs one global round — render, version, push, status —
//! whenever any of them changes.
//!
//! Rounds are coalesced: a change marks the state dirty and the loop runs one
//! round for everything that changed, at once when the last round started
//! more than the debounce window ago, else when that window ends (a burst of
//! changes makes at most one round per window); only one round runs at a time. Pushes are asynchronous (one task per
//! dataplane, see [`fleet`](crate::fleet)); their progress marks the status
//! dirty. Statuses are written by one task at a time beside the rounds (so
//! they never delay a push), and only where they differ from what is stored.

mod services;
mod status;
mod sync;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fairlead_crds::{AddressPool, Backend, Frontend, VirtualIP};
use fairlead_dataplane::config::DataplaneConfig;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::credentials::{self, CLIENT_SECRET, CREDENTIALS_SECRET};
use crate::fleet::{DATAPLANE_LABEL, Desired, Fleet, FleetSettings, Target};
use crate::load_balancer::{LoadBalancing, OWN_VRIDS_FOR, foreign_vrids};
use crate::metrics::{Metrics, Readiness};
use crate::render::{DataplaneNode, Snapshot, render};
use crate::{Error, Result};

pub use status::Programming;
pub use sync::Objects;

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the dataplane Pods and the credentials Secret.
    pub namespace: String,
    /// Namespace whose resources are watched; all when `None`.
    pub watch_namespace: Option<String>,
    /// Least time between the starts of two rounds; changes within it join the next.
    pub debounce: Duration,
    /// How often each dataplane's status is read.
    pub poll_interval: Duration,
    /// Name of this replica, reported on Events.
    pub identity: String,
    /// Owner of the credentials Secrets the operator creates, if any.
    pub owner: Option<OwnerReference>,
    /// The `spec.loadBalancerClass` of the Services served.
    pub load_balancer_class: String,
    /// Also serve Services of type LoadBalancer with no class.
    pub serve_unclassed_services: bool,
}

/// Longest time statuses wait for the dataplanes to answer a new version.
const STATUS_HOLD: Duration = Duration::from_secs(2);

/// Dirty flags and the bell that rings when one is set.
#[derive(Default)]
struct Signals {
    render: AtomicBool,
    bell: Notify,
}

impl Signals {
    fn render(&self) {
        self.render.store(true, Ordering::Release);
        self.bell.notify_one();
    }
}

/// The caches of every watched kind.
struct Stores {
    frontends: Store<Frontend>,
    backends: Store<Backend>,
    virtual_ips: Store<VirtualIP>,
    address_pools: Store<AddressPool>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    credentials: Store<Secret>,
    client_credentials: Store<Secret>,
}

/// Versions configs: the same content keeps its version unless a dataplane
/// runs a greater one (pushed by another replica); new content gets a version
/// greater than any seen.
#[derive(Debug, Default)]
pub struct Versioner {
    content: Option<DataplaneConfig>,
    version: u64,
}

impl Versioner {
    /// The versioned config when `config` (version 0) or `max_seen` calls for a
    /// new version, else `None`.
    pub fn next(&mut self, config: DataplaneConfig, max_seen: u64) -> Option<DataplaneConfig> {
        if self.content.as_ref() == Some(&config) && self.version >= max_seen {
            return None;
        }
        self.version = self.version.max(max_seen) + 1;
        let versioned = DataplaneConfig {
            version: self.version,
            ..config.clone()
        };
        self.content = Some(config);
        Some(versioned)
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Runs the controller until `stop` completes. Call only as leader.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    credentials::ensure(client.clone(), &settings.namespace, settings.owner.as_ref()).await?;
    let signals = Arc::new(Signals::default());
    let mut tasks = Vec::new();
    let watch = |stream_kind: &'static str| (signals.clone(), metrics.clone(), stream_kind);
    let scope = settings.watch_namespace.as_deref();
    let (frontends, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default(),
        watch("Frontend"),
    );
    tasks.push(t);
    let (backends, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default(),
        watch("Backend"),
    );
    tasks.push(t);
    let (virtual_ips, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default(),
        watch("VirtualIP"),
    );
    tasks.push(t);
    let (address_pools, t) = watch_kind(
        Api::all(client.clone()),
        watcher::Config::default(),
        watch("AddressPool"),
    );
    tasks.push(t);
    let (services, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default(),
        watch("Service"),
    );
    tasks.push(t);
    let (endpoint_slices, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default(),
        watch("EndpointSlice"),
    );
    tasks.push(t);
    let (secrets, t) = watch_kind(
        scoped(&client, scope),
        watcher::Config::default().fields(SECRET_FIELDS),
        watch("Secret"),
    );
    tasks.push(t);
    let own = Some(settings.namespace.as_str());
    let (pods, t) = watch_kind(
        scoped(&client, own),
        watcher::Config::default().labels(DATAPLANE_LABEL),
        watch("Pod"),
    );
    tasks.push(t);
    let nodes_api: Api<Node> = Api::all(client.clone());
    let (nodes, t) = watch_kind(nodes_api, watcher::Config::default(), watch("Node"));
    tasks.push(t);
    let by_name = format!("metadata.name={CREDENTIALS_SECRET}");
    let (credentials, t) = watch_kind(
        scoped(&client, own),
        watcher::Config::default().fields(&by_name),
        watch("Secret"),
    );
    tasks.push(t);
    let by_name = format!("metadata.name={CLIENT_SECRET}");
    let (client_credentials, t) = watch_kind(
        scoped(&client, own),
        watcher::Config::default().fields(&by_name),
        watch("Secret"),
    );
    tasks.push(t);
    let stores = Stores {
        frontends,
        backends,
        virtual_ips,
        address_pools,
        services,
        endpoint_slices,
        secrets,
        pods,
        nodes,
        credentials,
        client_credentials,
    };
    let result = tokio::select! {
        result = rounds(client, &settings, &stores, &signals, metrics, readiness) => result,
        () = stop => Ok(()),
    };
    for task in tasks {
        task.abort();
    }
    result
}

/// `Api` of all namespaces, or of one.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Secrets watched: not those of types that are never a Frontend's
/// certificate or a Backend's CA and can be many and large (a Helm release
/// per revision), so the operator does not cache them.
const SECRET_FIELDS: &str = "type!=helm.sh/release.v1,\
type!=kubernetes.io/service-account-token,\
type!=kubernetes.io/dockercfg,\
type!=kubernetes.io/dockerconfigjson,\
type!=bootstrap.kubernetes.io/token";

/// A cache of `K` and the task that fills it, ringing the bell on every change.
fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    (signals, metrics, kind): (Arc<Signals>, Arc<Metrics>, &'static str),
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => signals.render(),
                Err(e) => {
                    metrics.error("watch");
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                }
            }
        }
    });
    (store, task)
}

/// The loop of rounds; runs until an unrecoverable error.
async fn rounds(
    client: Client,
    settings: &Settings,
    stores: &Stores,
    signals: &Signals,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> Result<()> {
    wait_synced(stores).await?;
    let fleet_settings = FleetSettings {
        poll_interval: settings.poll_interval,
    };
    let mut fleet = Fleet::new(metrics.clone(), fleet_settings);
    let mut versioner = Versioner::default();
    let reporter = Reporter {
        controller: "fairlead-operator".into(),
        instance: Some(settings.identity.clone()),
    };
    // The status syncer runs in its own task, so that writing many statuses
    // never delays the next render; it is here when idle.
    let mut syncer = Some(sync::StatusSync::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
    ));
    let mut service_syncer = Some(services::ServiceStatusSync::new(
        client.clone(),
        Recorder::new(
            client.clone(),
            Reporter {
                controller: "fairlead-operator".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        metrics.clone(),
    ));
    let mut lb = LoadBalancing {
        class: settings.load_balancer_class.clone(),
        unclassed: settings.serve_unclassed_services,
        ..LoadBalancing::default()
    };
    // Virtual router IDs in our configs, and when last.
    let mut own_vrids: std::collections::BTreeMap<u8, Instant> = Default::default();
    type Synced = (sync::StatusSync, services::ServiceStatusSync, Vec<Error>);
    let mut syncing: Option<AbortOnDrop<Synced>> = None;
    let mut credentials_version: Option<(Option<String>, Option<String>)> = None;
    let mut rendered = None;
    let mut retry_status: Option<Instant> = None;
    let mut status_backoff = Duration::from_millis(500);
    let mut published = Instant::now();
    let mut status_dirty = false;
    let mut last_round: Option<Instant> = None;
    signals.render();
    loop {
        let retry = async {
            match retry_status {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signals.bell.notified() => {}
            () = fleet.changed().notified() => {}
            () = retry => {}
            done = async { (&mut syncing.as_mut().expect("guarded").0).await }, if syncing.is_some() => {
                syncing = None;
                let Ok((idle, idle_services, failures)) = done else {
                    return Err(Error::Io {
                        what: "writing statuses".into(),
                        source: std::io::Error::other("the status task failed"),
                    });
                };
                syncer = Some(idle);
                service_syncer = Some(idle_services);
                if failures.is_empty() {
                    status_backoff = Duration::from_millis(500);
                } else {
                    for e in &failures {
                        metrics.error("status");
                        tracing::warn!(error = %e, retry_in = ?status_backoff, "status not written");
                    }
                    retry_status = Some(Instant::now() + status_backoff);
                    status_backoff = (status_backoff * 2).min(Duration::from_secs(30));
                }
                if !status_dirty {
                    continue;
                }
            }
        }
        if let Some(last) = last_round {
            tokio::time::sleep_until((last + settings.debounce).into()).await;
        }
        let started = Instant::now();
        last_round = Some(started);
        let dataplane = stores.credentials.state().into_iter().next();
        let operator = stores.client_credentials.state().into_iter().next();
        let version = |s: &Option<Arc<Secret>>| s.as_ref()?.metadata.resource_version.clone();
        let seen = (version(&dataplane), version(&operator));
        let mut create_failed = false;
        if credentials_version.as_ref() != Some(&seen) {
            let both = dataplane.as_deref().zip(operator.as_deref());
            let client = match both.map(|(d, o)| credentials::admin_client(d, o)) {
                Some(Ok(client)) => Some(client),
                Some(Err(e)) => {
                    metrics.error("credentials");
                    tracing::error!(error = %e, "cannot push to dataplanes");
                    None
                }
                None => {
                    // Deleted: made anew (dataplanes reload the mounted files).
                    tracing::warn!(
                        secrets = %format!("{CREDENTIALS_SECRET}, {CLIENT_SECRET}"),
                        "a credentials Secret is missing; creating both"
                    );
                    if let Err(e) = credentials::ensure(
                        client.clone(),
                        &settings.namespace,
                        settings.owner.as_ref(),
                    )
                    .await
                    {
                        metrics.error("credentials");
                        tracing::error!(error = %e, "cannot create the credentials; retrying");
                        retry_status = Some(Instant::now() + Duration::from_secs(1));
                        create_failed = true;
                    }
                    None
                }
            };
            fleet.set_client(client);
            // After a failed creation, the next round tries again.
            credentials_version = (!create_failed).then_some(seen);
        }
        // IDs other routers use: heard by the dataplanes, not configured by us lately.
        let now = Instant::now();
        own_vrids.retain(|_, at| now.duration_since(*at) <= OWN_VRIDS_FOR);
        let heard = (fleet.reports().iter())
            .filter_map(|r| r.status.clone())
            .flat_map(|s| s.virtual_ips.into_iter().flat_map(|v| v.heard_vrids))
            .collect::<Vec<u8>>();
        // Ours: in our recent configs, or run by a dataplane (a config
        // of ours, maybe from the replica before).
        let mut own: std::collections::BTreeSet<u8> = own_vrids.keys().copied().collect();
        own.extend(running_vrids(&fleet.reports()).into_values());
        let foreign = foreign_vrids(heard, &own);
        // A router heard anew (or gone) changes which IDs are free.
        let foreign_changed = foreign != lb.foreign_vrids;
        lb.foreign_vrids = foreign;
        if signals.render.swap(false, Ordering::AcqRel) || rendered.is_none() || foreign_changed {
            // What the dataplanes run, unless the last round gave another ID.
            lb.running_vrids = running_vrids(&fleet.reports());
            if let Some(last) = rendered.as_ref() {
                lb.running_vrids.extend(last_vrids(last));
            }
            let snapshot = snapshot(stores, &lb);
            let result = render(&snapshot);
            for v in &result.config.virtual_ips {
                own_vrids.insert(v.vrid, Instant::now());
            }
            let served = &result.load_balancers;
            lb.previous = (served.services.iter())
                .filter_map(|(key, o)| Some((key.clone(), o.allocated.as_ref()?.address)))
                .collect();
            metrics.set_pools(&served.pools);
            metrics.set_services_served(
                served
                    .services
                    .values()
                    .filter(|o| o.address.is_some())
                    .count(),
            );
            for e in &result.errors {
                tracing::debug!(error = %e, "left out of the config");
            }
            if let Some(config) = versioner.next(result.config.clone(), fleet.max_seen_version()) {
                publish(&fleet, &config);
                published = Instant::now();
            }
            let targets = (stores.pods.state().iter())
                .filter_map(|p| Target::from_pod(p))
                .collect();
            fleet.set_targets(targets);
            rendered = Some(result);
        } else if let Some(config) = (rendered.as_ref())
            .and_then(|r| versioner.next(r.config.clone(), fleet.max_seen_version()))
        {
            // A dataplane runs a newer version (another replica's): outbid it.
            publish(&fleet, &config);
            published = Instant::now();
        }
        let Some(result) = rendered.as_ref() else {
            continue;
        };
        let reports = fleet.reports();
        let programming = Programming::of(versioner.version(), &reports);
        // While a new version is on its way, statuses would only say
        // "Pending" for a moment: hold them (bounded) and write the outcome.
        let hold_until = published + STATUS_HOLD;
        if programming.in_flight > 0 && Instant::now() < hold_until {
            retry_status = Some(retry_status.map_or(hold_until, |at| at.min(hold_until)));
            metrics.observe_reconcile(started.elapsed());
            continue;
        }
        let objects = Objects {
            frontends: stores.frontends.state(),
            backends: stores.backends.state(),
            virtual_ips: stores.virtual_ips.state(),
        };
        let pods = stores.pods.state();
        let services = stores.services.state();
        // Both syncers are idle together (one task runs both), or neither.
        let idle = match syncer.is_some() && service_syncer.is_some() {
            true => syncer.take().zip(service_syncer.take()),
            false => None,
        };
        match idle {
            Some((mut idle, mut idle_services)) => {
                status_dirty = false;
                if !create_failed {
                    retry_status = None;
                }
                let errors = result.errors.clone();
                let outcomes = result.load_balancers.services.clone();
                let lb = lb.clone();
                syncing = Some(AbortOnDrop(tokio::spawn(async move {
                    let mut failures = idle
                        .sync(&objects, &errors, &programming, &reports, &pods)
                        .await;
                    failures.extend(
                        idle_services
                            .sync(&services, &outcomes, &lb, &reports)
                            .await,
                    );
                    (idle, idle_services, failures)
                })));
            }
            // Busy: sync again when it is done.
            None => status_dirty = true,
        }
        metrics.observe_reconcile(started.elapsed());
        readiness.set(true);
    }
}

/// A task aborted when its handle is dropped (the controller stopping).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands `config` to every dataplane's push task.
fn publish(fleet: &Fleet, config: &DataplaneConfig) {
    let body = serde_json::to_vec(config).expect("a config serializes");
    tracing::info!(version = config.version, "new config version");
    fleet.set_desired(Arc::new(Desired {
        version: config.version,
        body: body.into(),
    }));
}

/// Waits until every cache has listed once.
async fn wait_synced(stores: &Stores) -> Result<()> {
    let dropped = |kind| move |_| Error::WatchStopped { kind };
    (stores.frontends.wait_until_ready().await).map_err(dropped("Frontend"))?;
    (stores.backends.wait_until_ready().await).map_err(dropped("Backend"))?;
    (stores.virtual_ips.wait_until_ready().await).map_err(dropped("VirtualIP"))?;
    (stores.address_pools.wait_until_ready().await).map_err(dropped("AddressPool"))?;
    (stores.services.wait_until_ready().await).map_err(dropped("Service"))?;
    (stores.endpoint_slices.wait_until_ready().await).map_err(dropped("EndpointSlice"))?;
    (stores.secrets.wait_until_ready().await).map_err(dropped("Secret"))?;
    (stores.pods.wait_until_ready().await).map_err(dropped("Pod"))?;
    (stores.nodes.wait_until_ready().await).map_err(dropped("Node"))?;
    (stores.credentials.wait_until_ready().await).map_err(dropped("Secret"))?;
    (stores.client_credentials.wait_until_ready().await).map_err(dropped("Secret"))?;
    Ok(())
}

/// The virtual router ID each virtual IP runs with, by the dataplanes' reports.
fn running_vrids(reports: &[crate::fleet::Report]) -> std::collections::BTreeMap<String, u8> {
    (reports.iter())
        .filter_map(|r| r.status.as_ref())
        .flat_map(|s| s.virtual_ips.iter())
        .filter_map(|v| Some((v.name.clone(), v.vrid?)))
        .collect()
}

/// The virtual router IDs a render gave the Services' virtual IPs.
fn last_vrids(rendered: &crate::render::Rendered) -> impl Iterator<Item = (String, u8)> + '_ {
    (rendered.load_balancers.services.values())
        .filter_map(|o| Some((o.virtual_ip.clone(), o.vrid?)))
}

/// Render's input, from the caches.
fn snapshot(stores: &Stores, load_balancing: &LoadBalancing) -> Snapshot {
    fn owned<K>(store: &Store<K>) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        store.state().iter().map(|k| (**k).clone()).collect()
    }
    // Snapshot grows fields (dataplane nodes for VRRP); they default.
    #[allow(clippy::needless_update)]
    Snapshot {
        frontends: owned(&stores.frontends),
        backends: owned(&stores.backends),
        virtual_ips: owned(&stores.virtual_ips),
        services: owned(&stores.services),
        endpoint_slices: owned(&stores.endpoint_slices),
        secrets: owned(&stores.secrets),
        nodes: Some(dataplane_nodes(&stores.pods.state(), &stores.nodes)),
        address_pools: owned(&stores.address_pools),
        load_balancing: load_balancing.clone(),
    }
}

/// The nodes that run a dataplane Pod: name, addresses (host network: the
/// Pod's IPs, then the Node's InternalIPs; both families on dual-stack
/// clusters) and the Node's labels; sorted.
fn dataplane_nodes(pods: &[Arc<Pod>], nodes: &Store<Node>) -> Vec<DataplaneNode> {
    let mut out: Vec<DataplaneNode> = Vec::new();
    for pod in pods {
        let Some(name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if out.iter().any(|n| n.name == name) {
            continue;
        }
        let node = nodes.get(&reflector::ObjectRef::new(&name));
        let internal_ips = (node.as_ref())
            .and_then(|n| n.status.as_ref()?.addresses.clone())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .map(|a| a.address);
        let status = pod.status.as_ref();
        let pod_ips = (status.and_then(|s| s.pod_ips.clone()).into_iter().flatten())
            .map(|p| p.ip)
            .chain(status.and_then(|s| s.pod_ip.clone()));
        let mut addresses: Vec<std::net::IpAddr> = Vec::new();
        for address in pod_ips.chain(internal_ips).filter_map(|a| a.parse().ok()) {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        out.push(DataplaneNode {
            addresses,
            labels: (node.as_ref())
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default(),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests;
