//! The `Frontend` resource: a listening socket and what happens to the traffic
//! it accepts (`frontend` and `listen` in haproxy.cfg).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    Mode, duration,
    rules::{RequestRule, ResponseRule},
};

/// What a frontend does with TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum TlsMode {
    /// Decrypt here with the configured certificates (`bind ... ssl crt`).
    Terminate,
    /// Forward TLS untouched, routing on SNI (tcp mode).
    Passthrough,
}

/// Access log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum LogFormat {
    /// One line per connection (`option tcplog`).
    Tcplog,
    /// One line per request (`option httplog`).
    Httplog,
    /// The fields of `httplog` (http mode) or `tcplog` (tcp mode) as one JSON object per line.
    Json,
}

/// Syslog message formats (`log ... format rfc3164|rfc5424`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::described_by_field)]
pub enum SyslogFormat {
    /// BSD syslog: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST TAG PID - - MSG`.
    Rfc5424,
}

/// A listening socket and the routing of what it accepts.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "fairlead.io",
    version = "v1alpha1",
    kind = "Frontend",
    doc = "A listening socket and what happens to the traffic it accepts.",
    namespaced,
    status = "FrontendStatus",
    shortname = "fe",
    category = "fairlead",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Port", "type": "integer", "jsonPath": ".spec.bind.port"}"#,
    printcolumn = r#"{"name": "Backend", "type": "string", "jsonPath": ".spec.defaultBackend"}"#,
    printcolumn = r#"{"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "!has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'passthrough' || (has(self.mode) && self.mode == 'tcp')",
    "spec.tls.mode passthrough needs spec.mode tcp"
))]
#[x_kube(validation = (
    "(has(self.mode) && self.mode == 'tcp') ? ((!has(self.requestRules) || size(self.requestRules) == 0) && (!has(self.responseRules) || size(self.responseRules) == 0) && !has(self.stats)) : true",
    "spec.requestRules, spec.responseRules and spec.stats need spec.mode http"
))]
#[serde(rename_all = "camelCase")]
pub struct FrontendSpec {
    /// Proxy mode, `tcp` or `http`. Default: `http`.
    pub mode: Option<Mode>,
    /// Where to listen. Required.
    pub bind: Bind,
    /// TLS on the listening socket. Default: none (plain TCP).
    pub tls: Option<FrontendTls>,
    /// Backend (by name, same namespace) for traffic that no route matches. Default: none (such traffic is refused).
    #[schemars(length(min = 1))]
    pub default_backend: Option<String>,
    /// Routes to backends, tried in order; the first match wins. At most 256. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub routes: Vec<Route>,
    /// HTTP request rules, applied in order (http mode). At most 128. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub request_rules: Vec<RequestRule>,
    /// HTTP response rules, applied in order (http mode). At most 128. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub response_rules: Vec<ResponseRule>,
    /// Client-side timeouts. Default: client 1m.
    pub timeouts: Option<FrontendTimeouts>,
    /// Most concurrent client connections, at least 1 (`maxconn`). Default: 10000.
    #[schemars(range(min = 1))]
    pub max_connections: Option<i32>,
    /// Headers that tell servers the client's address (http mode). Default: X-Forwarded-For only.
    pub forwarded_headers: Option<ForwardedHeaders>,
    /// Access logs. Default: none (no access log).
    pub logging: Option<Logging>,
    /// Serve the statistics page on this frontend (`stats enable`, http mode). Default: none.
    pub stats: Option<Stats>,
}

/// Where a frontend listens: an address, or a VirtualIP, and a port.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "!(has(self.address) && has(self.virtualIP))",
    "bind: address and virtualIP are mutually exclusive"
))]
#[serde(rename_all = "camelCase")]
pub struct Bind {
    /// IP address to listen on. Default: `0.0.0.0` (every IPv4 address).
    pub address: Option<String>,
    /// TCP port to listen on, 1-65535. Required.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Name of a VirtualIP (same namespace) whose addresses to listen on; exclusive with `address`. Default: none.
    #[serde(rename = "virtualIP")]
    pub virtual_ip: Option<String>,
}

/// TLS on a frontend's socket.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.mode) && self.mode == 'passthrough') || (has(self.certificates) && size(self.certificates) > 0)",
    "tls.certificates: terminate needs at least one certificate"
))]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// `terminate` or `passthrough`. Default: `terminate`.
    pub mode: Option<TlsMode>,
    /// Secrets of type kubernetes.io/tls, chosen by SNI; the first is the fallback. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateRef>,
    /// Lowest accepted TLS version, `"1.2"` or `"1.3"`. Default: `"1.2"`.
    #[schemars(pattern(r"^1\.[23]$"))]
    pub min_version: Option<String>,
    /// ALPN protocols offered, in order of preference. Default: `["h2", "http/1.1"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
}

