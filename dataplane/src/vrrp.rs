//! Virtual IPs: one VRRP [`Speaker`] per virtual IP this node takes part in,
//! started, kept or restarted on each apply, and a tracking task that lowers
//! a speaker's priority while the frontends bound to its addresses cannot
//! serve or a tracked interface is down (keepalived's `track_script` and
//! `track_interface`). Speakers run on a thread of their own, so a busy proxy
//! never delays an advertisement (keepalived gets the same from being a
//! separate process).

pub mod transitions;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use fairlead_vrrp::net::netlink::Netlink;
use fairlead_vrrp::{PrioritySetter, Speaker, SpeakerConfig, SpeakerStatus, Version};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::backend::BackendRuntime;
use crate::config::{DataplaneConfig, VirtualIp};
use crate::{Error, Result};

/// How often tracked frontends and interfaces are looked at.
const TRACK_PERIOD: Duration = Duration::from_millis(100);

/// A virtual IP's state on this node, for the status API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpStatus {
    #[serde(flatten)]
    pub speaker: SpeakerStatus,
    /// This node's configured priority.
    pub configured_priority: u8,
    /// What tracked fails now, lowering the priority; none when all is well.
    pub tracking_failure: Option<String>,
}

/// Reads one virtual IP's status.
#[derive(Clone)]
pub struct VirtualIpWatch {
    speaker: SpeakerWatch,
    configured: u8,
    failure: Option<Arc<ArcSwap<Option<String>>>>,
}

#[derive(Clone)]
enum SpeakerWatch {
    Running(tokio::sync::watch::Receiver<SpeakerStatus>),
    Fault(Box<SpeakerStatus>),
}

impl VirtualIpWatch {
    /// The status now.
    pub fn status(&self) -> VirtualIpStatus {
        let speaker = match &self.speaker {
            SpeakerWatch::Running(rx) => rx.borrow().clone(),
            SpeakerWatch::Fault(status) => (**status).clone(),
        };
        VirtualIpStatus {
            speaker,
            configured_priority: self.configured,
            tracking_failure: self.failure.as_ref().and_then(|f| (**f.load()).clone()),
        }
    }
}

/// The speakers of the running config.
#[derive(Default)]
pub struct Vrrp {
    /// The speakers' runtime, on its own thread; started with the first speaker.
    runtime: Option<tokio::runtime::Handle>,
    netlink: Option<Netlink>,
    speakers: BTreeMap<String, Running>,
    /// What the tracking task looks at.
    tracked: Arc<ArcSwap<Vec<Tracked>>>,
    tracker: Option<JoinHandle<()>>,
}

enum Running {
    Speaking {
        config: SpeakerConfig,
        speaker: Speaker,
    },
    Fault(SpeakerStatus),
}

/// The speakers one config asks for on this node, interfaces resolved.
pub struct Plan {
    wanted: Vec<(VirtualIp, SpeakerConfig)>,
}

/// One running speaker's tracking inputs.
struct Tracked {
    name: String,
    configured: u8,
    weight: i32,
    /// Per bound frontend, the backends it routes to.
    frontends: Vec<(String, Vec<Arc<BackendRuntime>>)>,
    interfaces: Vec<String>,
    setter: PrioritySetter,
    failure: Arc<ArcSwap<Option<String>>>,
}

impl Vrrp {
    /// Works out the speakers `config` asks of `node`; resolving interfaces
    /// reads the kernel's addresses. Fails, changing nothing, when an
    /// interface cannot be found.
    pub async fn plan(&mut self, config: &DataplaneConfig, node: &str) -> Result<Plan> {
        let mut wanted = Vec::new();
        let mine: Vec<_> = (config.virtual_ips.iter())
            .filter_map(|v| v.priority_of(node).map(|p| (v, p)))
            .collect();
        if mine.is_empty() {
            return Ok(Plan { wanted });
        }
        let netlink = self.netlink()?;
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let links = netlink.links().await.map_err(io("listing interfaces"))?;
        let addresses = (netlink.addresses().await).map_err(io("listing addresses"))?;
        let mut problems = Vec::new();
        for (v, priority) in mine {
            let first = v.addresses[0].address;
            let interface = match &v.interface {
                Some(name) if links.iter().any(|l| &l.name == name) => Some(name.clone()),
                Some(name) => {
                    problems.push(format!(
                        "virtual IP {}: interface: {name:?} does not exist on node {node}",
                        v.name
                    ));
                    continue;
                }
                None => addresses
                    .iter()
                    // A host address (/32, /128) has no subnet to share.
                    .filter(|a| {
                        let host = if a.address.is_ipv6() { 128 } else { 32 };
                        a.prefix_len < host && a.address != first && a.contains(first)
                    })
                    .find_map(|a| links.iter().find(|l| l.index == a.index))
                    .map(|l| l.name.clone()),
            };
            let Some(interface) = interface else {
                problems.push(format!(
                    "virtual IP {}: interface: no interface of node {node} has a subnet holding {first}; set interface",
                    v.name
                ));
                continue;
            };
            let own: Vec<IpAddr> = addresses.iter().map(|a| a.address).collect();
            let speaker = SpeakerConfig {
                name: v.name.clone(),
                interface,
                vrid: v.vrid,
                version: if v.version == 2 {
                    Version::V2
                } else {
                    Version::V3
                },
                priority,
                interval: v.advert_interval(),
                preempt: v.preempt,
                preempt_delay: Duration::from_millis(v.preempt_delay_ms),
                addresses: (v.addresses.iter())
                    .map(|a| (a.address, a.prefix_len))
                    .collect(),
                unicast_peers: (v.unicast_peers.iter())
                    .filter(|p| !own.contains(p))
                    .copied()
                    .collect(),
                garp_count: v.garp_count,
                garp_interval: Duration::from_millis(v.garp_interval_ms),
                password: v.password_field(),
            };
            wanted.push((v.clone(), speaker));
        }
        if problems.is_empty() {
            Ok(Plan { wanted })
        } else {
            Err(Error::Invalid(problems.join("\n")))
        }
    }

