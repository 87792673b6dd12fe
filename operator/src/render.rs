//! Render: the resources and what they reference -> one [`DataplaneConfig`].
//!
//! Pure and deterministic: no I/O, output sorted by name. The operator and
//! the standalone `fairlead` command call the same [`render`]. An invalid
//! object is left out and reported, so one mistake does not hide the rest;
//! a Frontend whose Backend is missing or invalid is left out too.

mod backend;
mod backstop;
mod endpoints;
mod frontend;
mod health;
mod load_balancer;
mod logging;
mod rules;
mod stats;
mod tls;
mod virtual_ip;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use fairlead_crds::{AddressPool, Backend, Frontend, Mode, VirtualIP, duration, validate};
use fairlead_dataplane::config::{self, DataplaneConfig, SCHEMA_VERSION};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use frontend::{BackendModes, binds_conflict};
pub use load_balancer::{LoadBalancers, ServiceOutcome};

/// Namespace of an object that names none.
const DEFAULT_NAMESPACE: &str = "default";

/// Everything render reads: fairlead's resources and the Kubernetes objects
/// they reference. Order does not matter.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Listeners and their routing.
    pub frontends: Vec<Frontend>,
    /// Server pools.
    pub backends: Vec<Backend>,
    /// Virtual IP addresses.
    pub virtual_ips: Vec<VirtualIP>,
    /// Services: those that `Backend.spec.service` names, and those of type
    /// LoadBalancer.
    pub services: Vec<Service>,
    /// Endpoints of those Services.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// TLS material (kubernetes.io/tls Secrets, CA bundles) and credentials.
    pub secrets: Vec<Secret>,
    /// The dataplane nodes, for VirtualIP node selectors and unicast peers;
    /// `None` in standalone mode, which knows no other node.
    pub nodes: Option<Vec<DataplaneNode>>,
    /// Address pools for Services of type LoadBalancer.
    pub address_pools: Vec<AddressPool>,
    /// Which Services are served, and what the last rounds left.
    pub load_balancing: crate::load_balancer::LoadBalancing,
}

/// A node running a dataplane, as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataplaneNode {
    /// Kubernetes node name.
    pub name: String,
    /// The node's addresses, in order of preference (dataplanes use the host
    /// network): the Pod's IPs, then the Node's InternalIPs.
    pub addresses: Vec<IpAddr>,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
}

/// The result of [`render`]: a valid config of every valid object, and why
/// each other object was left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Valid; version 0 (the caller versions it).
    pub config: DataplaneConfig,
    /// Problems, by object; every object named here is left out of `config`.
    pub errors: Vec<RenderError>,
    /// The Services of type LoadBalancer served, and the pools' usage.
    pub load_balancers: LoadBalancers,
}

/// Why an object was left out: `Backend default/app: spec.servers[1].port: 70000 is not a port (1-65535)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError {
    /// `Kind namespace/name`.
    pub object: String,
    /// Field path in the object, such as `spec.servers[1].port`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// How errors and origins name an object: `Backend default/app`.
