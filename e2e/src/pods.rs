//! Pod and Node objects standing in for dataplane pods. No kubelet runs, so the
//! harness writes what a kubelet would: the Pod's IP, phase and Ready condition.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Cluster;
use crate::Kubectl;

/// The label the operator selects dataplane pods by.
pub const DATAPLANE_LABEL: (&str, &str) = ("app.kubernetes.io/name", "fairlead-dataplane");
/// Field manager of the harness's server-side applies.
const MANAGER: &str = "fairlead-e2e";

impl Cluster {
    /// Makes `namespace/name` look like a running, Ready dataplane pod on `node`
    /// at `pod_ip` (a 127.0.0.0/8 address a local dataplane process listens on),
    /// with its admin API on `admin_port`: creates the Node if missing (its
    /// InternalIP is `pod_ip`, as for a host-network pod), the Pod (label
    /// `app.kubernetes.io/name=fairlead-dataplane`, hostNetwork, a container port
    /// named `admin`), then sets the Pod's status and checks that it stuck.
    pub fn register_dataplane_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        pod_ip: Ipv4Addr,
        admin_port: u16,
    ) -> anyhow::Result<()> {
        let node_object = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": node, "labels": { "kubernetes.io/hostname": node } },
        });
        self.apply(&node_object)?;
        self.kubectl_ok([
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({ "status": { "addresses": [
                { "type": "InternalIP", "address": pod_ip.to_string() },
                { "type": "Hostname", "address": node },
            ] } })
            .to_string(),
        ])
        .with_context(|| format!("Node {node}: setting status.addresses"))?;

        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": { DATAPLANE_LABEL.0: DATAPLANE_LABEL.1 },
            },
            "spec": {
                "nodeName": node,
                "hostNetwork": true,
                "containers": [{
                    "name": "dataplane",
                    // Never pulled: no kubelet runs; the dataplane is a local process.
                    "image": "fairlead-dataplane:e2e",
                    "ports": [{ "name": "admin", "containerPort": admin_port, "protocol": "TCP" }],
                }],
            },
        });
        self.apply(&pod)?;

        let ip = pod_ip.to_string();
        let status = json!({ "status": {
            "phase": "Running",
            "hostIP": ip,
            "hostIPs": [{ "ip": ip }],
            "podIP": ip,
            "podIPs": [{ "ip": ip }],
            "conditions": conditions(true),
        } });
        self.patch_pod_status(namespace, name, &status)?;
        let seen = self.pod_status(namespace, name)?;
        if seen["podIP"] != json!(ip) || ready_status(&seen) != Some("True") {
            bail!("Pod {namespace}/{name}: status did not stick; it reads {seen}");
        }
        Ok(())
    }

    /// Sets the Ready (and ContainersReady) condition of `namespace/name`, as a
    /// kubelet would when its readiness probe passes or fails, and checks that it stuck.
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) -> anyhow::Result<()> {
        self.patch_pod_status(
            namespace,
            name,
            &json!({ "status": { "conditions": conditions(ready) } }),
        )?;
        let seen = self.pod_status(namespace, name)?;
        let wanted = if ready { "True" } else { "False" };
        if ready_status(&seen) != Some(wanted) {
            bail!("Pod {namespace}/{name}: Ready did not become {wanted}; status reads {seen}");
        }
        Ok(())
    }

    fn apply(&self, object: &Value) -> anyhow::Result<()> {
        let what = format!(
            "{} {}",
            object["kind"].as_str().unwrap_or("object"),
            object["metadata"]["name"].as_str().unwrap_or("?")
        );
        self.kubectl_stdin_ok(
            [
                "apply",
                "--server-side",
                "--field-manager",
                MANAGER,
                "-f",
                "-",
            ],
            &object.to_string(),
        )
        .with_context(|| format!("applying {what}"))?;
        Ok(())
    }

    fn patch_pod_status(&self, namespace: &str, name: &str, patch: &Value) -> anyhow::Result<()> {
        // Strategic merge: conditions merge by type, so other conditions are kept.
        self.kubectl_ok([
            "patch",
            "pod",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=strategic",
            "-p",
            &patch.to_string(),
        ])
        .with_context(|| format!("Pod {namespace}/{name}: patching status"))?;
        Ok(())
    }

    fn pod_status(&self, namespace: &str, name: &str) -> anyhow::Result<Value> {
        let text = self.kubectl_ok(["get", "pod", name, "-n", namespace, "-o", "json"])?;
        let pod: Value = serde_json::from_str(&text)
            .with_context(|| format!("Pod {namespace}/{name}: reading JSON"))?;
        Ok(pod["status"].clone())
    }
}

/// The conditions a kubelet reports for a started pod whose readiness is `ready`.
fn conditions(ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!([
        { "type": "PodScheduled", "status": "True" },
        { "type": "Initialized", "status": "True" },
        { "type": "ContainersReady", "status": ready },
        { "type": "Ready", "status": ready },
    ])
}

fn ready_status(status: &Value) -> Option<&str> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()
}
