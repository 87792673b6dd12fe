//! Validation of `AddressPoolSpec`.

use super::{Errors, FieldError};
use crate::address_pool::{AddressPoolSpec, AddressRange};
use crate::virtual_ip::PeerMode;

/// Every problem in an AddressPool spec; empty when it is valid.
pub fn validate_address_pool(spec: &AddressPoolSpec) -> Vec<FieldError> {
    if let Some(problems) = super::out_of_bounds(spec) {
        return problems;
    }
    let mut errors = Errors::default();
    if spec.addresses.is_empty() {
        errors.push("spec.addresses", "set at least one CIDR or range");
    }
    errors.max_items("spec.addresses", spec.addresses.len(), 64);
    let mut ranges: Vec<(usize, AddressRange)> = Vec::new();
    for (i, text) in spec.addresses.iter().enumerate() {
        match AddressRange::parse(text) {
            Ok(range) => {
                if let Some((j, _)) = (ranges.iter())
                    .find(|(_, r)| r.contains(range.first) || range.contains(r.first))
                {
                    errors.push(
                        format!("spec.addresses[{i}]"),
                        format!("{text:?} overlaps spec.addresses[{j}]"),
                    );
                }
                ranges.push((i, range));
            }
            Err(e) => errors.push(format!("spec.addresses[{i}]"), e),
        }
    }
    if let Some(interface) = &spec.interface
        && (interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']))
    {
        errors.push(
            "spec.interface",
            format!("{interface:?} is not an interface name (1-15 characters, no / or space)"),
        );
    }
    if let Some(d) = errors.duration("spec.advertInterval", spec.advert_interval.as_ref()) {
        let ms = d.as_millis();
        if !(10..=40_950).contains(&ms) || ms % 10 != 0 {
            errors.push(
                "spec.advertInterval",
                "must be 10ms-40950ms in whole centiseconds (VRRPv3)",
            );
        }
    }
    for (i, ns) in spec.namespaces.iter().enumerate() {
        errors.not_empty(&format!("spec.namespaces[{i}]"), ns);
    }
    if let Some(peers) = &spec.peers
        && !peers.addresses.is_empty()
    {
        let message = if peers.mode == Some(PeerMode::Unicast) {
            "a pool's peers are the dataplane nodes; list none"
        } else {
            "need spec.peers.mode unicast"
        };
        errors.push("spec.peers.addresses", message);
    }
    errors.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::messages;

    fn spec(addresses: &[&str]) -> AddressPoolSpec {
        AddressPoolSpec {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ..AddressPoolSpec::default()
        }
    }

    #[test]
    fn valid_pools_pass() {
        assert_eq!(
            validate_address_pool(&spec(&["192.0.2.0/28", "fd00::10-fd00::20"])),
            vec![]
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut s = spec(&["192.0.2.0/28", "192.0.2.5-192.0.2.30", "10.0.0.1/8"]);
        s.advert_interval = Some("5ms".into());
        let fields = messages(&validate_address_pool(&s));
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert!(fields[0].starts_with("spec.addresses[1]: ") && fields[0].contains("overlaps"));
        assert!(fields[1].starts_with("spec.addresses[2]: ") && fields[1].contains("host bits"));
        assert!(fields[2].starts_with("spec.advertInterval: "));
        assert_eq!(validate_address_pool(&spec(&[])).len(), 1);
    }
}
