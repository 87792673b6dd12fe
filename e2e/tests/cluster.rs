//! The harness's cluster: a real kube-apiserver with RBAC on.

use std::time::{Duration, Instant};

use fairlead_e2e::{Cluster, K8S_VERSION, Kubectl};

#[test]
fn kubectl_reaches_the_api_server_of_the_pinned_release() {
    let cluster = Cluster::shared();
    let namespaces = cluster
        .kubectl_ok(["get", "namespaces", "-o", "name"])
        .unwrap();
    assert!(
        namespaces.lines().any(|l| l == "namespace/default"),
        "{namespaces}"
    );
    let version = cluster.kubectl_ok(["version", "-o", "json"]).unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"], K8S_VERSION,
        "{version}"
    );
    assert_eq!(
        version["clientVersion"]["gitVersion"], K8S_VERSION,
        "{version}"
    );
    assert!(cluster.server_url().starts_with("https://127.0.0.1:"));
    assert!(cluster.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn a_service_account_without_a_role_is_forbidden_and_one_with_a_role_is_allowed() {
    let cluster = Cluster::shared();
    let ns = cluster.fresh_namespace("rbac").unwrap();
    cluster
        .kubectl_ok(["create", "serviceaccount", "reader", "-n", &ns])
        .unwrap();
    let token = cluster
        .kubectl_ok(["create", "token", "reader", "-n", &ns])
        .unwrap();
    let kubeconfig = cluster.kubeconfig_for_token(&token).unwrap();
    let list_pods = || {
        cluster
            .kubectl_as(&kubeconfig, ["get", "pods", "-n", &ns], None)
            .unwrap()
    };

    let denied = list_pods();
    assert!(!denied.status.success());
    assert_eq!(
        String::from_utf8_lossy(&denied.stderr).trim(),
        format!(
            "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:{ns}:reader\" \
             cannot list resource \"pods\" in API group \"\" in the namespace \"{ns}\""
        )
    );

    cluster
        .kubectl_ok([
            "create",
            "role",
            "pod-reader",
            "--verb=list",
            "--resource=pods",
            "-n",
            &ns,
        ])
        .unwrap();
    let subject = format!("--serviceaccount={ns}:reader");
    cluster
        .kubectl_ok([
            "create",
            "rolebinding",
            "reader",
            "--role=pod-reader",
            &subject,
            "-n",
            &ns,
        ])
        .unwrap();
    // The RBAC authorizer sees new bindings through an informer: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = list_pods();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still denied 10 s after the RoleBinding: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_token_the_api_server_did_not_sign_is_unauthorized() {
    let cluster = Cluster::shared();
    let kubeconfig = cluster.kubeconfig_for_token("not-a-token").unwrap();
    let out = cluster
        .kubectl_as(&kubeconfig, ["get", "namespaces"], None)
        .unwrap();
    assert!(!out.status.success());
    // Discovery errors are logged first; the last line is kubectl's verdict on the 401.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim().lines().last(),
        Some(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{stderr}"
    );
}