pub fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// Renders `snapshot` into a dataplane config; see the module docs.
pub fn render(snapshot: &Snapshot) -> Rendered {
    let mut errors = Vec::new();
    let mut backends = Vec::new();
    let mut modes = BackendModes::new();
    for b in sorted(&snapshot.backends, |b| &b.metadata) {
        let (namespace, name) = names(&b.metadata);
        let mut report = Report::new(object_key("Backend", namespace, name));
        report.field_errors(validate::validate_backend(&b.spec));
        let key = format!("{namespace}/{name}");
        let rendered = report
            .is_clean()
            .then(|| {
                let mut rendered =
                    backend::render_backend(&key, namespace, b, snapshot, &mut report);
                rendered.tls = (b.spec.tls.as_ref())
                    .map(|t| tls::backend_tls(namespace, t, snapshot, &mut report));
                rendered
            })
            .filter(|_| report.is_clean());
        modes.insert(key, rendered.as_ref().map(|b| b.mode));
        backends.extend(rendered);
        errors.append(&mut report.errors);
    }
    let mut virtual_ips = BTreeMap::new();
    for v in sorted(&snapshot.virtual_ips, |v| &v.metadata) {
        let (namespace, name) = names(&v.metadata);
        let mut report = Report::new(object_key("VirtualIP", namespace, name));
        report.field_errors(validate::validate_virtual_ip(&v.spec));
        let key = format!("{namespace}/{name}");
        if report.is_clean() {
            let rendered = virtual_ip::render_virtual_ip(&key, v, snapshot, &mut report);
            if report.is_clean() {
                virtual_ips.insert(key, rendered);
            }
        }
        errors.append(&mut report.errors);
    }
    let mut frontends = Vec::new();
    for f in sorted(&snapshot.frontends, |f| &f.metadata) {
        let (namespace, name) = names(&f.metadata);
        let mut report = Report::new(object_key("Frontend", namespace, name));
        report.field_errors(validate::validate_frontend(&f.spec));
        let key = format!("{namespace}/{name}");
        let rendered = report
            .is_clean()
            .then(|| {
                let mut fe = frontend::render_frontend(&key, namespace, f, &modes, &mut report);
                if let Some(vip) = &f.spec.bind.virtual_ip {
                    frontend::bind_virtual_ip(&mut fe, namespace, vip, &virtual_ips, &mut report);
                }
                fe.tls = (f.spec.tls.as_ref())
                    .map(|t| tls::frontend_tls(namespace, t, snapshot, &mut report));
                fe.stats = (f.spec.stats.as_ref())
                    .map(|s| stats::frontend_stats(namespace, s, snapshot, &mut report));
                fe.logging =
                    (f.spec.logging.as_ref()).map(|l| logging::frontend_logging(fe.mode, l));
                fe
            })
            .filter(|_| report.is_clean());
        frontends.extend(rendered);
        errors.append(&mut report.errors);
    }
    remove_bind_conflicts(&mut frontends, &mut errors);
    let mut virtual_ips: Vec<config::VirtualIp> = virtual_ips.into_values().collect();
    let load_balancers = load_balancer::render_services(
        snapshot,
        &mut frontends,
        &mut backends,
        &mut virtual_ips,
        &mut errors,
    );
    let config = DataplaneConfig {
        schema_version: SCHEMA_VERSION,
        version: 0,
        frontends,
        backends,
        virtual_ips,
    };
    let config = backstop::validated(config, &mut errors);
    Rendered {
        config,
        errors,
        load_balancers,
    }
}

/// Leaves out every frontend whose bind conflicts with another's.
fn remove_bind_conflicts(frontends: &mut Vec<config::Frontend>, errors: &mut Vec<RenderError>) {
    let mut conflicting = vec![false; frontends.len()];
    for (i, a) in frontends.iter().enumerate() {
        for b in frontends
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| b)
        {
            if binds_conflict(a.bind, b.bind) {
                conflicting[i] = true;
                errors.push(RenderError {
                    object: format!("Frontend {}", a.name),
                    field: "spec.bind".into(),
                    message: format!(
                        "{} conflicts with {} of Frontend {}",
                        a.bind, b.bind, b.name
                    ),
                });
            }
        }
    }
    let mut flags = conflicting.into_iter();
    frontends.retain(|_| !flags.next().unwrap_or(false));
}

/// Objects sorted by namespace and name.
fn sorted<T>(objects: &[T], meta: impl Fn(&T) -> &ObjectMeta) -> Vec<&T> {
    let mut sorted: Vec<&T> = objects.iter().collect();
    sorted.sort_by(|a, b| names(meta(a)).cmp(&names(meta(b))));
    sorted
}

/// An object's namespace and name.
fn names(meta: &ObjectMeta) -> (&str, &str) {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    (namespace, meta.name.as_deref().unwrap_or(""))
}

/// The rendered mode; http unless set.
fn mode(mode: Option<Mode>) -> config::Mode {
    match mode.unwrap_or(Mode::Http) {
        Mode::Http => config::Mode::Http,
        Mode::Tcp => config::Mode::Tcp,
    }
}

/// A duration field in milliseconds; at least 1ms.
fn millis(report: &mut Report, field: &str, text: &str) -> u64 {
    match duration::parse(text) {
        Ok(d) if d.as_millis() >= 1 => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Ok(_) => {
            report.error(field, format!("{text:?} is shorter than 1ms"));
            1
        }
        Err(e) => {
            report.error(field, e.to_string());
            1
        }
    }
}

/// The problems found with one object.
struct Report {
    object: String,
    errors: Vec<RenderError>,
}

impl Report {
    fn new(object: String) -> Report {
        Report {
            object,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(RenderError {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn field_errors(&mut self, errors: Vec<validate::FieldError>) {
        for e in errors {
            self.error(e.field, e.message);
        }
    }

    fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// A port field, 1-65535.
    fn port(&mut self, field: &str, port: i32) -> u16 {
        match u16::try_from(port) {
            Ok(port) if port > 0 => port,
            _ => {
                self.error(field, format!("{port} is not a port (1-65535)"));
                1
            }
        }
    }
}

#[cfg(test)]
mod tests;
