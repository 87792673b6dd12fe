//! `Backend.spec.service`: the ready endpoints of a Service, found the way
//! kube-proxy finds them — the Service port by name or number, then every
//! EndpointSlice labelled with the Service's name, matching that port's name.

use std::net::{IpAddr, SocketAddr};

use fairlead_crds::ServiceRef;
use fairlead_dataplane::config::Server;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Report, Snapshot};

/// Label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The servers of the ready endpoints of `service` in `namespace`, sorted by
/// address, deduplicated; named by their Pod, or `address:port`.
pub(super) fn service_servers(
    namespace: &str,
    service: &ServiceRef,
    snapshot: &Snapshot,
    report: &mut Report,
) -> Vec<Server> {
    let found = snapshot.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata.name.as_deref() == Some(&service.name)
    });
    let Some(found) = found else {
        let message = format!(
            "Service {:?} does not exist in namespace {namespace}",
            service.name
        );
        report.error("spec.service.name", message);
        return Vec::new();
    };
    let ports = found.spec.iter().flat_map(|s| s.ports.iter().flatten());
    let Some(port) = ports.clone().find(|p| port_matches(p, &service.port)) else {
        let wanted = match &service.port {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        };
        let message = format!("Service {:?} has no port {wanted}", service.name);
        report.error("spec.service.port", message);
        return Vec::new();
    };
    let port_name = port.name.as_deref().unwrap_or("");
    let mut slices: Vec<&EndpointSlice> = snapshot
        .endpoint_slices
        .iter()
        .filter(|slice| {
            let labels = slice.metadata.labels.as_ref();
            slice.metadata.namespace.as_deref() == Some(namespace)
                && labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) == Some(&service.name)
        })
        .collect();
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut servers: Vec<Server> = Vec::new();
    for slice in slices {
        let slice_port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name);
        let Some(number) = slice_port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            // Every address of an endpoint is the same Pod; like kube-proxy, use the first.
            let Some(address) = endpoint.addresses.first().filter(|_| ready) else {
                continue;
            };
            let pod = endpoint.target_ref.as_ref().and_then(|r| r.name.clone());
            servers.push(Server::new(
                pod.unwrap_or_default(),
                address.clone(),
                number,
            ));
        }
    }
    servers.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
    servers.dedup_by(|a, b| a.address == b.address && a.port == b.port);
    let mut named: Vec<Server> = Vec::with_capacity(servers.len());
    for server in servers {
        let taken = server.name.is_empty() || named.iter().any(|s| s.name == server.name);
        let name = if taken {
            address_port(&server.address, server.port)
        } else {
            server.name.clone()
        };
        named.push(Server { name, ..server });
    }
    named
}

fn port_matches(port: &ServicePort, wanted: &IntOrString) -> bool {
    match wanted {
        IntOrString::Int(n) => port.port == *n,
        IntOrString::String(name) => port.name.as_deref() == Some(name.as_str()),
    }
}

/// `10.0.0.1:80`, or `[fd00::1]:80` for IPv6.
pub(super) fn address_port(address: &str, port: u16) -> String {
    match address.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{address}:{port}"),
    }
}
