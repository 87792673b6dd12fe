//! The `AddressPool` resource: addresses the operator hands out to Services
//! of type LoadBalancer (cluster-scoped, as MetalLB's `IPAddressPool`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::virtual_ip::Peers;

/// Addresses for Services of type LoadBalancer, and how their virtual IPs run.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "fairlead.io",
    version = "v1alpha1",
    kind = "AddressPool",
    doc = "Addresses for Services of type LoadBalancer, and how their virtual IPs run.",
    plural = "addresspools",
    shortname = "pool",
    category = "fairlead",
    printcolumn = r#"{"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"}"#,
    printcolumn = r#"{"name": "Auto", "type": "boolean", "jsonPath": ".spec.autoAssign"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "has(self.addresses) && size(self.addresses) > 0",
    "spec.addresses: set at least one CIDR or range"
))]
#[x_kube(validation = (
    "!has(self.peers) || !has(self.peers.addresses) || size(self.peers.addresses) == 0",
    "spec.peers.addresses: a pool's peers are the dataplane nodes; list none"
))]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolSpec {
    /// CIDRs (`192.0.2.0/28`, `fd00::/120`; every address in it, network and broadcast included) and ranges (`192.0.2.10-192.0.2.20`), IPv4 and IPv6. 1-64 of them.
    #[schemars(
        length(max = 64),
        inner(
            length(max = 100),
            pattern(r"^[0-9a-fA-F:.]+(/[0-9]{1,3}|-[0-9a-fA-F:.]+)$")
        )
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Hand out addresses to Services that request none; with false, only a requested address (`spec.loadBalancerIP` or the annotation) or `fairlead.io/address-pool` takes one from this pool. Default: true.
    pub auto_assign: Option<bool>,
    /// Only Services in these namespaces. Default: every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only Services with all these labels. Default: every Service.
    pub service_selector: Option<BTreeMap<String, String>>,
    /// Labels of the dataplane nodes that may hold the addresses. Default: every node running a dataplane.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Interface to add the addresses to and speak VRRP on; virtual router IDs are unique per interface. Default: the interface whose subnet holds the address.
    #[schemars(length(max = 15))]
    pub interface: Option<String>,
    /// VRRP (version 3) advertisement interval, 10ms-40950ms; a master's death is noticed after about 3 of them. Default: 100ms.
    #[schemars(pattern(crate::duration::PATTERN), length(max = 32))]
    pub advert_interval: Option<String>,
    /// How advertisements reach the other nodes: `mode: unicast` sends them to the other dataplane nodes' addresses. Default: multicast.
    pub peers: Option<Peers>,
}

/// One entry of `spec.addresses`: the first and last address, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AddressRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (same family, not below `first`).
    pub last: IpAddr,
}

impl AddressRange {
    /// Parses `a.b.c.d/len` or `first-last`.
    pub fn parse(text: &str) -> Result<AddressRange, String> {
        if let Some((first, last)) = text.split_once('-') {
            let parse = |s: &str| {
                (s.trim().parse::<IpAddr>()).map_err(|_| format!("{s:?} is not an IP address"))
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if first.is_ipv4() != last.is_ipv4() {
                return Err(format!("{text:?} mixes IPv4 and IPv6"));
            }
            if last < first {
                return Err(format!("{text:?} ends before it starts"));
            }
            return Ok(AddressRange { first, last });
        }
        let net: IpNet = (text.parse())
            .map_err(|_| format!("{text:?} is neither a CIDR (a.b.c.d/n) nor a range (a-b)"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "{text:?} has host bits set; the network is {}",
                net.trunc()
            ));
        }
        Ok(AddressRange {
            first: net.network(),
            last: net.broadcast(),
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4() && self.first <= ip && ip <= self.last
    }

    /// How many addresses the range holds (saturating).
    pub fn len(&self) -> u128 {
        offset(self.last).saturating_sub(offset(self.first)) + 1
    }

    /// A range always holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An address as a number.
pub fn offset(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_ranges_parse() {
        let r = AddressRange::parse("192.0.2.0/30").unwrap();
        assert_eq!(
            (r.first.to_string(), r.last.to_string()),
            ("192.0.2.0".into(), "192.0.2.3".into())
        );
        assert_eq!(r.len(), 4);
        let r = AddressRange::parse("192.0.2.10-192.0.2.20").unwrap();
        assert!(r.contains("192.0.2.20".parse().unwrap()));
        assert!(!r.contains("192.0.2.21".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        assert_eq!(r.len(), 11);
        assert_eq!(AddressRange::parse("fd00::/120").unwrap().len(), 256);
        assert!(
            AddressRange::parse("192.0.2.1/24")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            AddressRange::parse("192.0.2.9-192.0.2.1")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            AddressRange::parse("192.0.2.1-fd00::1")
                .unwrap_err()
                .contains("mixes")
        );
        assert!(AddressRange::parse("nope").is_err());
    }
}
