//! Dataplane Pods registered by the harness look running and Ready to the API.

use std::net::Ipv4Addr;

use fairlead_e2e::{Cluster, DATAPLANE_LABEL, Kubectl};

#[test]
fn a_registered_dataplane_pod_has_its_ip_and_is_ready() {
    let cluster = Cluster::shared();
    let ns = cluster.fresh_namespace("pods").unwrap();
    cluster
        .register_dataplane_pod(
            &ns,
            "dataplane-a",
            "node-a",
            Ipv4Addr::new(127, 0, 0, 21),
            9443,
        )
        .unwrap();

    let get = |path: &str| {
        cluster
            .kubectl_ok([
                "get",
                "pod",
                "dataplane-a",
                "-n",
                &ns,
                "-o",
                &format!("jsonpath={{{path}}}"),
            ])
            .unwrap()
    };
    assert_eq!(get(".status.podIP"), "127.0.0.21");
    assert_eq!(get(".status.phase"), "Running");
    assert_eq!(get(".spec.nodeName"), "node-a");
    assert_eq!(
        get(".spec.containers[0].ports[?(@.name==\"admin\")].containerPort"),
        "9443"
    );
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Ready",
            "--timeout=10s",
            "pod/dataplane-a",
            "-n",
            &ns,
        ])
        .unwrap();

    let selector = format!("{}={}", DATAPLANE_LABEL.0, DATAPLANE_LABEL.1);
    let selected = cluster
        .kubectl_ok(["get", "pods", "-n", &ns, "-l", &selector, "-o", "name"])
        .unwrap();
    assert_eq!(selected.trim(), "pod/dataplane-a");
    let node_ip = cluster
        .kubectl_ok([
            "get",
            "node",
            "node-a",
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ])
        .unwrap();
    assert_eq!(node_ip, "127.0.0.21");
}

#[test]
fn readiness_can_be_taken_away_and_given_back() {
    let cluster = Cluster::shared();
    let ns = cluster.fresh_namespace("ready").unwrap();
    cluster
        .register_dataplane_pod(
            &ns,
            "dataplane-b",
            "node-b",
            Ipv4Addr::new(127, 0, 0, 22),
            9443,
        )
        .unwrap();
    // A second pod on the same node: the Node is left as it is.
    cluster
        .register_dataplane_pod(
            &ns,
            "dataplane-c",
            "node-b",
            Ipv4Addr::new(127, 0, 0, 22),
            9444,
        )
        .unwrap();

    cluster.set_pod_ready(&ns, "dataplane-b", false).unwrap();
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Ready=false",
            "--timeout=10s",
            "pod/dataplane-b",
            "-n",
            &ns,
        ])
        .unwrap();
    // The other pod and the rest of the status are untouched.
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Ready",
            "--timeout=10s",
            "pod/dataplane-c",
            "-n",
            &ns,
        ])
        .unwrap();
    let ip = cluster
        .kubectl_ok([
            "get",
            "pod",
            "dataplane-b",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .unwrap();
    assert_eq!(ip, "127.0.0.22");

    cluster.set_pod_ready(&ns, "dataplane-b", true).unwrap();
    cluster
        .kubectl_ok([
            "wait",
            "--for=condition=Ready",
            "--timeout=10s",
            "pod/dataplane-b",
            "-n",
            &ns,
        ])
        .unwrap();
}
