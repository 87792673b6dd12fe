//! What a speaker reports: for the status API, the operator and the log.

use std::net::IpAddr;

use serde::Serialize;

use super::{Runner, SpeakerConfig};
use crate::machine::{Reason, State};

/// One virtual router's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatus {
    /// The VirtualIP's `namespace/name`.
    pub name: String,
    pub vrid: u8,
    pub interface: String,
    /// `Initialize`, `Backup` or `Master`; `Fault` while it cannot run (no
    /// interface, the link down, no address; retried every second).
    pub state: &'static str,
    /// Why the state is `Fault`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Effective priority (configured, lowered by tracking).
    pub priority: u8,
    /// This node's address on the interface (the VRRP source address).
    pub address: Option<IpAddr>,
    /// The master's address: ours when Master, the last heard when Backup.
    pub master: Option<IpAddr>,
    pub last_transition: Option<TransitionStatus>,
    /// When it last became Master, in ms since the Unix epoch (also after it
    /// left Master): a master between two reads still shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub became_master_at_unix_ms: Option<u64>,
    /// IDs of other virtual routers heard on this link in the last
    /// [`HEARD_VRIDS_FOR`] (the operator tells its own from foreign ones).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heard_vrids: Vec<u8>,
    pub counters: Counters,
}

/// How long a heard virtual router ID is reported after its last advertisement.
pub const HEARD_VRIDS_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The last state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionStatus {
    /// When, in ms since the Unix epoch.
    pub at_unix_ms: u64,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
}

/// Packets and events since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Advertisements sent (one per destination).
    pub sent: u64,
    pub send_errors: u64,
    /// VRRP datagrams from peers, whatever their VRID.
    pub received: u64,
    pub receive_errors: u64,
    /// Dropped: TTL other than 255.
    pub dropped_ttl: u64,
    /// Dropped: wrong destination (multicast) or unknown source (unicast).
    pub dropped_peer: u64,
    /// Dropped: another VRID (normal when several virtual routers share the link).
    pub dropped_vrid: u64,
    /// Dropped: another VRRP version.
    pub dropped_version: u64,
    /// Dropped (v2): another authentication type or password.
    pub dropped_auth: u64,
    /// Dropped: truncated, bad checksum, bad fields.
    pub dropped_malformed: u64,
    /// Dropped (v2): another advertisement interval.
    pub dropped_interval: u64,
    /// Dropped (v2): other virtual addresses from a non-owner.
    pub dropped_addresses: u64,
    /// Accepted (v3) although the addresses differ from ours.
    pub address_mismatch: u64,
    pub transitions: u64,
    /// Times this node became Master.
    pub became_master: u64,
    /// Times this node left Master (to Backup, or stopping).
    pub released_master: u64,
    /// Advertisements of priority 0 sent (a Master handing over).
    pub priority_zero_sent: u64,
    /// Advertisements of priority 0 received from the Master.
    pub priority_zero_received: u64,
    /// The last takeover as this node measured it: from the last
    /// advertisement it heard from the old Master until it became Master,
    /// in microseconds; none before a takeover from Backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failover_us: Option<u64>,
    /// The VRID of the last advertisement dropped for another VRID, until
    /// the speaker takes it into its heard IDs.
    #[serde(skip)]
    pub other_vrid: Option<u8>,
}

impl Counters {
    /// Every dropped datagram.
    pub fn dropped(&self) -> u64 {
        self.dropped_ttl
            + self.dropped_peer
            + self.dropped_vrid
            + self.dropped_version
            + self.dropped_auth
            + self.dropped_malformed
            + self.dropped_interval
            + self.dropped_addresses
    }
}

impl SpeakerStatus {
    pub(super) fn new(config: &SpeakerConfig, address: Option<IpAddr>) -> SpeakerStatus {
        SpeakerStatus {
            name: config.name.clone(),
            vrid: config.vrid,
            interface: config.interface.clone(),
            state: state(State::Initialize),
            error: None,
            priority: config.priority,
            address,
            master: None,
            last_transition: None,
            became_master_at_unix_ms: None,
            heard_vrids: Vec::new(),
            counters: Counters::default(),
        }
    }

    pub(super) fn of(runner: &Runner) -> SpeakerStatus {
        let instance = &runner.instance;
        SpeakerStatus {
            state: state(instance.state()),
            priority: instance.priority(),
            master: instance.master(),
            last_transition: instance.last_transition().map(|t| TransitionStatus {
                at_unix_ms: runner.origin_unix_ms + t.at.as_millis(),
                from: state(t.from),
                to: state(t.to),
                reason: reason(t.reason),
            }),
            became_master_at_unix_ms: runner.became_master_at_unix_ms,
            heard_vrids: (runner.heard_vrids.iter())
                .filter(|(_, at)| at.elapsed() <= HEARD_VRIDS_FOR)
                .map(|(id, _)| *id)
                .collect(),
            counters: runner.counters.clone(),
            ..SpeakerStatus::new(&runner.config, Some(runner.primary))
        }
    }

    /// The status of a speaker that could not start.
    pub fn fault(config: &SpeakerConfig, error: String) -> SpeakerStatus {
        SpeakerStatus {
            state: "Fault",
            error: Some(error),
            ..SpeakerStatus::new(config, None)
        }
    }
}

/// RFC 9568's name of a state.
pub fn state(state: State) -> &'static str {
    match state {
        State::Initialize => "Initialize",
        State::Backup => "Backup",
        State::Master => "Master",
    }
}

/// A transition's reason, as a short sentence.
pub fn reason(reason: Reason) -> String {
    match reason {
        Reason::Startup => "started".into(),
        Reason::Shutdown => "stopped".into(),
        Reason::MasterDown => {
            "no advertisement from a master within the master-down interval".into()
        }
        Reason::Preempted { by, priority } => format!("{by} advertised priority {priority}"),
    }
}
