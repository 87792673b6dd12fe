//! The CRDs from deploy/ in a real API server: they install, the examples are
//! accepted, and the schema and CEL rules reject invalid objects with a clear message.

use fairlead_e2e::{CRD_NAMES, Cluster, Kubectl, repo_path};

#[test]
fn the_crds_install_and_become_established() {
    let cluster = Cluster::shared();
    cluster.install_crds().unwrap();
    for crd in CRD_NAMES {
        let established = cluster
            .kubectl_ok([
                "get",
                "crd",
                crd,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ])
            .unwrap();
        assert_eq!(established, "True", "{crd}");
    }
    let kinds = cluster
        .kubectl_ok(["api-resources", "--api-group=fairlead.io", "-o", "name"])
        .unwrap();
    let mut kinds: Vec<&str> = kinds.lines().collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "addresspools.fairlead.io",
            "backends.fairlead.io",
            "frontends.fairlead.io",
            "virtualips.fairlead.io"
        ]
    );
}

#[test]
fn the_examples_are_accepted() {
    let cluster = Cluster::shared();
    cluster.install_crds().unwrap();
    let ns = cluster.fresh_namespace("examples").unwrap();
    let examples = repo_path("deploy/examples");
    cluster
        .kubectl_ok(["apply", "-n", &ns, "-f", &examples.to_string_lossy()])
        .unwrap();
    let names = cluster
        .kubectl_ok(["get", "fairlead", "-n", &ns, "-o", "name"])
        .unwrap();
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "backend.fairlead.io/app",
            "backend.fairlead.io/tcp-app",
            "frontend.fairlead.io/http-in",
            "frontend.fairlead.io/https-in",
            "frontend.fairlead.io/tcp-in",
        ]
    );
}

/// Creates `manifest` in `ns` and returns the API server's refusal (kubectl's stderr).
fn rejection(cluster: &Cluster, ns: &str, manifest: &str) -> String {
    let out = cluster
        .kubectl_stdin(["create", "-n", ns, "-f", "-"], manifest)
        .unwrap();
    assert!(!out.status.success(), "accepted:\n{manifest}");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[test]
fn invalid_objects_are_rejected_with_the_rule_that_failed() {
    let cluster = Cluster::shared();
    cluster.install_crds().unwrap();
    let ns = cluster.fresh_namespace("invalid").unwrap();
    let cases = [
        (
            "a Backend with neither servers nor service",
            "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {name: empty}\nspec: {mode: http}\n",
            "The Backend \"empty\" is invalid: spec: Invalid value: spec: set servers, service or both",
        ),
        (
            "a Backend balancing by uri in tcp mode",
            "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {name: uri-tcp}\n\
             spec: {mode: tcp, balance: uri, servers: [{name: a, address: 127.0.0.1, port: 80}]}\n",
            "The Backend \"uri-tcp\" is invalid: spec: Invalid value: spec.balance uri needs spec.mode http",
        ),
        (
            "a Frontend binding both an address and a VirtualIP",
            "apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {name: both}\n\
             spec: {bind: {address: 127.0.0.1, virtualIP: vip1, port: 80}, defaultBackend: app}\n",
            "The Frontend \"both\" is invalid: spec.bind: Invalid value: bind: address and virtualIP are mutually exclusive",
        ),
        (
            "a Frontend request rule with two actions",
            "apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {name: two-actions}\n\
             spec: {bind: {port: 80}, defaultBackend: app, requestRules: [{deny: {}, useBackend: other}]}\n",
            "The Frontend \"two-actions\" is invalid: spec.requestRules[0]: Invalid value: requestRules: set exactly one action of redirect, setHeader, addHeader, removeHeader, replaceHeaderValue, deny, useBackend",
        ),
        (
            "TLS passthrough in http mode",
            "apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {name: passthrough-http}\n\
             spec: {mode: http, bind: {port: 443}, tls: {mode: passthrough}, defaultBackend: app}\n",
            "The Frontend \"passthrough-http\" is invalid: spec: Invalid value: spec.tls.mode passthrough needs spec.mode tcp",
        ),
        (
            "a VirtualIP with virtualRouterID 0",
            "apiVersion: fairlead.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: vrid0}\n\
             spec: {addresses: [192.0.2.10/24], virtualRouterID: 0}\n",
            "The VirtualIP \"vrid0\" is invalid: spec.virtualRouterID: Invalid value: 0: spec.virtualRouterID in body should be greater than or equal to 1",
        ),
        (
            "an IPv6 VirtualIP with VRRPv2",
            "apiVersion: fairlead.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: v2-ipv6}\n\
             spec: {addresses: [\"fd00::10/64\"], virtualRouterID: 5, version: 2, advertInterval: 1s}\n",
            "The VirtualIP \"v2-ipv6\" is invalid: spec: Invalid value: spec.version: VRRP version 2 is IPv4 only; IPv6 addresses need version 3",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, manifest, expected) in cases {
        let got = rejection(cluster, &ns, manifest);
        if got != expected {
            wrong.push(format!(
                "{what}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let stored = cluster
        .kubectl_ok(["get", "fairlead", "-n", &ns, "-o", "name"])
        .unwrap();
    assert_eq!(stored, "", "nothing invalid was stored");
}

#[test]
fn strings_and_lists_over_their_bounds_are_rejected() {
    let cluster = Cluster::shared();
    cluster.install_crds().unwrap();
    let ns = cluster.fresh_namespace("bounds").unwrap();
    let long_host = "h".repeat(254);
    let long_path = format!("/{}", "p".repeat(2048));
    let servers: Vec<String> = (0..10_001)
        .map(|i| format!("{{name: s{i}, address: 10.0.0.1, port: 80}}"))
        .collect();
    let cases = [
        (
            format!(
                "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {{name: long-address}}\n\
                 spec: {{servers: [{{name: a, address: {long_host}, port: 80}}]}}\n"
            ),
            "spec.servers[0].address: Too long: may not be more than 253 bytes",
        ),
        (
            format!(
                "apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {{name: long-path}}\n\
                 spec: {{bind: {{port: 80}}, defaultBackend: app, routes: [{{match: {{pathPrefix: {long_path}}}, backend: app}}]}}\n"
            ),
            "spec.routes[0].match.pathPrefix: Too long: may not be more than 2048 bytes",
        ),
        (
            format!(
                "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {{name: many-servers}}\n\
                 spec: {{servers: [{}]}}\n",
                servers.join(", ")
            ),
            "spec.servers: Too many: 10001: must have at most 10000 items",
        ),
    ];
    for (manifest, expected) in cases {
        let got = rejection(cluster, &ns, &manifest);
        assert!(got.contains(expected), "expected {expected:?} in:\n{got}");
    }
}
