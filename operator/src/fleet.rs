//! The dataplane fleet: one task per ready dataplane Pod that pushes the
//! desired config, retries failures with bounded exponential backoff, polls
//! `GET /v1/status`, and re-pushes when the dataplane runs something else
//! (it restarted, or was replaced at the same Pod).
//!
//! A config a dataplane rejects (422) is not retried until the desired config
//! changes. A dataplane running a newer version than desired (another
//! operator replica pushed it) raises [`Fleet::max_seen_version`], so the
//! controller picks a greater version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::metrics::{DATAPLANE_STATES, Metrics};
use crate::push::{AdminClient, DataplaneStatus, PushOutcome};

/// Label of the dataplane Pods.
pub const DATAPLANE_LABEL: &str = "app.kubernetes.io/name=fairlead-dataplane";
/// Name of the admin API's container port.
const ADMIN_PORT_NAME: &str = "admin";
/// Admin API port when the Pod names none.
const DEFAULT_ADMIN_PORT: u16 = 9443;
/// First retry delay after a failed push; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A config to run, with its version.
#[derive(Debug)]
pub struct Desired {
    /// The version in `body`.
    pub version: u64,
    /// The DataplaneConfig JSON.
    pub body: Bytes,
}

/// A dataplane Pod that is ready to be pushed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Pod name.
    pub pod: String,
    /// Node the Pod runs on.
    pub node: Option<String>,
    /// Admin API address.
    pub address: SocketAddr,
    /// Changes whenever the Pod restarts or is replaced (uid, IP, restarts).
    pub incarnation: String,
}

impl Target {
    /// The target of a ready Pod with an IP; `None` otherwise.
    pub fn from_pod(pod: &Pod) -> Option<Target> {
        let status = pod.status.as_ref()?;
        let ready =
            (status.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready || pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let ip: std::net::IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
        let spec = pod.spec.as_ref()?;
        let port = (spec.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(ADMIN_PORT_NAME))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(DEFAULT_ADMIN_PORT);
        let restarts: i32 = (status.container_statuses.iter().flatten())
            .map(|c| c.restart_count)
            .sum();
        Some(Target {
            pod: pod.metadata.name.clone()?,
            node: spec.node_name.clone(),
            address: (ip, port).into(),
            incarnation: format!(
                "{}/{ip}/{restarts}",
                pod.metadata.uid.as_deref().unwrap_or("")
            ),
        })
    }
}

/// Where one dataplane stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushState {
    /// Nothing pushed yet, or a push is under way.
    Pending,
    /// Runs this version.
    Applied(u64),
    /// Rejected this version with these reasons.
    Rejected(u64, Vec<String>),
    /// The last call failed; retried with backoff.
    Failed(String),
}

/// One dataplane as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The Pod.
    pub target: Target,
    /// Push state.
    pub state: PushState,
    /// The latest `GET /v1/status`.
    pub status: Option<DataplaneStatus>,
}

/// Settings of the fleet.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    /// How often each dataplane's status is read.
    pub poll_interval: Duration,
}

struct Shared {
    reports: Mutex<BTreeMap<String, Report>>,
    changed: Notify,
    max_seen: AtomicU64,
    metrics: Arc<Metrics>,
    settings: FleetSettings,
}

/// The push tasks, one per target.
pub struct Fleet {
    shared: Arc<Shared>,
    desired: watch::Sender<Option<Arc<Desired>>>,
    client: Option<AdminClient>,
    tasks: BTreeMap<String, (Target, JoinHandle<()>)>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new(metrics: Arc<Metrics>, settings: FleetSettings) -> Fleet {
        Fleet {
            shared: Arc::new(Shared {
                reports: Mutex::new(BTreeMap::new()),
                changed: Notify::new(),
                max_seen: AtomicU64::new(0),
                metrics,
                settings,
            }),
            desired: watch::channel(None).0,
            client: None,
            tasks: BTreeMap::new(),
        }
    }

    /// Signalled whenever a report changes.
    pub fn changed(&self) -> &Notify {
        &self.shared.changed
    }

    /// The greatest version any dataplane was seen running.
    pub fn max_seen_version(&self) -> u64 {
        self.shared.max_seen.load(Ordering::Relaxed)
    }

    /// Every dataplane's report, by Pod name.
    pub fn reports(&self) -> Vec<Report> {
        lock(&self.shared.reports).values().cloned().collect()
    }

