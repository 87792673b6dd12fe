//! The `VirtualIP` resource: addresses that float between dataplane nodes by
//! VRRP (`vrrp_instance` in keepalived.conf).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration;

/// How VRRP advertisements reach the other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum PeerMode {
    /// To the VRRP multicast group (224.0.0.18, ff02::12).
    Multicast,
    /// To each peer's address (`unicast_peer`).
    Unicast,
}

/// Addresses held by one dataplane node at a time, moved by VRRP when it fails.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "fairlead.io",
    version = "v1alpha1",
    kind = "VirtualIP",
    doc = "Addresses held by one dataplane node at a time, moved by VRRP when it fails.",
    plural = "virtualips",
    namespaced,
    status = "VirtualIPStatus",
    shortname = "vip",
    category = "fairlead",
    printcolumn = r#"{"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"}"#,
    printcolumn = r#"{"name": "VRID", "type": "integer", "jsonPath": ".spec.virtualRouterID"}"#,
    printcolumn = r#"{"name": "Master", "type": "string", "jsonPath": ".status.master"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "has(self.addresses) && size(self.addresses) > 0",
    "spec.addresses: set at least one address"
))]
#[x_kube(validation = (
    "!has(self.version) || self.version == 3 || !has(self.advertInterval) || self.advertInterval.matches('^([0-9]+(s|m|h))+$')",
    "spec.advertInterval: VRRP version 2 needs whole seconds (s, m, h units)"
))]
#[x_kube(validation = (
    "!has(self.authSecret) || (has(self.version) && self.version == 2)",
    "spec.authSecret: VRRP authentication exists in version 2 only"
))]
#[x_kube(validation = (
    "!has(self.version) || self.version == 3 || !has(self.addresses) || self.addresses.all(a, !a.contains(':'))",
    "spec.version: VRRP version 2 is IPv4 only; IPv6 addresses need version 3"
))]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPSpec {
    /// Addresses with prefix length, e.g. `192.0.2.100/24` or `fd00::100/64`; all IPv4 or all IPv6. 1-64 of them.
    #[schemars(length(max = 64), inner(length(max = 64)))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Interface to add the addresses to and speak VRRP on. Default: the interface whose subnet holds the first address.
    pub interface: Option<String>,
    /// VRRP virtual router ID, 1-255, unique among the routers on the link. Required.
    #[schemars(range(min = 1, max = 255))]
    #[serde(rename = "virtualRouterID")]
    pub virtual_router_id: i32,
    /// Time between advertisements; version 3 allows 10ms-40950ms, version 2 whole seconds 1s-255s. Default: 1s.
    #[schemars(pattern(duration::PATTERN), length(max = 32))]
    pub advert_interval: Option<String>,
    /// VRRP version, 2 (to join existing keepalived groups; IPv4 only) or 3. Default: 3.
    #[schemars(range(min = 2, max = 3))]
    pub version: Option<i32>,
    /// A higher-priority node takes over from a lower-priority master. Default: true.
    pub preempt: Option<bool>,
    /// How long a node waits after start before preempting. Default: 0s.
    #[schemars(pattern(duration::PATTERN))]
    pub preempt_delay: Option<String>,
    /// Labels of the nodes that may hold the addresses. Default: every node running a dataplane.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Priorities of named nodes; the highest priority becomes master. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<NodePriority>,
    /// Priority of nodes not listed in `priorities`, 1-254. Default: 100.
    #[schemars(range(min = 1, max = 254))]
    pub default_priority: Option<i32>,
    /// How advertisements reach the other nodes. Default: multicast.
    pub peers: Option<Peers>,
    /// What lowers this node's priority when unhealthy. Default: frontends tracked, weight -50.
    pub track: Option<Track>,
    /// Gratuitous ARP / unsolicited NA sent on becoming master. Default: 5 messages, 100ms apart.
    pub gratuitous_arp: Option<GratuitousArp>,
    /// Secret with `password` (1-8 bytes) for VRRPv2 simple password authentication, as keepalived's `auth_type PASS` (the password travels in clear: it keeps routers of different groups apart, it does not secure anything). Version 2 only. Default: none.
    pub auth_secret: Option<String>,
}

/// The VRRP priority of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePriority {
    /// Kubernetes node name. Required.
    #[schemars(length(min = 1))]
    pub node: String,
    /// Priority, 1-255; 255 means the node owns the addresses. Required.
    #[schemars(range(min = 1, max = 255))]
    pub priority: i32,
}

/// How VRRP advertisements reach the other nodes.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "!has(self.addresses) || size(self.addresses) == 0 || (has(self.mode) && self.mode == 'unicast')",
    "peers.addresses need peers.mode unicast"
))]
#[serde(rename_all = "camelCase")]
pub struct Peers {
    /// `multicast` or `unicast`. Default: `multicast`.
    pub mode: Option<PeerMode>,
    /// Unicast peer IP addresses, of the family of `addresses`. Default: the node IPs of that family of the other dataplanes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// What lowers this node's priority (`track_script`, `track_interface`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    /// Track the health of this node's frontends that bind to this VirtualIP. Default: true.
    pub frontends: Option<bool>,
    /// Interfaces that must be up. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Added to the priority while something tracked fails, -254 to 254. Default: -50.
    #[schemars(range(min = -254, max = 254))]
    pub weight: Option<i32>,
}

/// Gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6) sent on becoming master.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GratuitousArp {
    /// Messages per address, 0-100 (`garp_master_repeat`). Default: 5.
    #[schemars(range(min = 0, max = 100))]
    pub count: Option<i32>,
    /// Time between two messages. Default: 100ms.
    #[schemars(pattern(duration::PATTERN))]
    pub interval: Option<String>,
}

/// Observed state of a VirtualIP, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPStatus {
    /// The `metadata.generation` this status describes. Default: none.
    pub observed_generation: Option<i64>,
    /// Standard conditions, e.g. `Ready`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Node that holds the addresses now. Default: none (no master).
    pub master: Option<String>,
    /// VRRP state of every node. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeVrrpState>,
}

/// The VRRP state of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeVrrpState {
    /// Kubernetes node name. Required.
    pub node: String,
    /// VRRP state: `Initialize`, `Backup`, `Master`, or `Fault` (VRRP cannot run there now: no such interface, the interface down, or no address of its own on it; retried every second). Required.
    pub state: String,
    /// Current effective priority. Required.
    pub priority: i32,
}
