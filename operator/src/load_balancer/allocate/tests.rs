use super::*;

fn pool(name: &str, ranges: &[&str]) -> Pool {
    Pool {
        name: name.into(),
        ranges: ranges
            .iter()
            .map(|r| AddressRange::parse(r).unwrap())
            .collect(),
        auto_assign: true,
        ..Pool::default()
    }
}

fn claim(key: &str, created: i64) -> Claim {
    Claim {
        key: key.into(),
        namespace: key.split('/').next().unwrap().into(),
        created,
        ports: vec![(80, "TCP".into())],
        ..Claim::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addresses(outcomes: &Outcomes) -> Vec<(String, String)> {
    (outcomes.iter())
        .map(|(k, o)| {
            let v = match o {
                Ok(a) => a.address.to_string(),
                Err(r) => r.reason.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[test]
fn lowest_free_addresses_in_creation_order_then_exhaustion() {
    let pools = [pool("p", &["192.0.2.10-192.0.2.11"])];
    let claims = [claim("a/c", 3), claim("a/a", 1), claim("a/b", 2)];
    let out = allocate(&pools, &claims);
    assert_eq!(
        addresses(&out),
        [
            ("a/a".into(), "192.0.2.10".into()),
            ("a/b".into(), "192.0.2.11".into()),
            ("a/c".into(), "PoolExhausted".into())
        ]
    );
    assert!(
        out["a/c"]
            .as_ref()
            .unwrap_err()
            .message
            .contains("AddressPool p")
    );
    assert_eq!(usage(&pools, &out)["p"], (2, 0));
}

#[test]
fn addresses_are_stable_across_restarts_from_the_statuses() {
    let pools = [pool("p", &["192.0.2.0/29"])];
    let mut claims: Vec<Claim> = (0..5).map(|i| claim(&format!("n/s{i}"), i)).collect();
    let first = allocate(&pools, &claims);
    // A restarted operator knows only the statuses; s1 was deleted meanwhile
    // and a new, older-named Service arrives: nobody else moves.
    for c in &mut claims {
        c.current = first[&c.key].as_ref().ok().map(|a| a.address);
    }
    claims.remove(1);
    claims.push(claim("n/a-new", 10));
    let second = allocate(&pools, &claims);
    for c in claims.iter().filter(|c| c.current.is_some()) {
        assert_eq!(
            second[&c.key].as_ref().unwrap().address,
            c.current.unwrap(),
            "{}",
            c.key
        );
    }
    // The new one takes the freed lowest address.
    assert_eq!(second["n/a-new"].as_ref().unwrap().address, ip("192.0.2.1"));
    // Claims in another order give the same result.
    claims.reverse();
    assert_eq!(allocate(&pools, &claims), second);
}

#[test]
fn a_requested_address_is_honoured_or_refused_with_the_holder() {
    let pools = [pool("p", &["192.0.2.0/30"])];
    let mut a = claim("n/a", 1);
    a.current = Some(ip("192.0.2.2"));
    let mut b = claim("n/b", 2);
    b.requested = Some(ip("192.0.2.2"));
    let mut c = claim("n/c", 3);
    c.requested = Some(ip("192.0.2.3"));
    let mut d = claim("n/d", 4);
    d.requested = Some(ip("198.51.100.1"));
    let out = allocate(&pools, &[a, b, c, d]);
    assert_eq!(out["n/a"].as_ref().unwrap().address, ip("192.0.2.2"));
    let refused = out["n/b"].as_ref().unwrap_err();
    assert_eq!(refused.reason, "AddressInUse");
    assert!(
        refused.message.contains("Service n/a"),
        "{}",
        refused.message
    );
    assert_eq!(out["n/c"].as_ref().unwrap().address, ip("192.0.2.3"));
    assert_eq!(out["n/d"].as_ref().unwrap_err().reason, "NotInPool");
}

#[test]
fn a_newer_service_never_takes_an_older_ones_address() {
    // Two statuses claim one address (written by hand, say): the older wins,
    // the newer gets another address.
    let pools = [pool("p", &["192.0.2.0/30"])];
    let mut a = claim("n/a", 1);
    a.current = Some(ip("192.0.2.1"));
    let mut b = claim("n/b", 2);
    b.current = Some(ip("192.0.2.1"));
    let out = allocate(&pools, &[b, a]);
    assert_eq!(out["n/a"].as_ref().unwrap().address, ip("192.0.2.1"));
    assert_eq!(out["n/b"].as_ref().unwrap().address, ip("192.0.2.0"));
}

#[test]
fn sharing_needs_one_key_and_other_ports() {
    let pools = [pool("p", &["192.0.2.0/31"])];
    let mut a = claim("n/a", 1);
    a.sharing_key = Some("k".into());
    a.current = Some(ip("192.0.2.0"));
    let mut b = claim("n/b", 2);
    b.sharing_key = Some("k".into());
    b.ports = vec![(53, "UDP".into())];
    let mut c = claim("n/c", 3);
    c.sharing_key = Some("k".into()); // port 80 clashes with a
    let mut d = claim("n/d", 4);
    d.requested = Some(ip("192.0.2.0")); // no key: may not share
    let out = allocate(&pools, &[a, b, c, d]);
    assert_eq!(
        addresses(&out),
        [
            ("n/a".into(), "192.0.2.0".into()),
            ("n/b".into(), "192.0.2.0".into()),
            ("n/c".into(), "192.0.2.1".into()),
            ("n/d".into(), "AddressInUse".into())
        ]
    );
}

#[test]
fn pools_filter_by_namespace_labels_annotation_auto_assign_and_family() {
    let mut only_prod = pool("a-prod", &["192.0.2.0/32"]);
    only_prod.namespaces = vec!["prod".into()];
    let mut labelled = pool("b-web", &["192.0.2.1/32"]);
    labelled.service_selector = [("tier".to_string(), "web".to_string())].into();
    let mut manual = pool("c-manual", &["192.0.2.2/32"]);
    manual.auto_assign = false;
    let v6 = pool("d-v6", &["fd00::10-fd00::11"]);
    let pools = [only_prod, labelled, manual, v6];
    let dev = claim("dev/x", 1);
    let mut web = claim("dev/web", 2);
    web.labels = [("tier".to_string(), "web".to_string())].into();
    let mut named = claim("dev/named", 3);
    named.pool = Some("c-manual".into());
    let mut v6_claim = claim("dev/v6", 4);
    v6_claim.ipv6 = Some(true);
    let mut missing = claim("dev/missing", 5);
    missing.pool = Some("nope".into());
    let mut v4_only = claim("dev/v4", 6);
    v4_only.ipv6 = Some(false);
    let prod = claim("prod/x", 7);
    let out = allocate(&pools, &[dev, web, named, v6_claim, missing, v4_only, prod]);
    assert_eq!(
        addresses(&out),
        [
            ("dev/missing".into(), "PoolNotFound".into()),
            ("dev/named".into(), "192.0.2.2".into()),
            ("dev/v4".into(), "NoMatchingPool".into()),
            ("dev/v6".into(), "fd00::11".into()),
            ("dev/web".into(), "192.0.2.1".into()),
            // dev/x: a-prod and b-web do not serve it, c-manual is manual: IPv6.
            ("dev/x".into(), "fd00::10".into()),
            ("prod/x".into(), "192.0.2.0".into()),
        ]
    );
}

#[test]
fn ipv6_pools_hand_out_addresses_of_huge_ranges_quickly() {
    let pools = [pool("v6", &["fd00::/64"])];
    let claims: Vec<Claim> = (0..300)
        .map(|i| {
            let mut c = claim(&format!("n/s{i:03}"), i);
            c.ipv6 = Some(true);
            c
        })
        .collect();
    let out = allocate(&pools, &claims);
    assert_eq!(out["n/s000"].as_ref().unwrap().address, ip("fd00::"));
    assert_eq!(out["n/s299"].as_ref().unwrap().address, ip("fd00::12b"));
    let (used, free) = usage(&pools, &out)["v6"];
    assert_eq!((used, free), (300, u64::MAX - 299));
}
