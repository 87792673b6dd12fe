use super::*;
use crate::load_balancer::{Allocation, Refusal};

fn now(s: i64) -> Time {
    Time(Timestamp::from_second(s).unwrap())
}

fn served() -> ServiceOutcome {
    ServiceOutcome {
        address: Some("192.0.2.10".parse().unwrap()),
        allocated: Some(Allocation {
            address: "192.0.2.10".parse().unwrap(),
            pool: "default".into(),
        }),
        virtual_ip: "service:web/a".into(),
        vrid: Some(7),
        nodes: vec!["n1".into(), "n2".into()],
        ports: vec![
            (80, "TCP".into(), None),
            (
                53,
                "UDP".into(),
                Some("fairlead.io/ProtocolNotSupported".into()),
            ),
        ],
        problem: None,
        notes: vec!["port 53/UDP is not served: fairlead relays TCP only".into()],
    }
}

#[test]
fn a_served_service_shows_its_address_ports_and_master() {
    let d = desired(&served(), Some("n1"), Some(3), None, &now(100));
    assert_eq!(
        d.status["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.10", "ipMode": "VIP", "ports": [
            {"port": 80, "protocol": "TCP"},
            {"port": 53, "protocol": "UDP", "error": "fairlead.io/ProtocolNotSupported"}]}])
    );
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_str()),
        ("True", "PortsRefused")
    );
    assert!(
        d.condition.message.starts_with(
            "192.0.2.10 from AddressPool default, virtual router 7; master: n1; port 53/UDP"
        ),
        "{}",
        d.condition.message
    );
    // Written back, it is up to date; a new master makes it stale; the
    // transition time stays while the status does not flip.
    let stored: ServiceStatus = serde_json::from_value(d.status.clone()).unwrap();
    assert!(up_to_date(
        Some(&stored),
        &desired(&served(), Some("n1"), Some(3), Some(&stored), &now(200))
    ));
    let moved = desired(&served(), Some("n2"), Some(3), Some(&stored), &now(200));
    assert!(!up_to_date(Some(&stored), &moved));
    assert_eq!(moved.condition.last_transition_time, now(100));
}

#[test]
fn a_refused_service_has_no_ingress_and_says_why() {
    let mut o = served();
    o.address = None;
    o.allocated = None;
    o.problem = Some(Refusal {
        reason: "PoolExhausted",
        message: "every address of AddressPool default is taken".into(),
    });
    let d = desired(&o, None, None, None, &now(1));
    assert_eq!(d.status["loadBalancer"], json!({}));
    assert_eq!(
        (d.condition.status.as_str(), d.condition.reason.as_str()),
        ("False", "PoolExhausted")
    );
}
