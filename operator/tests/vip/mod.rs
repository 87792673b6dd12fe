//! The VRRP tests' fairlead side: manifests with a VirtualIP 10.88.0.100/24
//! (or fd88::100/64) and a tcp frontend on it relaying to the node's name
//! server on 127.0.0.1:9000, and `fairlead run` on a node of a [`Lab`].

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common;
use crate::netns::{Lab, Proc, write};

pub const VIP: &str = "10.88.0.100";
pub const VIP6: &str = "fd88::100";

/// Writes the manifests into a scratch folder `name`; `vip_spec` is the
/// VirtualIP's spec after its addresses and VRID (indented two spaces).
pub fn manifests(name: &str, vip_spec: &str, backend_extra: &str) -> PathBuf {
    manifests_for(name, &format!("{VIP}/24"), vip_spec, backend_extra)
}

/// [`manifests`] with another virtual address (`address/prefix`).
pub fn manifests_for(name: &str, address: &str, vip_spec: &str, backend_extra: &str) -> PathBuf {
    let dir = common::scratch(name);
    write(
        &dir,
        "vip.yaml",
        &format!(
            "apiVersion: fairlead.io/v1alpha1
kind: VirtualIP
metadata: {{name: vip}}
spec:
  addresses: [\"{address}\"]
  virtualRouterID: 51
{vip_spec}---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web}}
spec:
  mode: tcp
  bind: {{virtualIP: vip, port: 80}}
  defaultBackend: local
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: local}}
spec:
  mode: tcp
  servers: [{{name: s, address: 127.0.0.1, port: 9000}}]
{backend_extra}"
        ),
    );
    dir
}

/// `fairlead run` (the binary `fairlead`) on node `i`, named `n{i}`, once
/// its VRRP instance started.
pub fn start(fairlead: &str, lab: &Lab, i: usize, dir: &Path) -> Proc {
    let mut p = spawn(fairlead, lab, i, dir);
    p.wait_for("to=Backup", Duration::from_secs(10));
    p
}

/// `fairlead run` (the binary `fairlead`) on node `i`, named `n{i}`, just started.
pub fn spawn(fairlead: &str, lab: &Lab, i: usize, dir: &Path) -> Proc {
    lab.spawn(
        &lab.node(i),
        fairlead,
        &[
            "run",
            "-f",
            dir.to_str().unwrap(),
            "--node-name",
            &format!("n{i}"),
            "--threads",
            "1",
            // A client connection caught by the move of the address would
            // hold a graceful stop for the default 10 s.
            "--shutdown-grace",
            "1s",
        ],
        &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
    )
}