/// A certificate and its key, from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRef {
    /// Name of a Secret of type kubernetes.io/tls in the same namespace. Required.
    #[schemars(length(min = 1))]
    pub secret: String,
}

/// A route: traffic that matches goes to a backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// What to match; every set field must match. Required.
    #[serde(rename = "match")]
    pub match_: RouteMatch,
    /// Backend (by name, same namespace) for matching traffic. Required.
    #[schemars(length(min = 1))]
    pub backend: String,
}

/// What a route matches on; every set field must match.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "has(self.host) || has(self.pathPrefix) || has(self.path) || has(self.sni)",
    "match: set at least one of host, pathPrefix, path, sni"
))]
#[x_kube(validation = (
    "!(has(self.path) && has(self.pathPrefix))",
    "match: path and pathPrefix are mutually exclusive"
))]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// The Host header, without port, equals this (case-insensitive; `*.example.com` matches one label). Default: any.
    pub host: Option<String>,
    /// The path starts with this. Default: any.
    #[schemars(pattern(r"^/"))]
    pub path_prefix: Option<String>,
    /// The path equals this. Default: any.
    #[schemars(pattern(r"^/"))]
    pub path: Option<String>,
    /// The TLS SNI equals this (`req.ssl_sni`; TLS passthrough only). Default: any.
    pub sni: Option<String>,
}

/// Client-side timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTimeouts {
    /// Inactivity on the client side (`timeout client`). Default: 1m.
    #[schemars(pattern(duration::PATTERN))]
    pub client: Option<String>,
    /// Time to receive a request's headers from their first byte (`timeout
    /// http-request`); slower clients get 408 and are closed (http mode).
    /// Default: 10s, or `client` when shorter.
    #[schemars(pattern(duration::PATTERN))]
    pub http_request: Option<String>,
    /// Idle time between requests on a keep-alive connection, and of an
    /// HTTP/2 connection with no open stream (`timeout http-keep-alive`;
    /// http mode). Default: `httpRequest`.
    #[schemars(pattern(duration::PATTERN))]
    pub http_keep_alive: Option<String>,
    /// Inactivity of an upgraded connection (WebSocket), both ways
    /// (`timeout tunnel`; http mode). Default: `client`.
    #[schemars(pattern(duration::PATTERN))]
    pub tunnel: Option<String>,
}

/// Headers added to requests that carry the client's address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedHeaders {
    /// Add `X-Forwarded-For` (`option forwardfor`). Default: true.
    pub x_forwarded_for: Option<bool>,
    /// Add the RFC 7239 `Forwarded` header (`option forwarded`). Default: false.
    pub forwarded: Option<bool>,
}

/// Access logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    /// Line format. Default: `httplog` in http mode, `tcplog` in tcp mode.
    pub format: Option<LogFormat>,
    /// Do not log connections that sent no data (`option dontlognull`). Default: false.
    pub dont_log_null: Option<bool>,
    /// Write access logs to the dataplane's stdout. Default: true when `syslog` is not set, else false.
    pub stdout: Option<bool>,
    /// Send access logs to a syslog server over UDP. Default: none.
    pub syslog: Option<Syslog>,
}

/// A syslog server reached over UDP (`log ADDRESS FACILITY`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Syslog {
    /// `host:port` of the server, UDP. Required.
    #[schemars(length(min = 1))]
    pub address: String,
    /// Syslog facility, e.g. `local0`...`local7`, `daemon`. Default: `local0`.
    pub facility: Option<String>,
    /// Tag (program name) of each message. Default: `fairlead`.
    pub tag: Option<String>,
    /// Message format. Default: `rfc3164`.
    pub format: Option<SyslogFormat>,
}

/// The statistics page (`stats enable`, `stats uri`, `stats refresh`...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Path of the HTML page; `PATH;csv` and `PATH;json` serve the same
    /// figures as CSV (HAProxy's columns) and JSON. Default: `/stats`.
    #[schemars(pattern(r"^/[^?#;]*$"))]
    pub path: Option<String>,
    /// How often the page reloads itself (`stats refresh`). Default: none (no reload).
    #[schemars(pattern(duration::PATTERN))]
    pub refresh: Option<String>,
    /// Show the node name on the page (`stats show-node`). Default: false.
    pub show_node: Option<bool>,
    /// Secret with `username` and `password` for basic auth (`stats auth`),
    /// asked for the page and the Prometheus path. Default: none (no auth).
    pub auth_secret: Option<String>,
    /// Path of a Prometheus exporter on the same port. Default: none (not served).
    #[schemars(pattern(r"^/[^?#;]*$"))]
    pub prometheus_path: Option<String>,
}

/// Observed state of a Frontend, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendStatus {
    /// The `metadata.generation` this status describes. Default: none.
    pub observed_generation: Option<i64>,
    /// Standard conditions, e.g. `Programmed`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
