//! The dataplane configuration: plain data, produced by `render` (operator or
//! standalone mode), validated here, applied atomically by the engine.
//!
//! The wire format is JSON and additive-only: every field added later has a
//! default, and unknown fields are ignored, so an older dataplane accepts a
//! newer config as long as it does not need the new feature.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

mod health;
pub mod limits;
mod rules;
mod tls;
mod vrrp;
pub use health::{HealthCheck, HttpCheck, StatusRange};
pub use rules::{
    Condition, Deny, HeaderMatch, HeaderName, HeaderValue, Predicate, Redirect, RedirectTo,
    ReplaceHeaderValue, RequestAction, RequestRule, ResponseAction, ResponseRule, Test,
};
pub(crate) use rules::{cidr, header_name, header_value, regex};
pub use tls::{BackendTls, Certificate, FrontendTls, TlsMode};
pub use vrrp::{Track, VirtualAddress, VirtualIp};

/// The wire-format revision of this model; bumped only when a field is added.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one dataplane runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneConfig {
    /// Wire-format revision the producer wrote ([`SCHEMA_VERSION`]).
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// Content version chosen by the producer: increases with every change, so
    /// the dataplane can report which config it runs. 0 means unversioned.
    #[serde(default)]
    pub version: u64,
    /// Listeners, each with its routing; names are unique.
    #[serde(default)]
    pub frontends: Vec<Frontend>,
    /// Server pools referenced by frontends; names are unique.
    #[serde(default)]
    pub backends: Vec<Backend>,
    /// Addresses held with VRRP; names are unique. Default none.
    #[serde(default, rename = "virtualIPs", skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<VirtualIp>,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// Proxy mode of a frontend or backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Layer-4: bytes are relayed both ways, with half-close.
    Tcp,
    /// HTTP/1.1 with keep-alive on both sides (the default).
    #[default]
    Http,
}

/// A listener and the routing behind it (haproxy `frontend`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frontend {
    /// Unique name, `namespace/name` when rendered from resources.
    pub name: String,
    /// Proxy mode; backends used by this frontend must have the same mode.
    #[serde(default)]
    pub mode: Mode,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// The virtual IP whose address `bind` is: the socket is bound before this
    /// node holds the address (IP_FREEBIND), and the frontend is tracked by
    /// that virtual IP. Default none.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<String>,
    /// Backend for requests no route matches; without it they get 503.
    #[serde(default)]
    pub default_backend: Option<String>,
    /// HTTP routes, first match wins (http mode only).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Client-side inactivity timeout in milliseconds (haproxy `timeout client`);
    /// in http mode also the limit for receiving a request's headers and for an
    /// idle keep-alive connection. Default 60000.
    #[serde(default = "default_client_timeout_ms")]
    pub client_timeout_ms: u64,
    /// Limit for receiving a request's head from its first byte, in ms
    /// (haproxy `timeout http-request`); a client that does not finish in
    /// time gets 408 and is closed. Default 10000, or the client timeout
    /// when that is shorter. HTTP mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_timeout_ms: Option<u64>,
    /// Idle time allowed between two requests of a keep-alive connection
    /// (and on an HTTP/2 connection with no open stream), in ms (haproxy
    /// `timeout http-keep-alive`). Default: the http-request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_keep_alive_timeout_ms: Option<u64>,
    /// Inactivity limit of an upgraded (WebSocket) connection, both ways,
    /// in ms (haproxy `timeout tunnel`). Default: the client timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_timeout_ms: Option<u64>,
    /// Connections served at once; further clients wait in the kernel's accept
    /// queue (haproxy `maxconn`). Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Add `X-Forwarded-For` with the client address (haproxy `option forwardfor`). Default true.
    #[serde(default = "yes")]
    pub x_forwarded_for: bool,
    /// Add an RFC 7239 `Forwarded` header. Default false.
    #[serde(default)]
    pub forwarded: bool,
    /// Largest request head (request line plus headers) in bytes; larger gets 431.
    /// Default 16384, minimum 8192.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u32,
    /// TLS on the socket. Default none (plain TCP).
    #[serde(default)]
    pub tls: Option<FrontendTls>,
    /// HTTP request rules in order, at most 128 (http mode). Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_rules: Vec<RequestRule>,
    /// HTTP response rules in order, at most 128 (http mode); they apply to
    /// local responses (redirects, denials, errors) too. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_rules: Vec<ResponseRule>,
    /// Statistics served on this frontend (http mode). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FrontendStats>,
    /// Access logs of this frontend. Default none (not logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
}

