//! The status of Services of type LoadBalancer: `status.loadBalancer.ingress`
//! (the address, `ipMode: VIP`, each port's error) and the condition
//! [`CONDITION`], computed purely from render's outcome and the dataplanes'
//! VRRP reports, written by server-side apply only when it changes; Events
//! when a Service gets an address or cannot be served.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::sync::FIELD_MANAGER;
use crate::fleet::Report;
use crate::load_balancer::{CONDITION, LoadBalancing, service_key};
use crate::metrics::Metrics;
use crate::render::ServiceOutcome;
use crate::{Error, Result};

/// What one Service's status should be: ingress address and ports, and the condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The `status` to apply (only fairlead's fields).
    pub status: Value,
    /// The condition in it.
    pub condition: Condition,
}

/// The node reporting Master for virtual IP `name` (the latest to become it).
pub fn master(name: &str, reports: &[Report]) -> Option<String> {
    (reports.iter())
        .filter_map(|r| {
            let status = r.status.as_ref()?;
            let v = status.virtual_ips.iter().find(|v| v.name == name)?;
            let node = (status.node.clone())
                .or_else(|| r.target.node.clone())
                .unwrap_or_else(|| r.target.pod.clone());
            (v.state == "Master")
                .then_some((v.last_transition.as_ref().map_or(0, |t| t.at_unix_ms), node))
        })
        .max()
        .map(|(_, node)| node)
}

/// The status fairlead wants on a served Service, keeping the condition's
/// transition time when its status did not flip.
pub fn desired(
    outcome: &ServiceOutcome,
    master: Option<&str>,
    generation: Option<i64>,
    existing: Option<&ServiceStatus>,
    now: &Time,
) -> Desired {
    let (status, reason, message) = match (&outcome.problem, outcome.address) {
        (Some(p), _) => ("False", p.reason.to_string(), p.message.clone()),
        (None, Some(address)) => {
            let a = outcome
                .allocated
                .as_ref()
                .expect("an address was allocated");
            let mut m = format!(
                "{address} from AddressPool {}, virtual router {}; master: {}",
                a.pool,
                outcome.vrid.map_or("none".into(), |v| v.to_string()),
                master.unwrap_or("none yet"),
            );
            for note in &outcome.notes {
                m.push_str("; ");
                m.push_str(note);
            }
            let reason = if outcome.ports.iter().any(|p| p.2.is_some()) {
                "PortsRefused"
            } else {
                "Serving"
            };
            ("True", reason.to_string(), m)
        }
        (None, None) => ("False", "Pending".into(), "no address yet".into()),
    };
    let old = (existing
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten())
    .find(|c| c.type_ == CONDITION);
    let condition = Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason,
        message,
        observed_generation: generation,
        last_transition_time: old
            .filter(|c| c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
    };
    let ingress: Vec<Value> = outcome
        .address
        .iter()
        .map(|ip| {
            let ports: Vec<Value> = (outcome.ports.iter())
                .map(|(port, protocol, error)| match error {
                    Some(e) => json!({"port": port, "protocol": protocol, "error": e}),
                    None => json!({"port": port, "protocol": protocol}),
                })
                .collect();
            json!({"ip": ip.to_string(), "ipMode": "VIP", "ports": ports})
        })
        .collect();
    let status = json!({
        "loadBalancer": if ingress.is_empty() { json!({}) } else { json!({"ingress": ingress}) },
        "conditions": [serde_json::to_value(&condition).expect("a condition serializes")],
    });
    Desired { status, condition }
}

/// Whether the stored status already says what `desired` does.
pub fn up_to_date(existing: Option<&ServiceStatus>, desired: &Desired) -> bool {
    let stored = serde_json::to_value(existing.cloned().unwrap_or_default()).unwrap_or(Value::Null);
    let ingress = |v: &Value| {
        v.pointer("/loadBalancer/ingress")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let condition = (stored["conditions"].as_array().into_iter().flatten())
        .find(|c| c["type"] == CONDITION)
        .cloned();
    ingress(&stored) == ingress(&desired.status)
        && condition == Some(serde_json::to_value(&desired.condition).unwrap_or(Value::Null))
}

/// Writes Services' statuses and Events; remembers the reasons it announced.
pub struct ServiceStatusSync {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    announced: BTreeMap<String, String>,
}

impl ServiceStatusSync {
    /// A syncer writing with `client`.
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> ServiceStatusSync {
        ServiceStatusSync {
            client,
            recorder,
            metrics,
            announced: BTreeMap::new(),
        }
    }

    /// Brings every Service's status up to date: served ones to their
    /// outcome, formerly served ones (fairlead's condition still there) to
    /// nothing of fairlead's. Returns the writes that failed.
    pub async fn sync(
        &mut self,
        services: &[Arc<Service>],
        outcomes: &BTreeMap<String, ServiceOutcome>,
        settings: &LoadBalancing,
        reports: &[Report],
    ) -> Vec<Error> {
        let now = Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default());
        let mut failures = Vec::new();
        for service in services {
            let key = service_key(service);
            let existing = service.status.as_ref();
            let body = match outcomes.get(&key).filter(|_| settings.serves(service)) {
                Some(outcome) => {
                    let master = master(&outcome.virtual_ip, reports);
                    let d = desired(
                        outcome,
                        master.as_deref(),
                        service.meta().generation,
                        existing,
                        &now,
                    );
                    self.announce(service, &key, &d.condition).await;
                    if up_to_date(existing, &d) {
                        continue;
                    }
                    d.status
                }
                None => {
                    self.announced.remove(&key);
                    let ours = (existing
                        .and_then(|s| s.conditions.as_ref())
                        .into_iter()
                        .flatten())
                    .any(|c| c.type_ == CONDITION);
                    if !ours {
                        continue;
                    }
                    json!({})
                }
            };
            if let Err(e) = apply(&self.client, service, body).await {
                failures.push(e);
            }
        }
        let live: Vec<String> = services.iter().map(|s| service_key(s)).collect();
        self.announced.retain(|k, _| live.contains(k));
        failures
    }

    /// An Event when the condition's reason changes: Normal when served,
    /// Warning (and a counted failure) otherwise.
    async fn announce(&mut self, service: &Service, key: &str, condition: &Condition) {
        if self.announced.get(key) == Some(&condition.reason) {
            return;
        }
        let stored_reason = (service
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten())
        .find(|c| c.type_ == CONDITION)
        .map(|c| c.reason.clone());
        tracing::info!(service = key, reason = %condition.reason, message = %condition.message, "load balancer");
        let first_look = !self.announced.contains_key(key);
        self.announced
            .insert(key.to_string(), condition.reason.clone());
        if first_look && stored_reason.as_ref() == Some(&condition.reason) {
            // Already announced by this or another replica before.
            return;
        }
        let serving = condition.status == "True";
        if !serving {
            self.metrics.allocation_failure(&condition.reason);
        }
        let event = Event {
            type_: if serving {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: if serving {
                "AddressAssigned".into()
            } else {
                condition.reason.clone()
            },
            note: Some(condition.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &service.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, service = key, "event not published");
        }
    }
}

/// Server-side apply of fairlead's part of a Service's status.
async fn apply(client: &Client, service: &Service, status: Value) -> Result<()> {
    let namespace = service.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let body = json!({"apiVersion": "v1", "kind": "Service", "status": status});
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&service.name_any(), &params, &Patch::Apply(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!(
                "writing the status of Service {namespace}/{}",
                service.name_any()
            ),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