    /// Runs `plan`: stops speakers no longer wanted or changed (a Master hands
    /// over with a priority-0 advertisement), starts new ones, and points
    /// tracking at the running frontends and backends.
    pub async fn commit(
        &mut self,
        plan: Plan,
        config: &DataplaneConfig,
        backends: &HashMap<String, Arc<BackendRuntime>>,
    ) {
        let mut next = BTreeMap::new();
        let mut old = std::mem::take(&mut self.speakers);
        for (vip, wanted) in &plan.wanted {
            let kept = match old.remove(&vip.name) {
                Some(Running::Speaking { config, speaker }) if config == *wanted => {
                    Some(Running::Speaking { config, speaker })
                }
                Some(Running::Speaking { speaker, .. }) => {
                    speaker.stop().await;
                    None
                }
                _ => None,
            };
            let running = match kept {
                Some(running) => running,
                None => self.start(wanted.clone()).await,
            };
            next.insert(vip.name.clone(), running);
        }
        for (_, stale) in old {
            if let Running::Speaking { speaker, .. } = stale {
                speaker.stop().await;
            }
        }
        self.speakers = next;
        let tracked = plan
            .wanted
            .iter()
            .filter_map(|(vip, wanted)| match self.speakers.get(&vip.name) {
                Some(Running::Speaking { speaker, .. }) => {
                    Some(tracked(vip, wanted, speaker, config, backends))
                }
                _ => None,
            })
            .collect();
        self.tracked.store(Arc::new(tracked));
        if self.tracker.is_none() && !self.speakers.is_empty() {
            let tracked = self.tracked.clone();
            let netlink = self.netlink.clone();
            self.tracker = Some(tokio::spawn(track(tracked, netlink)));
        }
    }

    async fn start(&mut self, config: SpeakerConfig) -> Running {
        let netlink = match self.netlink() {
            Ok(n) => n,
            Err(e) => return Running::Fault(SpeakerStatus::fault(&config, e.to_string())),
        };
        let started = match self.runtime() {
            Ok(runtime) => runtime.spawn(Speaker::start(config.clone(), netlink)).await,
            Err(e) => return Running::Fault(SpeakerStatus::fault(&config, e.to_string())),
        };
        match started.map_err(|e| e.to_string()) {
            Ok(Ok(speaker)) => Running::Speaking { config, speaker },
            Ok(Err(error)) => {
                tracing::error!(virtual_ip = %config.name, %error, "VRRP could not start");
                Running::Fault(SpeakerStatus::fault(&config, error.to_string()))
            }
            Err(error) => {
                tracing::error!(virtual_ip = %config.name, %error, "VRRP could not start");
                Running::Fault(SpeakerStatus::fault(&config, error.to_string()))
            }
        }
    }

    /// The first half of a graceful stop: every Master advertises priority 0
    /// and waits (bounded) for its successor, keeping its addresses; see
    /// [`Speaker::hand_over`]. Tracking stops.
    pub async fn hand_over(&mut self) {
        if let Some(tracker) = self.tracker.take() {
            tracker.abort();
        }
        let speakers = self.speakers.values().filter_map(|running| match running {
            Running::Speaking { speaker, .. } => Some(speaker.hand_over()),
            Running::Fault(_) => None,
        });
        futures_util::future::join_all(speakers).await;
    }

    /// Stops every speaker: Masters hand over at once.
    pub async fn shutdown(&mut self) {
        if let Some(tracker) = self.tracker.take() {
            tracker.abort();
        }
        self.tracked.store(Arc::default());
        for (_, running) in std::mem::take(&mut self.speakers) {
            if let Running::Speaking { speaker, .. } = running {
                speaker.stop().await;
            }
        }
    }

    /// Every virtual IP this node takes part in, sorted by name.
    pub fn status(&self) -> Vec<VirtualIpStatus> {
        self.watches().iter().map(VirtualIpWatch::status).collect()
    }

