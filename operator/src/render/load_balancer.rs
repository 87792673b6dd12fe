//! Services of type LoadBalancer -> per Service one virtual IP (its own
//! virtual router, node priorities from [`spread`]) and, per TCP port, a
//! tcp frontend on the address relaying to a backend of the Service's
//! ready endpoints. Decisions come from [`crate::load_balancer`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use fairlead_crds::{AddressPool, PeerMode, ServiceRef, duration, validate};
use fairlead_dataplane::config;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::frontend::binds_conflict;
use super::virtual_ip::unicast_peers;
use super::{DataplaneNode, RenderError, Report, Snapshot, endpoints, object_key};
use crate::load_balancer::{
    self, Allocation, PROXY_PROTOCOL_ANNOTATION, Refusal, allocate, spread, vrid,
};

/// Default advertisement interval of a pool's virtual IPs.
const ADVERT_INTERVAL_MS: u64 = 100;

/// What became of one served Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceOutcome {
    /// The address to show in `status.loadBalancer.ingress`; `None`: none.
    pub address: Option<IpAddr>,
    /// The address given, also when not shown (no dataplane node yet).
    pub allocated: Option<Allocation>,
    /// The virtual IP's name in the config (for its VRRP state).
    pub virtual_ip: String,
    /// Its virtual router ID.
    pub vrid: Option<u8>,
    /// Its nodes, master first by the spread.
    pub nodes: Vec<String>,
    /// Each port, with the CamelCase error of one that is not served.
    pub ports: Vec<(u16, String, Option<String>)>,
    /// Why it is not served, when it is not.
    pub problem: Option<Refusal>,
    /// A remark for the condition's message (refused ports, avoided IDs).
    pub notes: Vec<String>,
}

/// Everything render adds for Services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancers {
    /// Each served Service's outcome, by `namespace/name`.
    pub services: BTreeMap<String, ServiceOutcome>,
    /// Addresses (allocated, free) per pool.
    pub pools: BTreeMap<String, (u64, u64)>,
}