/// Access logs: one line per request (`httplog`) or connection (`tcplog`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logging {
    /// Line format. Required.
    pub format: LogFormat,
    /// Skip connections that sent nothing (`option dontlognull`). Default false.
    #[serde(default)]
    pub dont_log_null: bool,
    /// Write lines to the dataplane's stdout. Default false.
    #[serde(default)]
    pub stdout: bool,
    /// Send lines over UDP to a syslog server. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<Syslog>,
}

/// Access log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// HAProxy's `option httplog` line, one per request (http mode).
    Httplog,
    /// HAProxy's `option tcplog` line, one per connection.
    Tcplog,
    /// The fields of `httplog` (http mode) or `tcplog` (tcp mode) as one
    /// JSON object per line, named as HAProxy's documentation names them.
    Json,
}

/// A syslog server reached over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Syslog {
    /// `host:port`; the host is resolved by the log writer. Required.
    pub address: String,
    /// Facility name (`local0`..`local7`, `daemon`, ...). Default `local0`.
    #[serde(default = "default_facility")]
    pub facility: String,
    /// Tag (program name) of each message. Default `fairlead`.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Message format. Default RFC 3164.
    #[serde(default)]
    pub format: SyslogFormat,
}

fn default_facility() -> String {
    "local0".into()
}

fn default_tag() -> String {
    "fairlead".into()
}

/// Syslog message formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// BSD syslog: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    #[default]
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST TAG PID - - MSG`.
    Rfc5424,
}

/// Syslog facility names, in code order (`kern` is 0, `local7` 23).
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// What a frontend serves of the dataplane's statistics (http mode).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendStats {
    /// Path (exact, query ignored) answered with the Prometheus metrics,
    /// after the request rules. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_path: Option<String>,
    /// Path (exact, query ignored) of the HTML stats page; `PATH;csv` and
    /// `PATH;json` answer the same figures as CSV and JSON. Default none
    /// (no page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The page reloads itself every this many seconds (`stats refresh`);
    /// 0: never. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_seconds: u32,
    /// Show this node's name on the page (`stats show-node`). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub show_node: bool,
    /// Basic auth for the page and the metrics path (`stats auth`); requests
    /// without these credentials get 401. Default none (no auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<BasicAuth>,
}

/// A user name and password for HTTP basic auth.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An HTTP route: every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Host to match, without port, case-insensitive; `*.example.com` matches one or more labels.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match, on segment boundaries (`/api` matches `/api` and `/api/x`, not `/apix`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Exact path to match (query excluded).
    #[serde(default)]
    pub path: Option<String>,
    /// TLS server name to match (passthrough frontends only, and then the
    /// only field set); `*.example.com` matches one or more labels. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Backend that serves matching requests.
    pub backend: String,
}

/// Load-balancing algorithm (haproxy `balance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Weighted round robin (the default).
    #[default]
    Roundrobin,
    /// Fewest active connections relative to weight.
    Leastconn,
    /// Consistent hash of the client IP address.
    Source,
    /// Consistent hash of the request path (http mode; tcp falls back to source).
    Uri,
    /// Random with two choices: the less loaded of two random servers.
    Random,
    /// The first server in order that has a free connection slot.
    First,
}