    /// A handle per virtual IP, sorted by name, that reads its status
    /// without the engine's apply lock.
    pub fn watches(&self) -> Vec<VirtualIpWatch> {
        let tracked = self.tracked.load();
        self.speakers
            .iter()
            .map(|(name, running)| {
                let (speaker, configured) = match running {
                    Running::Speaking { config, speaker } => {
                        (SpeakerWatch::Running(speaker.watch()), config.priority)
                    }
                    Running::Fault(status) => (
                        SpeakerWatch::Fault(Box::new(status.clone())),
                        status.priority,
                    ),
                };
                let failure = (tracked.iter())
                    .find(|t| &t.name == name)
                    .map(|t| t.failure.clone());
                VirtualIpWatch {
                    speaker,
                    configured,
                    failure,
                }
            })
            .collect()
    }

    /// The connection to the kernel's netlink, served on the speakers' runtime.
    fn netlink(&mut self) -> Result<Netlink> {
        if self.netlink.is_none() {
            let runtime = self.runtime()?;
            let _inside = runtime.enter();
            let netlink = Netlink::connect().map_err(|source| Error::Io {
                what: "opening netlink".into(),
                source,
            })?;
            self.netlink = Some(netlink);
        }
        Ok(self.netlink.clone().expect("set above"))
    }

    /// The speakers' single-threaded runtime; its thread lives as long as the process.
    fn runtime(&mut self) -> Result<tokio::runtime::Handle> {
        if let Some(handle) = &self.runtime {
            return Ok(handle.clone());
        }
        let io = |source| Error::Io {
            what: "starting the VRRP thread".into(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io)?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(io)?;
        self.runtime = Some(handle.clone());
        Ok(handle)
    }
}

fn tracked(
    vip: &VirtualIp,
    wanted: &SpeakerConfig,
    speaker: &Speaker,
    config: &DataplaneConfig,
    backends: &HashMap<String, Arc<BackendRuntime>>,
) -> Tracked {
    let frontends = if vip.track.frontends {
        (config.frontends.iter())
            .filter(|f| f.virtual_ip.as_deref() == Some(vip.name.as_str()))
            .map(|f| {
                let names = (f.default_backend.iter()).chain(f.routes.iter().map(|r| &r.backend));
                let used = names.filter_map(|n| backends.get(n).cloned()).collect();
                (f.name.clone(), used)
            })
            .collect()
    } else {
        Vec::new()
    };
    Tracked {
        name: vip.name.clone(),
        configured: wanted.priority,
        weight: vip.track.weight,
        frontends,
        interfaces: vip.track.interfaces.clone(),
        setter: speaker.priority_setter(),
        failure: Arc::default(),
    }
}

/// Every [`TRACK_PERIOD`], sets each speaker's priority from what it tracks.
async fn track(tracked: Arc<ArcSwap<Vec<Tracked>>>, netlink: Option<Netlink>) {
    let mut tick = tokio::time::interval(TRACK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let all = tracked.load_full();
        let needs_links = all.iter().any(|t| !t.interfaces.is_empty());
        let links = match (&netlink, needs_links) {
            (Some(n), true) => n.links().await.ok(),
            _ => None,
        };
        for t in all.iter() {
            let failure = failure(t, links.as_deref());
            let priority = match &failure {
                Some(_) => effective(t.configured, t.weight),
                None => t.configured,
            };
            t.setter.set(priority);
            if **t.failure.load() != failure {
                match &failure {
                    Some(why) => {
                        tracing::warn!(virtual_ip = %t.name, failure = %why, priority, "tracking lowers the VRRP priority")
                    }
                    None => {
                        tracing::info!(virtual_ip = %t.name, priority, "tracking restores the VRRP priority")
                    }
                }
                t.failure.store(Arc::new(failure));
            }
        }
    }
}

/// What tracked fails, if anything.
fn failure(t: &Tracked, links: Option<&[fairlead_vrrp::net::netlink::Link]>) -> Option<String> {
    for (frontend, backends) in &t.frontends {
        let serving = backends
            .iter()
            .any(|b| b.servers.iter().any(|s| s.shared.is_up()));
        if !serving {
            return Some(format!("frontend {frontend}: no server is up"));
        }
    }
    for name in &t.interfaces {
        let up = links.is_some_and(|l| l.iter().any(|l| &l.name == name && l.up));
        if !up {
            return Some(format!("interface {name} is down"));
        }
    }
    None
}

/// The configured priority plus the weight, kept within 1-254 (255 is only
/// for an owner that is well).
fn effective(configured: u8, weight: i32) -> u8 {
    u8::try_from((i32::from(configured) + weight).clamp(1, 254)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_priority_stays_in_range() {
        assert_eq!(effective(100, -50), 50);
        assert_eq!(effective(30, -50), 1);
        assert_eq!(effective(200, 100), 254);
        assert_eq!(effective(255, -50), 205);
        assert_eq!(effective(100, 0), 100);
    }
}