/// Adds the served Services of `snapshot` to the config parts; `frontends`
/// holds the resources' frontends, whose binds the Services' must not hit.
pub(super) fn render_services(
    snapshot: &Snapshot,
    frontends: &mut Vec<config::Frontend>,
    backends: &mut Vec<config::Backend>,
    virtual_ips: &mut Vec<config::VirtualIp>,
    errors: &mut Vec<RenderError>,
) -> LoadBalancers {
    let settings = &snapshot.load_balancing;
    let (Some(nodes), served) = (snapshot.nodes.as_deref(), served(snapshot)) else {
        return LoadBalancers::default();
    };
    let mut valid_pools: Vec<&AddressPool> = Vec::new();
    for p in &snapshot.address_pools {
        let name = p.metadata.name.as_deref().unwrap_or("");
        let mut report = Report::new(format!("AddressPool {name}"));
        report.field_errors(validate::validate_address_pool(&p.spec));
        if report.is_clean() {
            valid_pools.push(p);
        }
        errors.append(&mut report.errors);
    }
    let pools = load_balancer::pools(&valid_pools.iter().map(|p| (*p).clone()).collect::<Vec<_>>());
    let claims: Vec<_> = (served.iter())
        .map(|s| {
            let key = load_balancer::service_key(s);
            load_balancer::claim(s, settings.previous.get(&key).copied())
        })
        .collect();
    let outcomes = allocate::allocate(&pools, &claims);
    let usage = allocate::usage(&pools, &outcomes);
    let pool_of = |name: &str| {
        valid_pools
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    };
    // Eligible nodes per virtual IP (the pool's node selector), then the spread.
    let mut eligible = BTreeMap::new();
    let mut routers = Vec::new();
    let mut order: Vec<&load_balancer::Claim> = claims.iter().collect();
    order.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
    for claim in &order {
        let Some(Ok(a)) = outcomes.get(&claim.key) else {
            continue;
        };
        let pool = pool_of(&a.pool).expect("allocated from a valid pool");
        let name = load_balancer::virtual_ip_name(&claim.key);
        let selector = pool.spec.node_selector.clone().unwrap_or_default();
        let chosen = (nodes.iter())
            .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
            .map(|n| n.name.clone());
        eligible.insert(name.clone(), chosen.collect::<Vec<_>>());
        routers.push(vrid::Router {
            running: settings.running_vrids.get(&name).copied(),
            link: pool.spec.interface.clone().unwrap_or_default(),
            name,
        });
    }
    let mut reserved: BTreeSet<u8> = (snapshot.virtual_ips.iter())
        .filter_map(|v| u8::try_from(v.spec.virtual_router_id).ok())
        .collect();
    reserved.extend(settings.foreign_vrids.iter().copied());
    let ids = vrid::assign(&routers, &reserved);
    let names: Vec<String> = routers.iter().map(|r| r.name.clone()).collect();
    let node_names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let orders = spread::spread(&names, &node_names, &eligible);
    let mut services = BTreeMap::new();
    for service in &served {
        let key = load_balancer::service_key(service);
        let claim = claims
            .iter()
            .find(|c| c.key == key)
            .expect("one claim per Service");
        let name = load_balancer::virtual_ip_name(&key);
        let mut out = ServiceOutcome {
            address: None,
            allocated: None,
            virtual_ip: name.clone(),
            vrid: None,
            nodes: Vec::new(),
            ports: (claim.ports.iter())
                .map(|(n, p)| (*n, p.clone(), None))
                .collect(),
            problem: None,
            notes: Vec::new(),
        };
        match &outcomes[&key] {
            Err(refusal) => out.problem = Some(refusal.clone()),
            Ok(a) => {
                out.allocated = Some(a.clone());
                out.vrid = ids.get(&name).copied().flatten();
                out.nodes = orders.get(&name).cloned().unwrap_or_default();
                let pool = pool_of(&a.pool).expect("allocated from a valid pool");
                match (out.vrid, out.nodes.is_empty()) {
                    (None, _) => {
                        out.problem = Some(Refusal {
                            reason: "NoFreeVirtualRouterID",
                            message: "every virtual router ID (1-255) on this interface is \
                                      taken: use a pool with another interface"
                                .into(),
                        })
                    }
                    (_, true) => {
                        out.problem = Some(Refusal {
                            reason: "NoDataplaneNode",
                            message: format!(
                                "{} is allocated, but no dataplane node may hold it (AddressPool \
                                 {} nodeSelector, or no dataplane running)",
                                a.address, a.pool
                            ),
                        })
                    }
                    (Some(id), false) => {
                        let mut report = Report::new(object_key("Service", &claim.namespace, ""));
                        let vip =
                            virtual_ip(&name, id, a.address, pool, &out.nodes, nodes, &mut report);
                        if let Some(first) = report.errors.first() {
                            out.problem = Some(Refusal {
                                reason: "InvalidPool",
                                message: format!(
                                    "AddressPool {}: {}: {}",
                                    a.pool, first.field, first.message
                                ),
                            });
                        } else {
                            let added = ports(
                                service, &key, a.address, &name, snapshot, frontends, &mut out,
                            );
                            if added.0.is_empty() {
                                out.problem = Some(Refusal {
                                    reason: "NoServablePort",
                                    message: format!(
                                        "no port can be served: {}",
                                        out.notes.join("; ")
                                    ),
                                });
                            } else {
                                frontends.extend(added.0);
                                backends.extend(added.1);
                                virtual_ips.push(vip);
                                out.address = Some(a.address);
                            }
                        }
                        let heard: Vec<String> =
                            (settings.foreign_vrids.iter()).map(u8::to_string).collect();
                        if !heard.is_empty() {
                            out.notes.push(format!(
                                "virtual router IDs heard from other routers, avoided: {}",
                                heard.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        services.insert(key, out);
    }
    LoadBalancers {
        services,
        pools: usage,
    }
}

/// The Services fairlead serves, sorted by key.
fn served(snapshot: &Snapshot) -> Vec<&Service> {
    let mut served: Vec<&Service> = (snapshot.services.iter())
        .filter(|s| snapshot.load_balancing.serves(s))
        .collect();
    served.sort_by_key(|s| load_balancer::service_key(s));
    served
}

/// The virtual IP of one Service: its own router, priorities by `order`.
fn virtual_ip(
    name: &str,
    id: u8,
    address: IpAddr,
    pool: &AddressPool,
    order: &[String],
    nodes: &[DataplaneNode],
    report: &mut Report,
) -> config::VirtualIp {
    let prefix_len = if address.is_ipv6() { 128 } else { 32 };
    let mut vip = config::VirtualIp::new(
        name,
        id,
        vec![config::VirtualAddress {
            address,
            prefix_len,
        }],
    );
    vip.interface = pool.spec.interface.clone();
    vip.advert_interval_ms = (pool.spec.advert_interval.as_deref())
        .and_then(|d| duration::parse(d).ok())
        .map_or(ADVERT_INTERVAL_MS, |d| d.as_millis() as u64);
    vip.priorities = (order.iter().enumerate())
        .map(|(rank, node)| (node.clone(), spread::priority(rank)))
        .collect();
    vip.default_priority = 1;
    let chosen: BTreeSet<String> = order.iter().cloned().collect();
    if pool.spec.peers.as_ref().and_then(|p| p.mode) == Some(PeerMode::Unicast) {
        vip.unicast_peers =
            unicast_peers(&[], address.is_ipv6(), Some(&chosen), Some(nodes), report);
    }
    vip.nodes = Some(chosen);
    vip
}

/// The frontends and backends of a Service's TCP ports; other protocols and
/// ports whose bind another frontend holds are refused in `out`.
fn ports(
    service: &Service,
    key: &str,
    address: IpAddr,
    vip: &str,
    snapshot: &Snapshot,
    taken: &[config::Frontend],
    out: &mut ServiceOutcome,
) -> (Vec<config::Frontend>, Vec<config::Backend>) {
    let namespace = key.split('/').next().unwrap_or("default");
    let spec = service.spec.clone().unwrap_or_default();
    let balance = match spec.session_affinity.as_deref() {
        Some("ClientIP") => config::Balance::Source,
        _ => config::Balance::Roundrobin,
    };
    let proxy_v2 = (service.metadata.annotations.as_ref())
        .and_then(|a| a.get(PROXY_PROTOCOL_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("v2"));
    let (mut frontends, mut backends) = (Vec::new(), Vec::new());
    for (port, protocol, error) in &mut out.ports {
        if protocol != "TCP" {
            *error = Some("fairlead.io/ProtocolNotSupported".into());
            out.notes.push(format!(
                "port {port}/{protocol} is not served: fairlead relays TCP only"
            ));
            continue;
        }
        let bind = SocketAddr::new(address, *port);
        if let Some(other) = taken
            .iter()
            .chain(&frontends)
            .find(|f| binds_conflict(f.bind, bind))
        {
            *error = Some("fairlead.io/PortInUse".into());
            out.notes.push(format!(
                "port {port}/TCP is not served: {bind} conflicts with {} of {}",
                other.bind, other.name
            ));
            continue;
        }
        let name = format!("{vip}:{port}");
        let mut report = Report::new(String::new());
        let reference = ServiceRef {
            name: service.metadata.name.clone().unwrap_or_default(),
            port: IntOrString::Int(i32::from(*port)),
        };
        let servers = endpoints::service_servers(namespace, &reference, snapshot, &mut report);
        let mut backend = config::Backend::new(&name, config::Mode::Tcp, balance, servers);
        backend.send_proxy_v2 = proxy_v2;
        backends.push(backend);
        let mut frontend = config::Frontend::new(&name, config::Mode::Tcp, bind);
        frontend.virtual_ip = Some(vip.to_string());
        frontend.default_backend = Some(name);
        frontend.x_forwarded_for = false;
        frontends.push(frontend);
    }
    (frontends, backends)
}

#[cfg(test)]
mod tests;