/// A pool of servers (haproxy `backend`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Unique name, `namespace/name` when rendered from resources.
    pub name: String,
    /// Proxy mode; must equal the mode of every frontend using it.
    #[serde(default)]
    pub mode: Mode,
    /// Algorithm choosing a server for each connection or request.
    #[serde(default)]
    pub balance: Balance,
    /// Servers in order; names are unique within the backend.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Limit for establishing a connection to a server, in ms (haproxy `timeout connect`). Default 10000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Server-side inactivity timeout in ms (haproxy `timeout server`); in http
    /// mode the limit for a response's headers, answered with 504. Default 60000.
    #[serde(default = "default_server_timeout_ms")]
    pub server_timeout_ms: u64,
    /// Further connection attempts after a failed connect (haproxy `retries`). Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Make retries go to another server (haproxy `option redispatch`). Default true.
    #[serde(default = "yes")]
    pub redispatch: bool,
    /// Active health checks of every server. Default none: servers are always up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// TLS towards the servers. Default none (plain TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTls>,
    /// Send a PROXY protocol v2 header with the client's and the frontend's
    /// addresses before the stream (haproxy `send-proxy-v2`); tcp mode
    /// only, not with `tls`. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub send_proxy_v2: bool,
}

/// One server of a backend (haproxy `server` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// Name, unique within the backend.
    pub name: String,
    /// IP address or DNS name (resolved when connecting).
    pub address: String,
    /// TCP port, 1-65535.
    pub port: u16,
    /// Relative weight 1-256. Default 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Used only while no active (non-backup) server is available. Default false.
    #[serde(default)]
    pub backup: bool,
    /// Connections to this server at once; 0 means no limit. `first` fills
    /// servers up to this limit. Default 0.
    #[serde(default)]
    pub max_connections: u32,
}

