use serde_json::json;

use super::*;
use crate::render::render;

fn service(name: &str, created: &str, extra: serde_json::Value) -> Service {
    let mut s = json!({
        "metadata": {"name": name, "namespace": "web", "creationTimestamp": created},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "fairlead.io/lb",
            "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    });
    merge(&mut s, extra);
    serde_json::from_value(s).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn slice(service: &str, addresses: &[&str]) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-x"), "namespace": "web",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": addresses.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect::<Vec<_>>()
    }))
    .unwrap()
}

fn pool(addresses: &[&str]) -> AddressPool {
    serde_json::from_value(json!({
        "apiVersion": "fairlead.io/v1alpha1", "kind": "AddressPool",
        "metadata": {"name": "default"},
        "spec": {"addresses": addresses}
    }))
    .unwrap()
}

fn nodes(n: usize) -> Option<Vec<DataplaneNode>> {
    Some(
        (0..n)
            .map(|i| DataplaneNode {
                name: format!("node-{i}"),
                addresses: vec![format!("10.0.0.{}", i + 1).parse().unwrap()],
                labels: Default::default(),
            })
            .collect(),
    )
}

fn snapshot(services: Vec<Service>, pool_addresses: &[&str]) -> Snapshot {
    Snapshot {
        endpoint_slices: vec![slice("a", &["10.1.0.1", "10.1.0.2"])],
        services,
        address_pools: vec![pool(pool_addresses)],
        nodes: nodes(2),
        ..Snapshot::default()
    }
}

#[test]
fn a_service_renders_as_a_virtual_ip_a_tcp_frontend_and_its_endpoints() {
    let s = snapshot(
        vec![service("a", "2026-01-01T00:00:00Z", json!({}))],
        &["192.0.2.10/31"],
    );
    let r = render(&s);
    assert_eq!(r.errors, []);
    let outcome = &r.load_balancers.services["web/a"];
    assert_eq!(outcome.address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(outcome.problem, None);
    let vip = &r.config.virtual_ips[0];
    assert_eq!(vip.name, "service:web/a");
    assert_eq!(Some(vip.vrid), outcome.vrid);
    assert_eq!(vip.addresses[0].prefix_len, 32);
    assert_eq!(vip.advert_interval_ms, 100);
    assert_eq!(vip.priorities.len(), 2);
    assert_eq!(vip.priorities[&outcome.nodes[0]], 250);
    let f = &r.config.frontends[0];
    assert_eq!(
        (f.name.as_str(), f.bind.to_string()),
        ("service:web/a:80", "192.0.2.10:80".into())
    );
    assert_eq!(
        (f.mode, f.virtual_ip.as_deref()),
        (config::Mode::Tcp, Some("service:web/a"))
    );
    let b = &r.config.backends[0];
    let servers: Vec<String> = b
        .servers
        .iter()
        .map(|s| format!("{}:{}", s.address, s.port))
        .collect();
    assert_eq!(servers, ["10.1.0.1:8080", "10.1.0.2:8080"]);
    assert!(!b.send_proxy_v2);
    assert_eq!(r.load_balancers.pools["default"], (1, 1));
}

#[test]
fn other_classes_are_left_alone_unless_unclassed_ones_are_asked_for() {
    let other = service(
        "a",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"loadBalancerClass": "x.io/y"}}),
    );
    let mut none = service("b", "2026-01-01T00:00:00Z", json!({}));
    none.spec.as_mut().unwrap().load_balancer_class = None;
    let cluster_ip = service(
        "c",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"type": "ClusterIP"}}),
    );
    let mut s = snapshot(vec![other, none, cluster_ip], &["192.0.2.10/31"]);
    assert!(render(&s).load_balancers.services.is_empty());
    s.load_balancing.unclassed = true;
    let served: Vec<String> = render(&s).load_balancers.services.into_keys().collect();
    assert_eq!(served, ["web/b"]);
}

#[test]
fn exhaustion_udp_ports_and_proxy_protocol_are_reported() {
    let a = service(
        "a",
        "2026-01-01T00:00:00Z",
        json!({"metadata": {"annotations": {"fairlead.io/proxy-protocol": "v2"}},
               "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                  {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    );
    let b = service("b", "2026-01-02T00:00:00Z", json!({}));
    let r = render(&snapshot(vec![a, b], &["192.0.2.10/32"]));
    let a = &r.load_balancers.services["web/a"];
    assert_eq!(a.address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(
        a.ports[1].2.as_deref(),
        Some("fairlead.io/ProtocolNotSupported")
    );
    assert!(a.notes[0].contains("53/UDP is not served"), "{:?}", a.notes);
    assert!(r.config.backends[0].send_proxy_v2);
    let b = &r.load_balancers.services["web/b"];
    assert_eq!(
        (b.address, b.problem.as_ref().map(|p| p.reason)),
        (None, Some("PoolExhausted"))
    );
    assert_eq!(r.config.frontends.len(), 1);
}

#[test]
fn no_dataplane_node_means_no_address_shown() {
    let mut s = snapshot(
        vec![service("a", "2026-01-01T00:00:00Z", json!({}))],
        &["192.0.2.10/32"],
    );
    s.nodes = Some(Vec::new());
    let r = render(&s);
    let a = &r.load_balancers.services["web/a"];
    assert_eq!(a.address, None);
    assert_eq!(
        a.problem.as_ref().map(|p| p.reason),
        Some("NoDataplaneNode")
    );
    assert!(a.allocated.is_some());
    assert!(r.config.virtual_ips.is_empty());
}

#[test]
fn virtual_router_ids_avoid_virtual_ip_resources_and_foreign_routers() {
    let services = (0..3)
        .map(|i| service(&format!("s{i}"), "2026-01-01T00:00:00Z", json!({})))
        .collect();
    let mut s = snapshot(services, &["192.0.2.0/28"]);
    s.load_balancing.foreign_vrids = (1..=100).collect();
    s.virtual_ips = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "v", "namespace": "web"},
            "spec": {"addresses": ["192.0.2.200/24"], "virtualRouterID": 101}
        }))
        .unwrap(),
    ];
    let r = render(&s);
    let ids: BTreeSet<u8> = r
        .load_balancers
        .services
        .values()
        .map(|o| o.vrid.unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id > 101), "{ids:?}");
    assert!(r.load_balancers.services["web/s0"].notes[0].contains("avoided: 1, 2,"));
}

#[test]
fn a_frontend_resource_holding_the_port_blocks_only_that_port() {
    let mut s = snapshot(
        vec![service("a", "2026-01-01T00:00:00Z", json!({}))],
        &["192.0.2.10/32"],
    );
    s.frontends = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "any", "namespace": "web"},
            "spec": {"mode": "tcp", "bind": {"port": 80}, "defaultBackend": "b"}
        }))
        .unwrap(),
    ];
    s.backends =
        vec![serde_json::from_value(json!({
        "metadata": {"name": "b", "namespace": "web"},
        "spec": {"mode": "tcp", "servers": [{"name": "x", "address": "127.0.0.1", "port": 1}]}
    }))
    .unwrap()];
    let r = render(&s);
    let a = &r.load_balancers.services["web/a"];
    assert_eq!(a.problem.as_ref().map(|p| p.reason), Some("NoServablePort"));
    assert!(
        a.problem
            .as_ref()
            .unwrap()
            .message
            .contains("conflicts with 0.0.0.0:80 of web/any")
    );
}
