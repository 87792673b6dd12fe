//! The Kubernetes API of fairlead: the `Frontend`, `Backend`, `VirtualIP` and
//! `AddressPool` custom resources (group `fairlead.io`, version `v1alpha1`), their validation,
//! and the CRD manifests generated from them.
//!
//! Every optional field documents its default. Defaults are applied when the
//! operator renders a configuration, not by the API server, so an object reads
//! back exactly as it was written.
//!
//! Validation has two layers that agree: the CRD schema with CEL rules (enforced
//! by the API server) and [`validate`] (enforced by the operator and by the
//! standalone `check` command), which also checks what CEL cannot, such as
//! whether a regex compiles or a duration parses.
#![forbid(unsafe_code)]

pub mod address_pool;
pub mod backend;
pub mod bounds;
pub mod duration;
pub mod frontend;
pub mod rules;
pub mod validate;

pub mod virtual_ip;

use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use address_pool::{AddressPool, AddressPoolSpec, AddressRange};
pub use backend::{
    Backend, BackendSpec, BackendStatus, BackendTimeouts, BackendTls, Balance, HealthCheck,
    HttpCheck, ServerStatus, ServiceRef, StaticServer,
};
pub use frontend::{
    Bind, CertificateRef, ForwardedHeaders, Frontend, FrontendSpec, FrontendStatus,
    FrontendTimeouts, FrontendTls, LogFormat, Logging, Route, RouteMatch, Stats, Syslog,
    SyslogFormat, TlsMode,
};
pub use rules::{
    Deny, HeaderMatch, HeaderName, HeaderValue, Predicate, Redirect, ReplaceHeaderValue,
    RequestRule, ResponseRule, RuleCondition,
};
pub use validate::{
    FieldError, validate_address_pool, validate_backend, validate_frontend, validate_virtual_ip,
};
pub use virtual_ip::{
    GratuitousArp, NodePriority, NodeVrrpState, PeerMode, Peers, Track, VirtualIP, VirtualIPSpec,
    VirtualIPStatus,
};

/// The API group of every fairlead resource.
pub const GROUP: &str = "fairlead.io";
/// The API version of every fairlead resource.
pub const VERSION: &str = "v1alpha1";

/// How traffic is proxied: as a byte stream (`tcp`) or as HTTP requests (`http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum Mode {
    /// Layer 4: bytes are forwarded as they come (`mode tcp`).
    Tcp,
    /// Layer 7: requests are parsed, routed and rewritten (`mode http`).
    Http,
}

/// Schema transform for the string enums: drops the enum's own description,
/// which would otherwise replace that of the optional field using it (the one
/// that states the default).
pub(crate) fn described_by_field(schema: &mut schemars::Schema) {
    schema.remove("description");
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration string is not of the form `10s`, `1m30s`, `100ms`, `1h`.
    #[error("{input:?} is not a duration ({reason}); write e.g. 10s, 1m30s, 100ms or 1h")]
    InvalidDuration {
        /// The string that failed to parse.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CRDs as one multi-document YAML stream (`---` between documents),
/// in a stable order: Frontend, Backend, VirtualIP, AddressPool.
///
/// This is what `crdgen` prints and what `deploy/crds/fairlead.io_crds.yaml` holds.
pub fn crds_yaml() -> String {
    let crds = [
        Frontend::crd(),
        Backend::crd(),
        VirtualIP::crd(),
        AddressPool::crd(),
    ];
    crds.into_iter()
        .map(bounded)
        .map(|crd| serde_saphyr::to_string(&crd).expect("a CRD always serializes to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

type Crd =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// `crd` with every string and list of its specs bounded ([`bounds`]).
fn bounded(crd: Crd) -> Crd {
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        bounds::bound_schema(spec);
    }
    serde_json::from_value(value).expect("bounds keep a CRD valid")
}