pub(crate) fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_client_timeout_ms() -> u64 {
    60_000
}
fn default_server_timeout_ms() -> u64 {
    60_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_retries() -> u32 {
    3
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_max_header_bytes() -> u32 {
    16_384
}

impl Frontend {
    /// A frontend with every optional field at its default.
    pub fn new(name: impl Into<String>, mode: Mode, bind: SocketAddr) -> Self {
        Frontend {
            name: name.into(),
            mode,
            bind,
            virtual_ip: None,
            default_backend: None,
            routes: Vec::new(),
            client_timeout_ms: default_client_timeout_ms(),
            http_request_timeout_ms: None,
            http_keep_alive_timeout_ms: None,
            tunnel_timeout_ms: None,
            max_connections: default_max_connections(),
            x_forwarded_for: true,
            forwarded: false,
            max_header_bytes: default_max_header_bytes(),
            tls: None,
            request_rules: Vec::new(),
            response_rules: Vec::new(),
            stats: None,
            logging: None,
        }
    }

    /// Client-side inactivity timeout.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms)
    }

    /// Limit for a request's head (see `http_request_timeout_ms`).
    pub fn http_request_timeout(&self) -> Duration {
        let ms = (self.http_request_timeout_ms)
            .unwrap_or_else(|| self.client_timeout_ms.min(DEFAULT_HTTP_REQUEST_TIMEOUT_MS));
        Duration::from_millis(ms)
    }

    /// Idle limit between requests (see `http_keep_alive_timeout_ms`).
    pub fn http_keep_alive_timeout(&self) -> Duration {
        (self.http_keep_alive_timeout_ms)
            .map_or_else(|| self.http_request_timeout(), Duration::from_millis)
    }

    /// Inactivity limit of tunnels (see `tunnel_timeout_ms`).
    pub fn tunnel_timeout(&self) -> Duration {
        Duration::from_millis(self.tunnel_timeout_ms.unwrap_or(self.client_timeout_ms))
    }
}

/// `timeout http-request` when unset, as in HAProxy's usual configs.
const DEFAULT_HTTP_REQUEST_TIMEOUT_MS: u64 = 10_000;

impl Backend {
    /// A backend with every optional field at its default.
    pub fn new(
        name: impl Into<String>,
        mode: Mode,
        balance: Balance,
        servers: Vec<Server>,
    ) -> Self {
        Backend {
            name: name.into(),
            mode,
            balance,
            servers,
            connect_timeout_ms: default_connect_timeout_ms(),
            server_timeout_ms: default_server_timeout_ms(),
            retries: default_retries(),
            redispatch: true,
            health_check: None,
            tls: None,
            send_proxy_v2: false,
        }
    }

    /// Limit for establishing a connection to a server.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Server-side inactivity timeout.
    pub fn server_timeout(&self) -> Duration {
        Duration::from_millis(self.server_timeout_ms)
    }
}

impl Server {
    /// A server with weight 1, not a backup, no connection limit.
    pub fn new(name: impl Into<String>, address: impl Into<String>, port: u16) -> Self {
        Server {
            name: name.into(),
            address: address.into(),
            port,
            weight: 1,
            backup: false,
            max_connections: 0,
        }
    }
}

impl DataplaneConfig {
    /// Parses JSON and validates it.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: DataplaneConfig =
            serde_json::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
        config.validate()
    }

    /// Stable JSON for the wire and for golden files.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes")
    }

    /// Checks every rule the engine relies on; returns the config unchanged when valid.
    /// The error lists every problem, one per line.
    pub fn validate(self) -> Result<Self> {
        let mut problems = limits::problems(&self);
        let mut bad = |object: &str, field: String, reason: String| {
            problems.push(format!("{object}: {field}: {reason}"));
        };
        if self.schema_version > SCHEMA_VERSION {
            // Additive-only: a newer producer's config is accepted, fields we do not know are ignored.
            tracing::debug!(schema = self.schema_version, "config from a newer producer");
        }
        let mut backends = BTreeMap::new();
        for (i, b) in self.backends.iter().enumerate() {
            let object = format!("backend {}", b.name);
            if b.name.is_empty() {
                bad(
                    &object,
                    format!("backends[{i}].name"),
                    "must not be empty".into(),
                );
            }
            if backends.insert(b.name.as_str(), b.mode).is_some() {
                bad(
                    &object,
                    format!("backends[{i}].name"),
                    "duplicate backend name".into(),
                );
            }
            if b.connect_timeout_ms == 0 {
                bad(
                    &object,
                    "connectTimeoutMs".into(),
                    "must be greater than 0".into(),
                );
            }
            for (field, reason) in b.tls.iter().flat_map(|t| t.problems()) {
                bad(&object, field, reason);
            }
            if b.server_timeout_ms == 0 {
                bad(
                    &object,
                    "serverTimeoutMs".into(),
                    "must be greater than 0".into(),
                );
            }
            if b.send_proxy_v2 && (b.mode != Mode::Tcp || b.tls.is_some()) {
                bad(
                    &object,
                    "sendProxyV2".into(),
                    "only in tcp mode without tls".into(),
                );
            }
            for (field, reason) in b.health_check.iter().flat_map(|h| h.problems()) {
                bad(&object, format!("healthCheck.{field}"), reason);
            }
            let mut names = BTreeSet::new();
            for (j, s) in b.servers.iter().enumerate() {
                let field = format!("servers[{j}]");
                if s.name.is_empty() || !names.insert(s.name.as_str()) {
                    bad(
                        &object,
                        format!("{field}.name"),
                        format!("{:?} is empty or not unique", s.name),
                    );
                }
                if s.address.is_empty() {
                    bad(
                        &object,
                        format!("{field}.address"),
                        "must not be empty".into(),
                    );
                }
                if s.port == 0 {
                    bad(
                        &object,
                        format!("{field}.port"),
                        "0 is not a port (1-65535)".into(),
                    );
                }
                if !(1..=256).contains(&s.weight) {
                    bad(
                        &object,
                        format!("{field}.weight"),
                        format!("{} is out of range (1-256)", s.weight),
                    );
                }
            }
        }
        let mut names = BTreeSet::new();
        let mut binds = BTreeMap::new();
        for (i, f) in self.frontends.iter().enumerate() {
            let object = format!("frontend {}", f.name);
            if f.name.is_empty() || !names.insert(f.name.as_str()) {
                bad(
                    &object,
                    format!("frontends[{i}].name"),
                    "empty or duplicate frontend name".into(),
                );
            }
            if let Some(other) = binds.insert(f.bind, f.name.as_str()) {
                bad(
                    &object,
                    "bind".into(),
                    format!("{} is also bound by frontend {other}", f.bind),
                );
            }
            if f.bind.port() == 0 {
                bad(
                    &object,
                    "bind".into(),
                    "port 0 is not a port (1-65535)".into(),
                );
            }
            if f.client_timeout_ms == 0 {
                bad(
                    &object,
                    "clientTimeoutMs".into(),
                    "must be greater than 0".into(),
                );
            }
            for (field, value) in [
                ("httpRequestTimeoutMs", f.http_request_timeout_ms),
                ("httpKeepAliveTimeoutMs", f.http_keep_alive_timeout_ms),
                ("tunnelTimeoutMs", f.tunnel_timeout_ms),
            ] {
                if value == Some(0) {
                    bad(&object, field.into(), "must be greater than 0".into());
                }
            }
            if f.max_connections == 0 {
                bad(
                    &object,
                    "maxConnections".into(),
                    "must be greater than 0".into(),
                );
            }
            if let Some(stats) = &f.stats {
                for (field, reason) in stats_problems(f.mode, stats) {
                    bad(&object, field, reason);
                }
            }
            if let Some(logging) = &f.logging {
                for (field, reason) in logging_problems(f.mode, logging) {
                    bad(&object, field, reason);
                }
            }
            if f.max_header_bytes < 8192 {
                bad(
                    &object,
                    "maxHeaderBytes".into(),
                    format!("{} is below the minimum 8192", f.max_header_bytes),
                );
            }
            for (field, reason) in tls::frontend_problems(f) {
                bad(&object, field, reason);
            }
            let http_backend = |name: &str| backends.get(name).map(|m| *m == Mode::Http);
            for (field, reason) in rules::problems(f, http_backend) {
                bad(&object, field, reason);
            }
            if f.mode == Mode::Tcp && !f.routes.is_empty() && !tls::is_passthrough(f) {
                bad(&object, "routes".into(), "routes need http mode".into());
            }
            let refs = f
                .default_backend
                .iter()
                .map(|b| ("defaultBackend".to_string(), b))
                .chain(
                    f.routes
                        .iter()
                        .enumerate()
                        .map(|(j, r)| (format!("routes[{j}].backend"), &r.backend)),
                );
            for (field, backend) in refs {
                match backends.get(backend.as_str()) {
                    None => bad(
                        &object,
                        field,
                        format!("backend {backend:?} does not exist"),
                    ),
                    Some(mode) if *mode != f.mode => bad(
                        &object,
                        field,
                        format!(
                            "backend {backend:?} is in {mode:?} mode, the frontend in {:?} mode",
                            f.mode
                        ),
                    ),
                    Some(_) => {}
                }
            }
            for (j, r) in f.routes.iter().enumerate() {
                for (name, p) in [("pathPrefix", &r.path_prefix), ("path", &r.path)] {
                    if p.as_deref().is_some_and(|p| !p.starts_with('/')) {
                        bad(
                            &object,
                            format!("routes[{j}].{name}"),
                            "must start with /".into(),
                        );
                    }
                }
            }
        }
        let mut vips = BTreeMap::new();
        for (i, v) in self.virtual_ips.iter().enumerate() {
            let object = format!("virtual IP {}", v.name);
            if v.name.is_empty() || vips.insert(v.name.as_str(), v).is_some() {
                bad(
                    &object,
                    format!("virtualIPs[{i}].name"),
                    "empty or duplicate virtual IP name".into(),
                );
            }
            for (field, reason) in v.problems() {
                bad(&object, field, reason);
            }
        }
        for (i, a) in self.virtual_ips.iter().enumerate() {
            for b in &self.virtual_ips[i + 1..] {
                if a.vrid == b.vrid && a.interface == b.interface {
                    bad(
                        &format!("virtual IP {}", b.name),
                        "vrid".into(),
                        format!("VRID {} is also used by virtual IP {}", b.vrid, a.name),
                    );
                }
            }
        }
        for f in &self.frontends {
            let Some(name) = &f.virtual_ip else { continue };
            let object = format!("frontend {}", f.name);
            match vips.get(name.as_str()) {
                None => bad(
                    &object,
                    "virtualIP".into(),
                    format!("virtual IP {name:?} does not exist"),
                ),
                Some(v) if !v.addresses.iter().any(|a| a.address == f.bind.ip()) => bad(
                    &object,
                    "bind".into(),
                    format!("{} is not an address of virtual IP {name}", f.bind.ip()),
                ),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Invalid(problems.join("\n")))
        }
    }
}

