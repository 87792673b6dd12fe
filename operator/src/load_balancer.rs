//! Services of type LoadBalancer: which Services fairlead serves, and the
//! pure decisions about them — an address from an [`AddressPool`]
//! ([`allocate`]), a virtual router ID ([`vrid`]) and an order of the
//! dataplane nodes that spreads masters over them ([`spread`]).
//! [`render`](crate::render) turns the result into virtual IPs, tcp
//! frontends and backends; the controller writes it into the Services'
//! status.

pub mod allocate;
pub mod spread;
pub mod vrid;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use fairlead_crds::{AddressPool, AddressRange};
use k8s_openapi::api::core::v1::Service;

pub use allocate::{Allocation, Claim, Pool, Refusal};

/// The `spec.loadBalancerClass` fairlead serves by default.
pub const DEFAULT_CLASS: &str = "fairlead.io/lb";
/// Annotations naming a requested address (fairlead's, then MetalLB's two);
/// the first of the Service's family wins. `spec.loadBalancerIP` also works.
pub const ADDRESS_ANNOTATIONS: [&str; 3] = [
    "fairlead.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// Annotations naming the pool to take an address from.
pub const POOL_ANNOTATIONS: [&str; 3] = [
    "fairlead.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Annotation whose equal values let Services share one address (on different ports).
pub const SHARING_ANNOTATION: &str = "fairlead.io/allow-shared-ip";
/// MetalLB's sharing annotations, honoured too.
const SHARING_ANNOTATIONS: [&str; 3] = [
    SHARING_ANNOTATION,
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// Annotation: `v2` makes the dataplane send a PROXY protocol v2 header to the endpoints.
pub const PROXY_PROTOCOL_ANNOTATION: &str = "fairlead.io/proxy-protocol";
/// The condition fairlead writes on the Services it serves.
pub const CONDITION: &str = "fairlead.io/LoadBalancer";

/// What the operator knows about serving Services, beside the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancing {
    /// Services with this `spec.loadBalancerClass` are served.
    pub class: String,
    /// Also serve Services with no class.
    pub unclassed: bool,
    /// The previous round's addresses, for Services whose status is not written yet.
    pub previous: BTreeMap<String, IpAddr>,
    /// The virtual router ID the dataplanes run for each virtual IP.
    pub running_vrids: BTreeMap<String, u8>,
    /// IDs heard from routers that are not ours: never given out.
    pub foreign_vrids: BTreeSet<u8>,
}

impl Default for LoadBalancing {
    fn default() -> Self {
        LoadBalancing {
            class: DEFAULT_CLASS.into(),
            unclassed: false,
            previous: BTreeMap::new(),
            running_vrids: BTreeMap::new(),
            foreign_vrids: BTreeSet::new(),
        }
    }
}

impl LoadBalancing {
    /// Whether fairlead serves `service`.
    pub fn serves(&self, service: &Service) -> bool {
        let Some(spec) = &service.spec else {
            return false;
        };
        spec.type_.as_deref() == Some("LoadBalancer")
            && match spec.load_balancer_class.as_deref() {
                Some(class) => class == self.class,
                None => self.unclassed,
            }
    }
}

/// How long a virtual router ID the operator configured counts as its own
/// after it left the config: the dataplanes report heard IDs that long.
pub const OWN_VRIDS_FOR: std::time::Duration = std::time::Duration::from_secs(35);

/// The IDs the dataplanes heard that are not ours (`own`): other routers on the link.
pub fn foreign_vrids(heard: impl IntoIterator<Item = u8>, own: &BTreeSet<u8>) -> BTreeSet<u8> {
    heard.into_iter().filter(|id| !own.contains(id)).collect()
}

/// `namespace/name` of a Service.
pub fn service_key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or("default"),
        service.metadata.name.as_deref().unwrap_or("")
    )
}

/// The name of a Service's virtual IP (and the prefix of its frontends and
/// backends) in the dataplane config.
pub fn virtual_ip_name(key: &str) -> String {
    format!("service:{key}")
}

/// The allocator's view of `pools` (invalid entries were reported by render).
pub fn pools(pools: &[AddressPool]) -> Vec<Pool> {
    (pools.iter())
        .map(|p| Pool {
            name: p.metadata.name.clone().unwrap_or_default(),
            ranges: (p.spec.addresses.iter())
                .filter_map(|a| AddressRange::parse(a).ok())
                .collect(),
            auto_assign: p.spec.auto_assign.unwrap_or(true),
            namespaces: p.spec.namespaces.clone(),
            service_selector: p.spec.service_selector.clone().unwrap_or_default(),
        })
        .collect()
}

/// The allocator's view of a served Service; `previous` is used when its
/// status shows no address.
pub fn claim(service: &Service, previous: Option<IpAddr>) -> Claim {
    let meta = &service.metadata;
    let spec = service.spec.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    let annotation = |names: &[&str]| {
        (names.iter())
            .find_map(|n| annotations.get(*n))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let ipv6 = (spec.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(|f| f == "IPv6");
    let requested = (annotation(&ADDRESS_ANNOTATIONS).into_iter())
        .flat_map(|v| {
            v.split(',')
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .chain(spec.load_balancer_ip.clone())
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|a| ipv6.is_none_or(|v6| a.is_ipv6() == v6));
    let status_address = (service.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref()?.ingress.as_ref())
        .into_iter()
        .flatten()
        .find_map(|i| i.ip.as_ref()?.parse::<IpAddr>().ok());
    Claim {
        key: service_key(service),
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        labels: meta.labels.clone().unwrap_or_default(),
        created: (meta.creation_timestamp.as_ref()).map_or(0, |t| t.0.as_second()),
        ipv6,
        requested,
        pool: annotation(&POOL_ANNOTATIONS),
        sharing_key: annotation(&SHARING_ANNOTATIONS),
        ports: (spec.ports.iter().flatten())
            .filter_map(|p| {
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((u16::try_from(p.port).ok()?, protocol))
            })
            .collect(),
        current: status_address.or(previous),
    }
}
