//! VirtualIP -> the dataplane's virtual IP: one entry serves every node, each
//! dataplane picks its own priority by node name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use fairlead_crds::{PeerMode, VirtualIP};
use fairlead_dataplane::config;

use super::tls::{find_secret, secret_text};
use super::{DataplaneNode, Report, Snapshot, millis, names};

const ADVERT_INTERVAL: &str = "1s";
const GARP_INTERVAL: &str = "100ms";

/// The virtual IP of one valid VirtualIP; the snapshot's nodes are the known
/// dataplanes (`None` in standalone mode, where no node labels or addresses
/// are known).
pub(super) fn render_virtual_ip(
    key: &str,
    vip: &VirtualIP,
    snapshot: &Snapshot,
    report: &mut Report,
) -> config::VirtualIp {
    let spec = &vip.spec;
    let nodes = snapshot.nodes.as_deref();
    let mut addresses = Vec::new();
    for (i, text) in spec.addresses.iter().enumerate() {
        // validate_virtual_ip has checked the CIDR syntax.
        let Some((ip, prefix)) = text.split_once('/') else {
            continue;
        };
        match (ip.parse::<IpAddr>(), prefix.parse::<u8>()) {
            (Ok(address), Ok(prefix_len)) => addresses.push(config::VirtualAddress {
                address,
                prefix_len,
            }),
            _ => report.error(
                format!("spec.addresses[{i}]"),
                format!("{text:?} is not an address/prefix"),
            ),
        }
    }
    // validate_virtual_ip has checked every range.
    let mut out = config::VirtualIp::new(key, spec.virtual_router_id as u8, addresses);
    out.version = spec.version.map_or(3, |v| v as u8);
    out.interface = spec.interface.clone();
    out.advert_interval_ms = millis(
        report,
        "spec.advertInterval",
        spec.advert_interval.as_deref().unwrap_or(ADVERT_INTERVAL),
    );
    out.preempt = spec.preempt.unwrap_or(true);
    out.preempt_delay_ms = spec
        .preempt_delay
        .as_deref()
        .map_or(0, |d| millis(report, "spec.preemptDelay", d));
    out.priorities = (spec.priorities.iter())
        .map(|p| (p.node.clone(), p.priority as u8))
        .collect::<BTreeMap<_, _>>();
    if let Some(p) = spec.default_priority {
        out.default_priority = p as u8;
    }
    if let Some(selector) = &spec.node_selector {
        match nodes {
            Some(nodes) => {
                let chosen = nodes
                    .iter()
                    .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
                    .map(|n| n.name.clone());
                out.nodes = Some(chosen.collect::<BTreeSet<_>>());
            }
            None => report.error(
                "spec.nodeSelector",
                "standalone mode knows no node labels: leave it out, or run the operator",
            ),
        }
    }
    if let Some(peers) = &spec.peers
        && peers.mode == Some(PeerMode::Unicast)
    {
        let ipv6 = out.addresses.first().is_some_and(|a| a.address.is_ipv6());
        out.unicast_peers =
            unicast_peers(&peers.addresses, ipv6, out.nodes.as_ref(), nodes, report);
    }
    if let Some(track) = &spec.track {
        out.track.frontends = track.frontends.unwrap_or(true);
        out.track.interfaces = track.interfaces.clone();
        if let Some(w) = track.weight {
            out.track.weight = w;
        }
    }
    if let Some(name) = &spec.auth_secret {
        let (namespace, _) = names(&vip.metadata);
        out.auth_password = password(namespace, name, snapshot)
            .map_err(|e| report.error("spec.authSecret", e))
            .ok();
    }
    if let Some(garp) = &spec.gratuitous_arp {
        if let Some(count) = garp.count {
            out.garp_count = count as u32;
        }
        out.garp_interval_ms = millis(
            report,
            "spec.gratuitousArp.interval",
            garp.interval.as_deref().unwrap_or(GARP_INTERVAL),
        );
    }
    out
}

/// The `password` of Secret `name`: 1-8 bytes, as VRRPv2 carries it.
fn password(namespace: &str, name: &str, snapshot: &Snapshot) -> Result<String, String> {
    let secret = find_secret(namespace, name, snapshot)?;
    let password = secret_text(secret, "password")
        .ok_or_else(|| format!("Secret {namespace}/{name} has no password"))?;
    if (1..=8).contains(&password.len()) {
        Ok(password)
    } else {
        Err(format!(
            "Secret {namespace}/{name}: password has {} bytes; VRRPv2 carries 1-8",
            password.len()
        ))
    }
}

/// The listed peers, or else every known dataplane that takes part; of the
/// virtual addresses' family (`ipv6`).
pub(super) fn unicast_peers(
    listed: &[String],
    ipv6: bool,
    chosen: Option<&BTreeSet<String>>,
    nodes: Option<&[DataplaneNode]>,
    report: &mut Report,
) -> Vec<IpAddr> {
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    if !listed.is_empty() {
        let mut peers = Vec::new();
        for (i, text) in listed.iter().enumerate() {
            match text.parse::<IpAddr>() {
                Ok(a) if a.is_ipv6() == ipv6 => peers.push(a),
                _ => report.error(
                    format!("spec.peers.addresses[{i}]"),
                    format!("{text:?} is not an {family} address, as spec.addresses are"),
                ),
            }
        }
        return peers;
    }
    let Some(nodes) = nodes else {
        report.error(
            "spec.peers.addresses",
            "standalone mode does not know the other nodes: list their addresses",
        );
        return Vec::new();
    };
    let taking_part: Vec<_> = (nodes.iter())
        .filter(|n| chosen.is_none_or(|c| c.contains(&n.name)))
        .collect();
    let mut peers: Vec<IpAddr> = (taking_part.iter())
        .filter_map(|n| n.addresses.iter().find(|a| a.is_ipv6() == ipv6).copied())
        .collect();
    peers.sort();
    peers.dedup();
    if peers.is_empty() && !taking_part.is_empty() {
        report.error(
            "spec.peers.addresses",
            format!("no dataplane node has an {family} address: list the peers' addresses"),
        );
    }
    peers
}