/// What is wrong with a frontend's `logging`: (field, reason).
fn logging_problems(mode: Mode, logging: &Logging) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if logging.format == LogFormat::Httplog && mode != Mode::Http {
        problems.push(("logging.format".into(), "httplog needs http mode".into()));
    }
    if !logging.stdout && logging.syslog.is_none() {
        problems.push((
            "logging".into(),
            "needs a sink: stdout, syslog or both".into(),
        ));
    }
    if let Some(syslog) = &logging.syslog {
        let valid = (syslog.address.rsplit_once(':')).is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            problems.push((
                "logging.syslog.address".into(),
                format!("{:?} is not host:port", syslog.address),
            ));
        }
        if !FACILITIES.contains(&syslog.facility.as_str()) {
            problems.push((
                "logging.syslog.facility".into(),
                format!("{:?} is not a syslog facility", syslog.facility),
            ));
        }
        let tag_ok = !syslog.tag.is_empty()
            && syslog.tag.len() <= 48
            && syslog
                .tag
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'[' && b != b':');
        if !tag_ok {
            problems.push((
                "logging.syslog.tag".into(),
                format!(
                    "{:?}: 1-48 printable ASCII characters, no [ or :",
                    syslog.tag
                ),
            ));
        }
    }
    problems
}

/// What is wrong with a frontend's `stats`: (field, reason).
fn stats_problems(mode: Mode, stats: &FrontendStats) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let paths = [
        ("stats.prometheusPath", &stats.prometheus_path),
        ("stats.path", &stats.path),
    ];
    for (field, path) in paths {
        if let Some(path) = path
            && (mode != Mode::Http || !path.starts_with('/') || path.contains(['?', '#', ';']))
        {
            problems.push((
                field.to_string(),
                format!("{path:?}: an http frontend's path starting with /, no ?, # or ;"),
            ));
        }
    }
    if stats.path.is_some() && stats.path == stats.prometheus_path {
        problems.push((
            "stats.prometheusPath".into(),
            "must differ from stats.path".into(),
        ));
    }
    if let Some(auth) = &stats.auth
        && (auth.username.is_empty() || auth.username.contains(':') || auth.password.is_empty())
    {
        problems.push((
            "stats.auth".into(),
            "needs a username without ':' and a password, both not empty".into(),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataplaneConfig {
        let mut fe = Frontend::new(
            "default/http-in",
            Mode::Http,
            "127.0.0.1:8080".parse().unwrap(),
        );
        fe.default_backend = Some("default/app".into());
        DataplaneConfig {
            schema_version: SCHEMA_VERSION,
            version: 1,
            frontends: vec![fe],
            backends: vec![Backend::new(
                "default/app",
                Mode::Http,
                Balance::Roundrobin,
                vec![Server::new("srv1", "127.0.0.1", 9001)],
            )],
            ..Default::default()
        }
    }

    #[test]
    fn valid_config_round_trips_through_json() {
        let cfg = sample().validate().unwrap();
        let back = DataplaneConfig::from_json(&cfg.to_json_pretty()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn ipv6_virtual_ips_are_checked_by_family() {
        let address = |text: &str, prefix_len| VirtualAddress {
            address: text.parse().unwrap(),
            prefix_len,
        };
        let mut cfg = sample();
        let mut v6 = VirtualIp::new("default/v6", 52, vec![address("fd00::100", 64)]);
        v6.unicast_peers = vec!["fd00::2".parse().unwrap()];
        cfg.virtual_ips = vec![v6.clone()];
        cfg.frontends[0].bind = "[fd00::100]:8080".parse().unwrap();
        cfg.frontends[0].virtual_ip = Some("default/v6".into());
        cfg.clone().validate().unwrap();

        v6.version = 2;
        v6.advert_interval_ms = 1000;
        v6.addresses = vec![address("fd00::100", 129), address("192.0.2.1", 24)];
        v6.unicast_peers = vec!["192.0.2.2".parse().unwrap()];
        cfg.virtual_ips = vec![v6];
        let err = cfg.validate().unwrap_err().to_string();
        for expected in [
            "virtual IP default/v6: addresses[0].prefixLength: 129 is out of range (0-128)",
            "virtual IP default/v6: addresses[1]: 192.0.2.1 is IPv4, addresses[0] is not; use one virtual IP per family",
            "virtual IP default/v6: version: VRRPv2 is IPv4 only; IPv6 needs version 3",
            "virtual IP default/v6: unicastPeers[0]: 192.0.2.2 is IPv4, the addresses are not",
        ] {
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn vrrp_passwords_are_for_version_2_and_carried_zero_padded() {
        let address = VirtualAddress {
            address: "192.0.2.100".parse().unwrap(),
            prefix_len: 24,
        };
        let mut v2 = VirtualIp::new("default/v2", 51, vec![address]);
        v2.version = 2;
        v2.auth_password = Some("s3cret".into());
        assert_eq!(v2.password_field(), Some(*b"s3cret\0\0"));
        let mut cfg = sample();
        cfg.virtual_ips = vec![v2.clone()];
        cfg.clone().validate().unwrap();
        v2.version = 3;
        v2.advert_interval_ms = 100;
        v2.auth_password = Some("much-too-long".into());
        cfg.virtual_ips = vec![v2];
        let err = cfg.validate().unwrap_err().to_string();
        for expected in [
            "virtual IP default/v2: authPassword: VRRPv3 has no authentication; use version 2",
            "virtual IP default/v2: authPassword: 13 bytes: 1-8 are carried",
        ] {
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_defaulted() {
        let cfg = DataplaneConfig::from_json(
            r#"{"frontends":[{"name":"f","bind":"127.0.0.1:1","futureField":1}],"backends":[]}"#,
        )
        .unwrap();
        assert_eq!(cfg.frontends[0].client_timeout_ms, 60_000);
        assert_eq!(cfg.frontends[0].mode, Mode::Http);
        assert_eq!(cfg.schema_version, SCHEMA_VERSION);
    }

    #[test]
    fn every_problem_is_reported_with_object_and_field() {
        let mut cfg = sample();
        cfg.backends[0].servers[0].port = 0;
        cfg.backends[0].servers[0].weight = 300;
        cfg.frontends[0].default_backend = Some("default/missing".into());
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("backend default/app: servers[0].port: 0 is not a port"),
            "{err}"
        );
        assert!(
            err.contains("servers[0].weight: 300 is out of range"),
            "{err}"
        );
        assert!(err.contains(
            "frontend default/http-in: defaultBackend: backend \"default/missing\" does not exist"
        ));
    }

    #[test]
    fn mode_mismatch_and_duplicate_bind_are_rejected() {
        let mut cfg = sample();
        cfg.backends[0].mode = Mode::Tcp;
        let mut twin = cfg.frontends[0].clone();
        twin.name = "default/twin".into();
        cfg.frontends.push(twin);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("is in Tcp mode, the frontend in Http mode"),
            "{err}"
        );
        assert!(
            err.contains("127.0.0.1:8080 is also bound by frontend default/http-in"),
            "{err}"
        );
    }
}
