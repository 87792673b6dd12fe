//! Virtual IPs held with VRRP (keepalived's `vrrp_instance`). One config
//! serves every node: each dataplane picks its own priority by node name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One virtual router and the addresses it moves between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIp {
    /// Unique name, `namespace/name` when rendered from resources.
    pub name: String,
    /// VRRP virtual router id, 1-255, unique per interface.
    pub vrid: u8,
    /// VRRP version, 2 or 3. Default 3.
    #[serde(default = "default_version")]
    pub version: u8,
    /// Interface to speak on and add the addresses to. Default: the interface
    /// whose subnet holds the first address.
    #[serde(default)]
    pub interface: Option<String>,
    /// Addresses with prefix length, e.g. `192.0.2.100/24` or `fd00::100/64`;
    /// at least one, all of one family (IPv6 needs VRRPv3).
    pub addresses: Vec<VirtualAddress>,
    /// Advertisement interval in ms: 10-40950 in whole centiseconds (v3),
    /// whole seconds 1000-255000 (v2). Default 1000.
    #[serde(default = "default_advert_interval_ms")]
    pub advert_interval_ms: u64,
    /// A higher-priority node takes over from a lower-priority master. Default true.
    #[serde(default = "crate::config::yes")]
    pub preempt: bool,
    /// After start, lower-priority masters are obeyed this long. Default 0.
    #[serde(default)]
    pub preempt_delay_ms: u64,
    /// Priority of named nodes, 1-255 (255: the address owner).
    #[serde(default)]
    pub priorities: BTreeMap<String, u8>,
    /// Priority of other nodes, 1-254. Default 100.
    #[serde(default = "default_priority")]
    pub default_priority: u8,
    /// Nodes that take part; `None`: every node.
    #[serde(default)]
    pub nodes: Option<BTreeSet<String>>,
    /// Unicast peers, of the addresses' family; empty: multicast to
    /// 224.0.0.18 or ff02::12. A node skips its own addresses.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// What lowers this node's priority.
    #[serde(default)]
    pub track: Track,
    /// Gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6)
    /// per address on becoming master. Default 5.
    #[serde(default = "default_garp_count")]
    pub garp_count: u32,
    /// Time between two rounds of them in ms. Default 100.
    #[serde(default = "default_garp_interval_ms")]
    pub garp_interval_ms: u64,
    /// VRRPv2 simple text password, 1-8 bytes (keepalived's `auth_type
    /// PASS`): sent in every advertisement and required of every one
    /// received. Version 2 only. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
}

/// An address and its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAddress {
    pub address: IpAddr,
    #[serde(rename = "prefixLength")]
    pub prefix_len: u8,
}

/// keepalived's `track_script` and `track_interface`: while anything tracked
/// fails, `weight` is added to the priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    /// Frontends bound to this virtual IP: tracked failing while every server
    /// of their backends is down. Default true.
    #[serde(default = "crate::config::yes")]
    pub frontends: bool,
    /// Interfaces that must be up (and have carrier). Default none.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Added to the priority while something tracked fails, -254 to 254. Default -50.
    #[serde(default = "default_weight")]
    pub weight: i32,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            frontends: true,
            interfaces: Vec::new(),
            weight: default_weight(),
        }
    }
}

fn default_version() -> u8 {
    3
}
fn default_advert_interval_ms() -> u64 {
    1000
}
fn default_priority() -> u8 {
    100
}
fn default_garp_count() -> u32 {
    5
}
fn default_garp_interval_ms() -> u64 {
    100
}
fn default_weight() -> i32 {
    -50
}

impl VirtualIp {
    /// A virtual IP with every optional field at its default.
    pub fn new(name: impl Into<String>, vrid: u8, addresses: Vec<VirtualAddress>) -> Self {
        VirtualIp {
            name: name.into(),
            vrid,
            version: default_version(),
            interface: None,
            addresses,
            advert_interval_ms: default_advert_interval_ms(),
            preempt: true,
            preempt_delay_ms: 0,
            priorities: BTreeMap::new(),
            default_priority: default_priority(),
            nodes: None,
            unicast_peers: Vec::new(),
            track: Track::default(),
            garp_count: default_garp_count(),
            garp_interval_ms: default_garp_interval_ms(),
            auth_password: None,
        }
    }