    /// Sets the config every dataplane should run.
    pub fn set_desired(&self, desired: Arc<Desired>) {
        self.desired.send_replace(Some(desired));
    }

    /// Sets the credentials; tasks restart when they change.
    pub fn set_client(&mut self, client: Option<AdminClient>) {
        self.client = client;
        for (_, (_, task)) in std::mem::take(&mut self.tasks) {
            task.abort();
        }
        for pod in std::mem::take(&mut *lock(&self.shared.reports)).into_keys() {
            self.shared.metrics.forget_dataplane(&pod);
        }
        self.shared.count_states();
        self.shared.changed.notify_one();
    }

    /// Sets the dataplanes; a task starts for each new or changed target,
    /// and stops for each gone one.
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        let wanted: BTreeMap<String, Target> =
            targets.into_iter().map(|t| (t.pod.clone(), t)).collect();
        let mut changed = false;
        self.tasks.retain(|pod, (target, task)| {
            let keep = wanted.get(pod) == Some(target);
            if !keep {
                task.abort();
                lock(&self.shared.reports).remove(pod);
                self.shared.metrics.forget_dataplane(pod);
                changed = true;
            }
            keep
        });
        let Some(client) = self.client.clone() else {
            if changed {
                self.shared.count_states();
                self.shared.changed.notify_one();
            }
            return;
        };
        for (pod, target) in wanted {
            if self.tasks.contains_key(&pod) {
                continue;
            }
            let report = Report {
                target: target.clone(),
                state: PushState::Pending,
                status: None,
            };
            lock(&self.shared.reports).insert(pod.clone(), report);
            let task = tokio::spawn(run_target(
                self.shared.clone(),
                client.clone(),
                target.clone(),
                self.desired.subscribe(),
            ));
            self.tasks.insert(pod, (target, task));
            changed = true;
        }
        if changed {
            self.shared.count_states();
            self.shared.changed.notify_one();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn update(&self, pod: &str, f: impl FnOnce(&mut Report)) {
        let mut reports = lock(&self.reports);
        let Some(report) = reports.get_mut(pod) else {
            return;
        };
        let before = report.clone();
        f(report);
        if *report != before {
            let counts = state_counts(reports.values());
            drop(reports);
            self.metrics.set_dataplanes(counts);
            self.changed.notify_one();
        }
    }

    /// Publishes how many dataplanes are in each state.
    fn count_states(&self) {
        let counts = state_counts(lock(&self.reports).values());
        self.metrics.set_dataplanes(counts);
    }

    fn seen(&self, version: u64) {
        if self.max_seen.fetch_max(version, Ordering::Relaxed) < version {
            self.changed.notify_one();
        }
    }
}

/// The life of one dataplane's task; ends when aborted.
async fn run_target(
    shared: Arc<Shared>,
    client: AdminClient,
    target: Target,
    mut desired: watch::Receiver<Option<Arc<Desired>>>,
) {
    let pod = target.pod.as_str();
    let mut backoff = MIN_BACKOFF;
    // What the dataplane runs, as far as known; `None` forces a status read.
    let mut running: Option<u64> = None;
    // The version it rejected; not pushed again.
    let mut rejected: Option<u64> = None;
    let mut next_poll = Instant::now();
    loop {
        if running.is_none() || Instant::now() >= next_poll {
            match client.status(target.address).await {
                Ok(status) => {
                    shared.seen(status.version);
                    running = Some(status.version);
                    next_poll = Instant::now() + shared.settings.poll_interval;
                    shared.update(pod, |r| {
                        // What it runs is applied there, also when it came from
                        // its state directory after a restart (no push then);
                        // a rejection of a newer version still stands.
                        if !matches!(r.state, PushState::Rejected(v, _) if v > status.version) {
                            r.state = PushState::Applied(status.version);
                        }
                        r.status = Some(status);
                    });
                }
                Err(e) => {
                    tracing::debug!(pod, error = %e, "reading dataplane status");
                    // An unreachable dataplane's last report (say, Master of a
                    // VirtualIP) is no longer true.
                    shared.update(pod, |r| {
                        r.state = PushState::Failed(e.to_string());
                        r.status = None;
                    });
                    wait(&mut desired, backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let want = desired.borrow_and_update().clone();
        if let Some(want) =
            want.filter(|w| Some(w.version) != running && Some(w.version) != rejected)
        {
            if running.is_some_and(|r| r > want.version) {
                // A newer config runs there; the controller re-versions.
                wait(&mut desired, shared.settings.poll_interval).await;
                running = None;
                continue;
            }
            let started = Instant::now();
            let outcome = client.put_config(target.address, want.body.clone()).await;
            let result = match &outcome {
                Ok(PushOutcome::Applied(_)) => "applied",
                Ok(PushOutcome::Rejected(_)) => "rejected",
                Ok(PushOutcome::Stale { .. }) => "stale",
                Err(_) => "error",
            };
            let took = started.elapsed();
            shared.metrics.observe_push(result, took);
            shared.metrics.observe_dataplane_push(pod, took);
            match outcome {
                Ok(PushOutcome::Applied(version)) => {
                    backoff = MIN_BACKOFF;
                    running = Some(version);
                    shared.seen(version);
                    shared.update(pod, |r| r.state = PushState::Applied(version));
                    tracing::debug!(pod, version, "config applied");
                }
                Ok(PushOutcome::Rejected(errors)) => {
                    tracing::warn!(pod, version = want.version, ?errors, "config rejected");
                    rejected = Some(want.version);
                    shared.update(pod, |r| r.state = PushState::Rejected(want.version, errors));
                }
                Ok(PushOutcome::Stale { running: newer }) => {
                    shared.seen(newer);
                    running = Some(newer);
                }
                Err(e) => {
                    shared.metrics.error("push");
                    tracing::info!(pod, error = %e, retry_in = ?backoff, "push failed");
                    shared.update(pod, |r| r.state = PushState::Failed(e.to_string()));
                    running = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        let until_poll = next_poll.saturating_duration_since(Instant::now());
        wait(&mut desired, until_poll).await;
    }
}

/// How many of `reports` are in each of [`DATAPLANE_STATES`], in its order.
fn state_counts<'a>(reports: impl IntoIterator<Item = &'a Report>) -> [usize; 4] {
    let mut counts = [0; DATAPLANE_STATES.len()];
    for r in reports {
        let i = match r.state {
            PushState::Applied(_) => 0,
            PushState::Pending => 1,
            PushState::Rejected(..) => 2,
            PushState::Failed(_) => 3,
        };
        counts[i] += 1;
    }
    counts
}

/// Waits for a new desired config or `timeout`, whichever comes first.
async fn wait(desired: &mut watch::Receiver<Option<Arc<Desired>>>, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, desired.changed()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pod: &str, state: PushState) -> Report {
        Report {
            target: Target {
                pod: pod.into(),
                node: None,
                address: ([127, 0, 0, 1], 9443).into(),
                incarnation: String::new(),
            },
            state,
            status: None,
        }
    }

    #[test]
    fn states_are_counted_in_label_order() {
        let reports = [
            report("a", PushState::Applied(3)),
            report("b", PushState::Applied(2)),
            report("c", PushState::Pending),
            report("d", PushState::Rejected(4, vec!["bad".into()])),
            report("e", PushState::Failed("refused".into())),
            report("f", PushState::Failed("timeout".into())),
        ];
        assert_eq!(state_counts(&reports), [2, 1, 1, 2]);
        assert_eq!(
            DATAPLANE_STATES,
            ["applied", "pending", "rejected", "failed"]
        );
    }

    #[tokio::test]
    async fn targets_without_credentials_are_pending_then_forgotten() {
        let metrics = Arc::new(Metrics::new());
        let mut fleet = Fleet::new(
            metrics.clone(),
            FleetSettings {
                poll_interval: Duration::from_secs(1),
            },
        );
        fleet
            .shared
            .metrics
            .observe_dataplane_push("gone", Duration::from_millis(1));
        lock(&fleet.shared.reports).insert("gone".into(), report("gone", PushState::Pending));
        fleet.shared.count_states();
        assert!(
            metrics
                .encode()
                .contains("fairlead_operator_dataplanes{state=\"pending\"} 1")
        );
        fleet.set_client(None);
        let text = metrics.encode();
        assert!(
            text.contains("fairlead_operator_dataplanes{state=\"pending\"} 0"),
            "{text}"
        );
        assert!(!text.contains("dataplane=\"gone\""), "{text}");
    }
}
