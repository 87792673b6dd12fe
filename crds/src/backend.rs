//! The `Backend` resource: a pool of servers and how traffic is spread over
//! them (`backend` in haproxy.cfg).

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::Condition, util::intstr::IntOrString};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Mode, duration};

/// How a server is chosen for each new connection or request (`balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum Balance {
    /// Each server in turn, in proportion to its weight.
    Roundrobin,
    /// The server with the fewest active connections.
    Leastconn,
    /// A hash of the client's source address, so a client keeps its server.
    Source,
    /// A hash of the request URI, so a URI keeps its server (http mode).
    Uri,
    /// A random server, weighted.
    Random,
    /// The first server with a free connection slot, in declaration order.
    First,
}

/// A pool of servers that frontends send traffic to.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "fairlead.io",
    version = "v1alpha1",
    kind = "Backend",
    doc = "A pool of servers that frontends send traffic to.",
    namespaced,
    status = "BackendStatus",
    shortname = "be",
    category = "fairlead",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Balance", "type": "string", "jsonPath": ".spec.balance"}"#,
    printcolumn = r#"{"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "(has(self.servers) && size(self.servers) > 0) || has(self.service)",
    "spec: set servers, service or both"
))]
#[x_kube(validation = (
    "!has(self.balance) || self.balance != 'uri' || !has(self.mode) || self.mode == 'http'",
    "spec.balance uri needs spec.mode http"
))]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// Proxy mode, `tcp` or `http`; must match the frontends that use this backend. Default: `http`.
    pub mode: Option<Mode>,
    /// Load-balancing algorithm. Default: `roundrobin`.
    pub balance: Option<Balance>,
    /// Static servers, by address. Default: none. Names are unique within the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<StaticServer>,
    /// A Service in the same namespace whose ready endpoints become servers,
    /// alongside `servers`. Default: none.
    pub service: Option<ServiceRef>,
    /// Active health checks of every server. Default: none (servers are always up).
    pub health_check: Option<HealthCheck>,
    /// TLS towards the servers. Default: none (plain TCP).
    pub tls: Option<BackendTls>,
    /// Connect and server timeouts. Default: connect 10s, server 1m.
    pub timeouts: Option<BackendTimeouts>,
    /// How many times a failed connection attempt is retried, 0-10. Default: 3.
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<i32>,
    /// Whether a retry may go to another server (`option redispatch`). Default: true.
    pub redispatch: Option<bool>,
}

/// One server given by address (`server NAME ADDRESS:PORT ...`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticServer {
    /// Name, unique within the backend; shown in stats, logs and status. Required.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// IP address or DNS name of the server. Required.
    #[schemars(length(min = 1))]
    pub address: String,
    /// TCP port of the server, 1-65535. Required.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Relative share of traffic, 1-256. Default: 1.
    #[schemars(range(min = 1, max = 256))]
    pub weight: Option<i32>,
    /// Only used when every non-backup server is down. Default: false.
    pub backup: Option<bool>,
    /// Most concurrent connections to this server, 0 = unlimited (`maxconn`). Default: 0.
    #[schemars(range(min = 0))]
    pub max_connections: Option<i32>,
}

/// A Service in the backend's namespace whose ready endpoints are servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the Service. Required.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Port of the Service, by name or number. Required.
    pub port: IntOrString,
}

/// Active health checks (`check inter fall rise`, `option httpchk`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Time between two checks of a server. Default: 2s.
    #[schemars(pattern(duration::PATTERN))]
    pub interval: Option<String>,
    /// How long a check may take before it counts as failed; at most the
    /// interval. Default: 1s, or the interval when that is shorter.
    #[schemars(pattern(duration::PATTERN))]
    pub timeout: Option<String>,
    /// Consecutive failed checks that mark a server down, at least 1. Default: 3.
    #[schemars(range(min = 1))]
    pub fall: Option<i32>,
    /// Consecutive passed checks that mark a server up, at least 1. Default: 2.
    #[schemars(range(min = 1))]
    pub rise: Option<i32>,
    /// Port to check, 1-65535. Default: the server's own port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Check with an HTTP request instead of a TCP connect. Default: none (TCP connect).
    pub http: Option<HttpCheck>,
    /// Log every server state change (`option log-health-checks`). Default: false.
    pub log: Option<bool>,
}

/// An HTTP health check (`option httpchk`, `http-check expect status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Request method. Default: `GET`.
    #[schemars(pattern(r"^[A-Z]+$"))]
    pub method: Option<String>,
    /// Request path. Default: `/`.
    #[schemars(pattern(r"^/"))]
    pub path: Option<String>,
    /// Host header of the request. Default: none.
    pub host: Option<String>,
    /// Statuses that pass, each a code (`200`) or an inclusive range (`200-399`).
    /// Default: `["200-399"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$")))]
    pub expect_status: Vec<String>,
}

/// TLS towards the servers (`server ... ssl ca-file crt sni verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// Secret with `ca.crt` to verify servers against. Required unless `insecureSkipVerify` (fairlead does not read the system roots).
    pub ca_secret: Option<String>,
    /// Secret of type kubernetes.io/tls presented as client certificate. Default: none.
    pub client_cert_secret: Option<String>,
    /// Name sent as SNI and verified in the server certificate. Default: the server address.
    pub server_name: Option<String>,
    /// Accept any server certificate (`verify none`). Default: false.
    pub insecure_skip_verify: Option<bool>,
}

/// Backend-side timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTimeouts {
    /// Time to establish a connection to a server (`timeout connect`). Default: 10s.
    #[schemars(pattern(duration::PATTERN))]
    pub connect: Option<String>,
    /// Inactivity on the server side (`timeout server`). Default: 1m.
    #[schemars(pattern(duration::PATTERN))]
    pub server: Option<String>,
}

/// Observed state of a Backend, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    /// The `metadata.generation` this status describes. Default: none.
    pub observed_generation: Option<i64>,
    /// Standard conditions, e.g. `Programmed`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Every server (static and from the Service) with its health. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerStatus>,
}

/// The health of one server as the dataplanes see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Server name. Required.
    pub name: String,
    /// Server address. Required.
    pub address: String,
    /// Server port. Required.
    pub port: i32,
    /// Health state, e.g. `Up`, `Down`, `Unchecked`. Required.
    pub state: String,
    /// Reason for the state, e.g. the last check's error. Default: none.
    pub message: Option<String>,
}