    /// This node's priority, or `None` when the node does not take part.
    pub fn priority_of(&self, node: &str) -> Option<u8> {
        if self.nodes.as_ref().is_some_and(|n| !n.contains(node)) {
            return None;
        }
        Some(
            self.priorities
                .get(node)
                .copied()
                .unwrap_or(self.default_priority),
        )
    }

    pub fn advert_interval(&self) -> Duration {
        Duration::from_millis(self.advert_interval_ms)
    }

    /// The VRRPv2 password as the auth data carries it, zero-padded.
    pub fn password_field(&self) -> Option<[u8; 8]> {
        let password = self.auth_password.as_ref()?;
        let mut field = [0u8; 8];
        let n = password.len().min(8);
        field[..n].copy_from_slice(&password.as_bytes()[..n]);
        Some(field)
    }

    /// Every problem, as (field, reason).
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |field: &str, reason: String| out.push((field.to_string(), reason));
        if self.vrid == 0 {
            bad("vrid", "0 is not valid (1-255)".into());
        }
        match self.version {
            2 if !(1..=255).contains(&(self.advert_interval_ms / 1000))
                || !self.advert_interval_ms.is_multiple_of(1000) =>
            {
                bad(
                    "advertIntervalMs",
                    format!(
                        "{} ms: VRRPv2 needs whole seconds, 1-255 s",
                        self.advert_interval_ms
                    ),
                );
            }
            3 if !(10..=40_950).contains(&self.advert_interval_ms)
                || !self.advert_interval_ms.is_multiple_of(10) =>
            {
                bad(
                    "advertIntervalMs",
                    format!(
                        "{} ms: VRRPv3 needs whole centiseconds, 10 ms - 40.95 s",
                        self.advert_interval_ms
                    ),
                );
            }
            2 | 3 => {}
            other => bad("version", format!("{other} is not 2 or 3")),
        }
        if self.addresses.is_empty() {
            bad("addresses", "at least one address is needed".into());
        }
        let ipv6 = self.addresses.first().is_some_and(|a| a.address.is_ipv6());
        let family = |ip: &IpAddr| if ip.is_ipv6() { "IPv6" } else { "IPv4" };
        let mut seen = BTreeSet::new();
        for (i, a) in self.addresses.iter().enumerate() {
            let max = if a.address.is_ipv6() { 128 } else { 32 };
            if a.prefix_len > max {
                bad(
                    &format!("addresses[{i}].prefixLength"),
                    format!("{} is out of range (0-{max})", a.prefix_len),
                );
            }
            if a.address.is_ipv6() != ipv6 {
                bad(
                    &format!("addresses[{i}]"),
                    format!(
                        "{} is {}, addresses[0] is not; use one virtual IP per family",
                        a.address,
                        family(&a.address)
                    ),
                );
            }
            if !seen.insert(a.address) {
                bad(
                    &format!("addresses[{i}]"),
                    format!("{} is listed twice", a.address),
                );
            }
        }
        if let Some(password) = &self.auth_password {
            if self.version != 2 {
                bad(
                    "authPassword",
                    "VRRPv3 has no authentication; use version 2".into(),
                );
            }
            if !(1..=8).contains(&password.len()) {
                bad(
                    "authPassword",
                    format!("{} bytes: 1-8 are carried", password.len()),
                );
            }
        }
        if ipv6 && self.version == 2 {
            bad(
                "version",
                "VRRPv2 is IPv4 only; IPv6 needs version 3".into(),
            );
        }
        for (i, peer) in self.unicast_peers.iter().enumerate() {
            if peer.is_ipv6() != ipv6 {
                bad(
                    &format!("unicastPeers[{i}]"),
                    format!("{peer} is {}, the addresses are not", family(peer)),
                );
            }
        }
        for (node, p) in &self.priorities {
            if *p == 0 {
                bad(
                    &format!("priorities[{node}]"),
                    "0 is reserved (1-255)".into(),
                );
            }
        }
        if !(1..=254).contains(&self.default_priority) {
            bad(
                "defaultPriority",
                format!("{} is out of range (1-254)", self.default_priority),
            );
        }
        if !(-254..=254).contains(&self.track.weight) {
            bad(
                "track.weight",
                format!("{} is out of range (-254 to 254)", self.track.weight),
            );
        }
        if self.garp_count > 100 {
            bad(
                "garpCount",
                format!("{} is out of range (0-100)", self.garp_count),
            );
        }
        out
    }
}
