//! Pure status computation: render errors and dataplane reports -> the
//! `status` of each Frontend, Backend and VirtualIP, with conditions that
//! follow the Kubernetes conventions (`lastTransitionTime` moves only when
//! `status` flips).

use std::collections::BTreeMap;

use fairlead_crds::{BackendStatus, FrontendStatus, NodeVrrpState, ServerStatus, VirtualIPStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::fleet::{PushState, Report};
use crate::push::VirtualIpState;
use crate::render::RenderError;

/// Condition type: spec and references are valid.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the config holding the object runs on the dataplanes.
pub const PROGRAMMED: &str = "Programmed";
/// Condition type of a VirtualIP: a node holds the addresses.
pub const READY: &str = "Ready";

/// How far the current config has reached the dataplanes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programming {
    /// The desired version.
    pub version: u64,
    /// Dataplanes running it.
    pub applied: usize,
    /// Ready dataplanes.
    pub total: usize,
    /// The first dataplane that rejected it, with its reasons.
    pub rejected: Option<(String, Vec<String>)>,
    /// Dataplanes still on their way to it (pushing, or not yet answered).
    pub in_flight: usize,
}

impl Programming {
    /// The programming of `version` according to `reports`.
    pub fn of(version: u64, reports: &[Report]) -> Programming {
        let applied = (reports.iter())
            .filter(|r| r.state == PushState::Applied(version))
            .count();
        let rejected = reports.iter().find_map(|r| match &r.state {
            PushState::Rejected(v, errors) if *v == version => {
                Some((r.target.pod.clone(), errors.clone()))
            }
            _ => None,
        });
        let in_flight = (reports.iter())
            .filter(|r| match &r.state {
                PushState::Pending => true,
                PushState::Applied(v) => *v != version,
                PushState::Rejected(..) | PushState::Failed(_) => false,
            })
            .count();
        Programming {
            version,
            applied,
            total: reports.len(),
            rejected,
            in_flight,
        }
    }
}

/// A condition's content before its time is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// The Accepted verdict of an object with these render errors.
pub fn accepted(errors: &[&RenderError]) -> Verdict {
    let Some(first) = errors.first() else {
        return Verdict {
            status: true,
            reason: "Accepted",
            message: "spec and references are valid".into(),
        };
    };
    let message = (errors.iter())
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Verdict {
        status: false,
        reason: reason_of(first),
        message,
    }
}

/// The reason naming what a render error is about.
fn reason_of(error: &RenderError) -> &'static str {
    let m = error.message.as_str();
    if m.starts_with("Secret ") && m.ends_with("does not exist") {
        "SecretNotFound"
    } else if m.starts_with("Backend ") && m.contains(" does not exist") {
        "BackendNotFound"
    } else if m.starts_with("Service ") && m.contains(" does not exist") {
        "ServiceNotFound"
    } else if m.starts_with("Backend ") {
        "InvalidBackend"
    } else {
        "InvalidSpec"
    }
}

/// How long two nodes must both have been Master, by their reports, to be
/// taken as a split brain rather than a handover (where the old master steps
/// down within a millisecond, but its report can be up to a poll old).
const SPLIT_BRAIN_OVERLAP_MS: u64 = 1000;

/// The nodes that were Master at the same time for at least
/// [`SPLIT_BRAIN_OVERLAP_MS`]: each report shows its node Master from its last
/// transition until it was read, so two overlap from the later transition to
/// the earlier read. Empty when at most one node is Master.
fn split_brain(masters: &[(String, u64, u64)]) -> Vec<String> {
    let mut split = Vec::new();
    for (i, (a, a_since, a_read)) in masters.iter().enumerate() {
        let overlaps = masters.iter().enumerate().any(|(j, (_, b_since, b_read))| {
            let (from, to) = ((*a_since).max(*b_since), (*a_read).min(*b_read));
            i != j && to >= from + SPLIT_BRAIN_OVERLAP_MS
        });
        if overlaps {
            split.push(a.clone());
        }
    }
    split
}

/// The Programmed verdict of an object: `accepted` tells whether it is in the config.
pub fn programmed(accepted: bool, p: &Programming) -> Verdict {
    let progress = format!(
        "applied on {} of {} dataplanes, version {}",
        p.applied, p.total, p.version
    );
    if !accepted {
        return Verdict {
            status: false,
            reason: "NotAccepted",
            message: "left out of the config: see the Accepted condition".into(),
        };
    }
    if let Some((pod, errors)) = &p.rejected {
        return Verdict {
            status: false,
            reason: "Rejected",
            message: format!(
                "dataplane {pod} rejected version {}: {}; {progress}",
                p.version,
                errors.join("; ")
            ),
        };
    }
    let (status, reason) = match (p.total, p.applied == p.total) {
        (0, _) => (false, "NoDataplanes"),
        (_, true) => (true, "Programmed"),
        (_, false) => (false, "Pending"),
    };
    Verdict {
        status,
        reason,
        message: progress,
    }
}

