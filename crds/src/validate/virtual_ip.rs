//! Validation of `VirtualIPSpec`.

use std::{collections::BTreeSet, time::Duration};

use ipnet::IpNet;

use super::{Errors, FieldError};
use crate::virtual_ip::{PeerMode, VirtualIPSpec};

/// Every problem in a VirtualIP spec; empty when it is valid.
pub fn validate_virtual_ip(spec: &VirtualIPSpec) -> Vec<FieldError> {
    if let Some(problems) = super::out_of_bounds(spec) {
        return problems;
    }
    let mut errors = Errors::default();
    addresses(&mut errors, &spec.addresses);
    if let Some(interface) = &spec.interface
        && (interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']))
    {
        errors.push(
            "spec.interface",
            format!("{interface:?} is not an interface name (1-15 characters, no / or space)"),
        );
    }
    errors.range("spec.virtualRouterID", Some(spec.virtual_router_id), 1, 255);
    errors.range("spec.version", spec.version, 2, 3);
    if let Some(secret) = &spec.auth_secret {
        errors.not_empty("spec.authSecret", secret);
        if spec.version != Some(2) {
            errors.push(
                "spec.authSecret",
                "VRRP authentication exists in version 2 only",
            );
        }
    }
    if spec.version == Some(2) && spec.addresses.iter().any(|a| a.contains(':')) {
        errors.push(
            "spec.version",
            "VRRP version 2 is IPv4 only; IPv6 addresses need version 3",
        );
    }
    advert_interval(&mut errors, spec);
    errors.duration("spec.preemptDelay", spec.preempt_delay.as_ref());
    let mut nodes = BTreeSet::new();
    for (i, p) in spec.priorities.iter().enumerate() {
        errors.not_empty(&format!("spec.priorities[{i}].node"), &p.node);
        errors.range(
            &format!("spec.priorities[{i}].priority"),
            Some(p.priority),
            1,
            255,
        );
        if !nodes.insert(p.node.as_str()) {
            errors.push(
                format!("spec.priorities[{i}].node"),
                format!("{:?} is listed twice", p.node),
            );
        }
    }
    errors.range("spec.defaultPriority", spec.default_priority, 1, 254);
    if let Some(peers) = &spec.peers {
        if peers.mode != Some(PeerMode::Unicast) && !peers.addresses.is_empty() {
            errors.push("spec.peers.addresses", "need spec.peers.mode unicast");
        }
        for (i, address) in peers.addresses.iter().enumerate() {
            errors.ip(&format!("spec.peers.addresses[{i}]"), address);
        }
    }
    if let Some(track) = &spec.track {
        for (i, interface) in track.interfaces.iter().enumerate() {
            errors.not_empty(&format!("spec.track.interfaces[{i}]"), interface);
        }
        errors.range("spec.track.weight", track.weight, -254, 254);
    }
    if let Some(garp) = &spec.gratuitous_arp {
        errors.range("spec.gratuitousArp.count", garp.count, 0, 100);
        errors.duration("spec.gratuitousArp.interval", garp.interval.as_ref());
    }
    errors.into_vec()
}

fn addresses(errors: &mut Errors, addresses: &[String]) {
    if addresses.is_empty() {
        errors.push("spec.addresses", "set at least one address");
    }
    if addresses.len() > 64 {
        errors.push(
            "spec.addresses",
            format!("{} addresses: at most 64", addresses.len()),
        );
    }
    let mut seen = BTreeSet::new();
    let mut families = BTreeSet::new();
    for (i, address) in addresses.iter().enumerate() {
        let field = format!("spec.addresses[{i}]");
        match address.parse::<IpNet>() {
            Ok(net) => {
                families.insert(net.addr().is_ipv4());
                if !seen.insert(net.addr()) {
                    errors.push(field, format!("{address:?} is listed twice"));
                }
            }
            Err(_) => errors.push(
                field,
                format!("{address:?} is not an address with prefix length, e.g. 192.0.2.100/24"),
            ),
        }
    }
    if families.len() > 1 {
        errors.push(
            "spec.addresses",
            "mix IPv4 and IPv6; use one VirtualIP per family",
        );
    }
}

/// Version 3 counts in centiseconds (10ms-40950ms); version 2 in whole seconds (1s-255s).
fn advert_interval(errors: &mut Errors, spec: &VirtualIPSpec) {
    const FIELD: &str = "spec.advertInterval";
    let Some(interval) = errors.duration(FIELD, spec.advert_interval.as_ref()) else {
        return;
    };
    if spec.version == Some(2) {
        let millis = spec
            .advert_interval
            .as_deref()
            .is_some_and(|s| s.contains("ms"));
        if millis || !(1..=255).contains(&interval.as_secs()) || interval.subsec_nanos() != 0 {
            errors.push(
                FIELD,
                "VRRP version 2 needs whole seconds (s, m, h units), 1s to 255s",
            );
        }
    } else if interval < Duration::from_millis(10)
        || interval > Duration::from_millis(40950)
        || interval.as_millis() % 10 != 0
    {
        errors.push(
            FIELD,
            "VRRP version 3 needs 10ms to 40950ms in steps of 10ms",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::messages;
    use crate::virtual_ip::{GratuitousArp, NodePriority, Peers, Track};

    fn spec() -> VirtualIPSpec {
        VirtualIPSpec {
            addresses: vec!["192.0.2.100/24".into()],
            interface: None,
            virtual_router_id: 51,
            advert_interval: None,
            version: None,
            preempt: None,
            preempt_delay: None,
            node_selector: None,
            priorities: vec![],
            default_priority: None,
            peers: None,
            track: None,
            gratuitous_arp: None,
            auth_secret: None,
        }
    }

    fn errors(spec: &VirtualIPSpec) -> Vec<String> {
        messages(&validate_virtual_ip(spec))
    }

    #[test]
    fn minimal_spec_is_valid() {
        assert_eq!(errors(&spec()), Vec::<String>::new());
    }

    #[test]
    fn addresses_are_cidrs_of_one_family() {
        let mut s = spec();
        s.addresses.clear();
        assert_eq!(errors(&s), ["spec.addresses: set at least one address"]);
        s.addresses = vec![
            "192.0.2.100".into(),
            "2001:db8::1/64".into(),
            "192.0.2.101/24".into(),
            "192.0.2.101/32".into(),
        ];
        assert_eq!(
            errors(&s),
            [
                "spec.addresses[0]: \"192.0.2.100\" is not an address with prefix length, e.g. 192.0.2.100/24",
                "spec.addresses[3]: \"192.0.2.101/32\" is listed twice",
                "spec.addresses: mix IPv4 and IPv6; use one VirtualIP per family",
            ]
        );
        s.addresses = (0..65).map(|i| format!("fd00::{i}/64")).collect();
        assert_eq!(errors(&s), ["spec.addresses: 65 addresses: at most 64"]);
        s.addresses.truncate(64);
        assert_eq!(errors(&s), Vec::<String>::new());
        s.version = Some(2);
        s.advert_interval = Some("1s".into());
        assert_eq!(
            errors(&s),
            ["spec.version: VRRP version 2 is IPv4 only; IPv6 addresses need version 3"]
        );
    }

    #[test]
    fn auth_secret_needs_version_2() {
        let mut s = spec();
        s.auth_secret = Some("vrrp".into());
        assert_eq!(
            errors(&s),
            ["spec.authSecret: VRRP authentication exists in version 2 only"]
        );
        s.version = Some(2);
        s.advert_interval = Some("1s".into());
        assert_eq!(errors(&s), Vec::<String>::new());
    }

    #[test]
    fn router_id_version_and_interface() {
        let mut s = spec();
        s.virtual_router_id = 0;
        s.version = Some(4);
        s.interface = Some("a-very-long-interface".into());
        assert_eq!(errors(&s).len(), 3, "{:?}", errors(&s));
    }

    #[test]
    fn advert_interval_depends_on_the_version() {
        let mut s = spec();
        for (version, interval, ok) in [
            (None, "10ms", true),
            (None, "5ms", false),
            (None, "15ms", false),
            (Some(3), "40s", true),
            (Some(3), "41s", false),
            (Some(2), "1s", true),
            (Some(2), "4m15s", true),
            (Some(2), "500ms", false),
            (Some(2), "1000ms", false),
            (Some(2), "0s", false),
            (Some(2), "5m", false),
        ] {
            s.version = version;
            s.advert_interval = Some(interval.into());
            assert_eq!(
                errors(&s).is_empty(),
                ok,
                "{version:?} {interval}: {:?}",
                errors(&s)
            );
        }
    }

    #[test]
    fn priorities_peers_track_and_garp() {
        let mut s = spec();
        s.priorities = vec![
            NodePriority {
                node: "lb-1".into(),
                priority: 101,
            },
            NodePriority {
                node: "lb-1".into(),
                priority: 256,
            },
        ];
        s.default_priority = Some(255);
        s.peers = Some(Peers {
            mode: None,
            addresses: vec!["10.0.0.1".into(), "lb-2".into()],
        });
        s.track = Some(Track {
            weight: Some(-255),
            ..Default::default()
        });
        s.gratuitous_arp = Some(GratuitousArp {
            count: Some(101),
            interval: Some("100".into()),
        });
        let errors = errors(&s);
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.priorities[1].priority",
                "spec.priorities[1].node",
                "spec.defaultPriority",
                "spec.peers.addresses",
                "spec.peers.addresses[1]",
                "spec.track.weight",
                "spec.gratuitousArp.count",
                "spec.gratuitousArp.interval",
            ],
            "{errors:#?}"
        );
    }
}
