//! Writing statuses and Events: each object's status is computed (see
//! [`status`](super::status)) and written by server-side apply only when it
//! differs from the stored one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fairlead_crds::{Backend, Frontend, VirtualIP};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::status::{self, ACCEPTED, Programming};
use crate::fleet::Report;
use crate::render::{RenderError, object_key};
use crate::{Error, Result};

/// Field manager of the operator's status writes.
pub const FIELD_MANAGER: &str = "fairlead-operator";
/// Status writes in flight at once.
const CONCURRENCY: usize = 16;

/// The resources whose status is written.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Frontends.
    pub frontends: Vec<Arc<Frontend>>,
    /// Backends.
    pub backends: Vec<Arc<Backend>>,
    /// VirtualIPs.
    pub virtual_ips: Vec<Arc<VirtualIP>>,
}

/// Writes statuses and publishes Events; remembers what it announced.
pub struct StatusSync {
    client: Client,
    recorder: Recorder,
    /// Versions whose rejection was announced.
    rejected_announced: BTreeSet<u64>,
    /// Per VirtualIP: the master last announced, and the newest time a node
    /// became Master that was accounted for (Unix ms).
    masters: BTreeMap<String, (Option<String>, u64)>,
}

/// One status write to do.
struct Write {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    status: serde_json::Value,
}

impl StatusSync {
    /// A syncer writing with `client`.
    pub fn new(client: Client, recorder: Recorder) -> StatusSync {
        StatusSync {
            client,
            recorder,
            rejected_announced: BTreeSet::new(),
            masters: BTreeMap::new(),
        }
    }

    /// The master moves of VirtualIP `key` to announce: since the last sync,
    /// by when the nodes became Master; the first time (an operator that just
    /// started), only a master that differs from the stored status.
    fn master_moves(
        &mut self,
        key: &str,
        stored: Option<String>,
        new: &fairlead_crds::VirtualIPStatus,
        reports: &[Report],
    ) -> Vec<status::MasterMove> {
        let newest = status::newest_became_master(key, reports);
        let (moves, announced) = match self.masters.get(key) {
            Some((announced, since)) => status::master_moves(
                key,
                announced.as_deref(),
                new.master.as_deref(),
                reports,
                *since,
            ),
            None if stored.is_some() && stored != new.master => {
                (vec![(stored, new.master.clone())], new.master.clone())
            }
            None => (Vec::new(), new.master.clone()),
        };
        let since = self.masters.get(key).map_or(0, |(_, since)| *since);
        (self.masters).insert(key.to_owned(), (announced, newest.max(since)));
        moves
    }

    /// Brings every object's status up to date; returns the writes that failed.
    pub async fn sync(
        &mut self,
        objects: &Objects,
        errors: &[RenderError],
        programming: &Programming,
        reports: &[Report],
        pods: &[Arc<Pod>],
    ) -> Vec<Error> {
        let now = Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default());
        let mut by_object: BTreeMap<&str, Vec<&RenderError>> = BTreeMap::new();
        for e in errors {
            by_object.entry(e.object.as_str()).or_default().push(e);
        }
        let errors_of = |kind: &str, ns: &str, name: &str| -> Vec<&RenderError> {
            let key = object_key(kind, ns, name);
            by_object.get(key.as_str()).cloned().unwrap_or_default()
        };
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for f in &objects.frontends {
            let (ns, name) = (f.namespace().unwrap_or_default(), f.name_any());
            let errors = errors_of("Frontend", &ns, &name);
            let old = f.status.as_ref();
            let new = status::frontend_status(f.meta().generation, old, &errors, programming, &now);
            if Some(&new) != old {
                events.extend(rejected_event(
                    f.as_ref(),
                    old.map(|s| &s.conditions[..]),
                    &new.conditions,
                ));
                writes.push(write(f.as_ref(), &new));
            }
        }
        for b in &objects.backends {
            let (ns, name) = (b.namespace().unwrap_or_default(), b.name_any());
            let errors = errors_of("Backend", &ns, &name);
            let old = b.status.as_ref();
            let key = format!("{ns}/{name}");
            let new = status::backend_status(
                &key,
                b.meta().generation,
                old,
                &errors,
                programming,
                reports,
                &now,
            );
            if Some(&new) != old {
                events.extend(rejected_event(
                    b.as_ref(),
                    old.map(|s| &s.conditions[..]),
                    &new.conditions,
                ));
                writes.push(write(b.as_ref(), &new));
            }
        }
        for v in &objects.virtual_ips {
            let (ns, name) = (v.namespace().unwrap_or_default(), v.name_any());
            let errors = errors_of("VirtualIP", &ns, &name);
            let old = v.status.as_ref();
            let key = format!("{ns}/{name}");
            let new = status::virtual_ip_status(
                &key,
                v.meta().generation,
                old,
                &errors,
                programming,
                reports,
                &now,
            );
            let old_master = old.and_then(|s| s.master.clone());
            for (from, to) in self.master_moves(&key, old_master, &new, reports) {
                tracing::info!(virtual_ip = %key, from = from.as_deref().unwrap_or("none"), to = to.as_deref().unwrap_or("none"), "master moved");
                events.push((v.object_ref(&()), failover_event(from, to)));
            }
            if Some(&new) != old {
                events.extend(rejected_event(
                    v.as_ref(),
                    old.map(|s| &s.conditions[..]),
                    &new.conditions,
                ));
                writes.push(write(v.as_ref(), &new));
            }
        }
        let live: BTreeSet<String> = (objects.virtual_ips.iter())
            .map(|v| format!("{}/{}", v.namespace().unwrap_or_default(), v.name_any()))
            .collect();
        self.masters.retain(|key, _| live.contains(key));
        if let Some((pod, reasons)) = &programming.rejected
            && self.rejected_announced.insert(programming.version)
            && let Some(pod) = pods.iter().find(|p| p.name_any() == *pod)
        {
            let note = format!(
                "config version {} rejected: {}",
                programming.version,
                reasons.join("; ")
            );
            events.push((
                pod.object_ref(&()),
                event(EventType::Warning, "Rejected", note),
            ));
        }
        for (reference, event) in events {
            if let Err(e) = self.recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, reason = event.reason, "event not published");
            }
        }
        let client = &self.client;
        futures::stream::iter(writes)
            .map(|w| apply_status(client, w))
            .buffer_unordered(CONCURRENCY)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await
    }
}