/// The condition `type_` with `verdict`, keeping the transition time of the
/// same condition in `existing` when its status did not flip.
pub fn condition(
    type_: &str,
    verdict: Verdict,
    generation: Option<i64>,
    existing: &[Condition],
    now: &Time,
) -> Condition {
    let status = if verdict.status { "True" } else { "False" };
    let last_transition_time = (existing.iter())
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: verdict.reason.into(),
        message: verdict.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The two conditions every resource has.
fn accepted_and_programmed(
    errors: &[&RenderError],
    p: &Programming,
    generation: Option<i64>,
    existing: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let verdict = accepted(errors);
    let programmed = programmed(verdict.status, p);
    vec![
        condition(ACCEPTED, verdict, generation, existing, now),
        condition(PROGRAMMED, programmed, generation, existing, now),
    ]
}

/// A Frontend's status.
pub fn frontend_status(
    generation: Option<i64>,
    existing: Option<&FrontendStatus>,
    errors: &[&RenderError],
    p: &Programming,
    now: &Time,
) -> FrontendStatus {
    let old = existing.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    FrontendStatus {
        observed_generation: generation,
        conditions: accepted_and_programmed(errors, p, generation, old, now),
    }
}

/// A Backend's status; `key` is its `namespace/name` as the dataplanes name it.
pub fn backend_status(
    key: &str,
    generation: Option<i64>,
    existing: Option<&BackendStatus>,
    errors: &[&RenderError],
    p: &Programming,
    reports: &[Report],
    now: &Time,
) -> BackendStatus {
    let old = existing.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    BackendStatus {
        observed_generation: generation,
        conditions: accepted_and_programmed(errors, p, generation, old, now),
        servers: servers(key, reports),
    }
}

/// Each server's health over the dataplanes that report the backend:
/// `Up`/`Down`/`Unchecked` when they agree, else `Mixed` with the counts.
fn servers(key: &str, reports: &[Report]) -> Vec<ServerStatus> {
    #[derive(Default)]
    struct Seen {
        address: String,
        port: u16,
        states: BTreeMap<String, usize>,
        failure: Option<String>,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let backends = (reports.iter())
        .filter_map(|r| r.status.as_ref())
        .flat_map(|s| s.backends.iter().filter(|b| b.name == key));
    for backend in backends {
        for server in &backend.servers {
            let entry = seen.entry(server.name.clone()).or_insert_with(|| {
                order.push(server.name.clone());
                Seen::default()
            });
            entry.address.clone_from(&server.address);
            entry.port = server.port;
            *entry.states.entry(server.state.to_lowercase()).or_default() += 1;
            if let Some(check) = server.last_check.as_ref().filter(|c| !c.ok) {
                entry.failure.get_or_insert_with(|| check.reason.clone());
            }
        }
    }
    order
        .into_iter()
        .map(|name| {
            let s = &seen[&name];
            let total: usize = s.states.values().sum();
            let (state, message) = match s.states.iter().next() {
                Some((only, _)) if s.states.len() == 1 => (capitalized(only), None),
                _ => {
                    let counts = (s.states.iter())
                        .map(|(state, n)| format!("{state} on {n} of {total} dataplanes"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    ("Mixed".to_string(), Some(counts))
                }
            };
            let message = match (message, &s.failure) {
                (Some(m), Some(f)) => Some(format!("{m}; last failed check: {f}")),
                (None, Some(f)) if state == "Down" => Some(f.clone()),
                (m, _) => m,
            };
            ServerStatus {
                name,
                address: s.address.clone(),
                port: i32::from(s.port),
                state,
                message,
            }
        })
        .collect()
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Each node's report of VirtualIP `key` (dataplanes may name it
/// `namespace/name` or `name`): (node, state, when the report was read).
fn vrrp_states<'a>(
    key: &'a str,
    reports: &'a [Report],
) -> impl Iterator<Item = (String, &'a VirtualIpState, u64)> + 'a {
    let name = key.rsplit('/').next().unwrap_or(key);
    reports.iter().filter_map(move |report| {
        let status = report.status.as_ref()?;
        let node = (status.node.clone())
            .or_else(|| report.target.node.clone())
            .unwrap_or_else(|| report.target.pod.clone());
        let v = (status.virtual_ips.iter()).find(|v| v.name == key || v.name == name)?;
        Some((node, v, status.read_at_unix_ms))
    })
}

/// The newest time (Unix ms) any node reports having become Master of `key`.
pub fn newest_became_master(key: &str, reports: &[Report]) -> u64 {
    (vrrp_states(key, reports))
        .filter_map(|(_, v, _)| v.became_master_at_unix_ms)
        .max()
        .unwrap_or(0)
}

/// A move of a VirtualIP's master: from, to (`None`: no master).
pub type MasterMove = (Option<String>, Option<String>);

/// Every move of `key`'s master since `since` (Unix ms), in order: from
/// `previous` through each node that became Master after `since` (by the
/// nodes' reports, so a master between two reads is not missed) to
/// `current`, the master now; and the master those moves end at. "No
/// master" is a move only when the reports confirm it
/// ([`no_master_confirmed`]).
pub fn master_moves(
    key: &str,
    previous: Option<&str>,
    current: Option<&str>,
    reports: &[Report],
    since: u64,
) -> (Vec<MasterMove>, Option<String>) {
    let mut became: Vec<(u64, String)> = (vrrp_states(key, reports))
        .filter_map(|(node, v, _)| {
            Some((v.became_master_at_unix_ms.filter(|&at| at > since)?, node))
        })
        .collect();
    became.sort();
    let mut moves = Vec::new();
    let mut master = previous.map(str::to_owned);
    let mut step = |next: Option<String>, master: &mut Option<String>| {
        if next != *master {
            moves.push((master.clone(), next.clone()));
            *master = next;
        }
    };
    for (_, node) in became {
        step(Some(node), &mut master);
    }
    if current.is_some() || no_master_confirmed(key, master.as_deref(), reports) {
        step(current.map(str::to_owned), &mut master);
    }
    (moves, master)
}

/// Whether the reports show for sure that no node is master: every
/// dataplane reported, `last` (the last master known) among them, and none
/// is a Backup — a Backup becomes Master within its master-down interval
/// unless it hears one, so "no master" beside a Backup is a moment between
/// two reads (or a report read just before a node took over), not a fact.
fn no_master_confirmed(key: &str, last: Option<&str>, reports: &[Report]) -> bool {
    let states: Vec<_> = vrrp_states(key, reports).collect();
    reports.iter().all(|r| r.status.is_some())
        && last.is_none_or(|last| states.iter().any(|(node, _, _)| node == last))
        && !states.iter().any(|(_, v, _)| v.state == "Backup")
}

/// A VirtualIP's status: conditions, each node's VRRP state, the master.
/// `key` is its `namespace/name`; dataplanes may name it either way.
pub fn virtual_ip_status(
    key: &str,
    generation: Option<i64>,
    existing: Option<&VirtualIPStatus>,
    errors: &[&RenderError],
    p: &Programming,
    reports: &[Report],
    now: &Time,
) -> VirtualIPStatus {
    let old = existing.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let mut nodes: Vec<NodeVrrpState> = Vec::new();
    // Nodes reporting Master: (node, Master since, report read at), Unix ms.
    let mut masters: Vec<(String, u64, u64)> = Vec::new();
    for (node, v, read_at) in vrrp_states(key, reports) {
        if v.state == "Master" {
            let since = v.last_transition.as_ref().map_or(0, |t| t.at_unix_ms);
            masters.push((node.clone(), since, read_at));
        }
        nodes.push(NodeVrrpState {
            node,
            state: v.state.clone(),
            priority: v.priority,
        });
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    masters.sort();
    let split = split_brain(&masters);
    // During a handover the old master's report can lag a poll behind: the
    // node that became Master last is the master.
    let master = (masters.iter())
        .max_by_key(|(_, since, _)| *since)
        .map(|(node, _, _)| node.clone())
        .filter(|_| split.is_empty());
    let mut conditions = accepted_and_programmed(errors, p, generation, old, now);
    let ready = match &master {
        Some(m) => Verdict {
            status: true,
            reason: "MasterElected",
            message: format!("{m} holds the addresses"),
        },
        None if !split.is_empty() => Verdict {
            status: false,
            reason: "MultipleMasters",
            message: format!(
                "{} are all Master and hold the addresses: they do not hear each other's \
                 advertisements (multicast filtered between them, unicast peers missing, or \
                 another VRRP version, interval or password)",
                split.join(", ")
            ),
        },
        None => Verdict {
            status: false,
            reason: "NoMaster",
            message: format!("no node is Master ({} report this VirtualIP)", nodes.len()),
        },
    };
    conditions.push(condition(READY, ready, generation, old, now));
    VirtualIPStatus {
        observed_generation: generation,
        conditions,
        master,
        nodes,
    }
}

#[cfg(test)]
mod tests;