/// A Warning Event when Accepted turned False.
/// A `Failover` Event: Warning when no node is master any more. kube's
/// recorder folds Events with equal keys (reason, action, related object)
/// into one series that keeps the first note, so the new master is the
/// related object and the old one is in the action: each move between two
/// nodes is its own series.
fn failover_event(from: Option<String>, to: Option<String>) -> Event {
    let from_name = from.as_deref().unwrap_or("none");
    let note = format!(
        "master moved from {from_name} to {}",
        to.as_deref().unwrap_or("none")
    );
    // At most 128 characters (the API's limit for an action).
    let action: String = format!("FailoverFrom:{from_name}")
        .chars()
        .take(128)
        .collect();
    let kind = match to {
        Some(_) => EventType::Normal,
        None => EventType::Warning,
    };
    let node = to.or(from).map(|n| ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(n),
        ..ObjectReference::default()
    });
    let mut failover = event(kind, "Failover", note);
    failover.secondary = node;
    failover.action = action;
    failover
}

fn rejected_event<K: Resource<DynamicType = ()>>(
    object: &K,
    old: Option<&[Condition]>,
    new: &[Condition],
) -> Option<(k8s_openapi::api::core::v1::ObjectReference, Event)> {
    let was = |conditions: &[Condition]| {
        (conditions.iter())
            .find(|c| c.type_ == ACCEPTED)
            .map(|c| c.status == "True")
    };
    let accepted = new.iter().find(|c| c.type_ == ACCEPTED)?;
    if accepted.status == "True" || old.and_then(was) == Some(false) {
        return None;
    }
    let e = event(
        EventType::Warning,
        &accepted.reason,
        accepted.message.clone(),
    );
    Some((object.object_ref(&()), e))
}

fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    }
}

fn write<K: Resource<DynamicType = ()>>(object: &K, status: &impl Serialize) -> Write {
    Write {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
        status: serde_json::to_value(status).expect("a status serializes"),
    }
}

async fn apply_status(client: &Client, w: Write) -> Result<()> {
    match w.kind.as_str() {
        "Frontend" => apply::<Frontend>(client, w).await,
        "Backend" => apply::<Backend>(client, w).await,
        _ => apply::<VirtualIP>(client, w).await,
    }
}

/// Server-side apply of `w.status` on the status subresource.
async fn apply<K>(client: &Client, w: Write) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &w.namespace);
    let body = serde_json::json!({
        "apiVersion": w.api_version,
        "kind": w.kind,
        "status": w.status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&w.name, &params, &Patch::Apply(&body))
        .await
    {
        Ok(_) => Ok(()),
        // Deleted since it was read: nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!(
                "writing the status of {} {}/{}",
                w.kind, w.namespace, w.name
            ),
            source,
        }),
    }
}
