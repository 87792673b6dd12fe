//! The Prometheus metrics of a [`Snapshot`], in the text exposition format,
//! named as HAProxy's built-in exporter names them (`haproxy_frontend_*`,
//! `haproxy_backend_*`, `haproxy_server_*`, `haproxy_process_*`, with labels
//! `proxy`, `server`, `state`, `code`) so dashboards made for HAProxy read
//! them; virtual IPs as the keepalived exporters name theirs
//! (`keepalived_*`, labels `iname`, `intf`, `vrid`); fairlead's own under
//! `fairlead_*`. [`server`] serves them on a listener of their own.

pub mod server;

use std::fmt::Write;

use crate::counters::STATUS_CLASSES;
use crate::health::status::ServerState;
use crate::snapshot::{
    BackendSnapshot, FrontendSnapshot, ProxySnapshot, ServerSnapshot, Snapshot, now_seconds,
    seconds,
};

/// Gauge or counter.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}
use Kind::{Counter, Gauge};

/// Writes metric families, each with its HELP and TYPE lines once.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Gauge => "gauge",
            Counter => "counter",
        };
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                escape(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one sample per item.
    fn each<'a, T: 'a>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        items: impl IntoIterator<Item = Labelled<'a, T>> + Clone,
        value: impl Fn(&T) -> Option<f64>,
    ) {
        let mut rows = items
            .into_iter()
            .filter_map(|(l, t)| value(t).map(|v| (l, v)));
        let Some(first) = rows.next() else { return };
        self.family(name, kind, help);
        for (labels, v) in std::iter::once(first).chain(rows) {
            self.sample(name, &labels, v);
        }
    }
}

/// A metric of `T`: its name (after the family's prefix), kind, help, and its
/// value for one `T` at `now` (seconds since the Unix epoch); none: no sample.
type Metric<T> = (&'static str, Kind, &'static str, fn(&T, f64) -> Option<f64>);

/// Labels and the object they describe.
type Labelled<'a, T> = (Vec<(&'a str, &'a str)>, &'a T);

impl Out {
    /// A family per metric of `table`, named `prefix` and its name, with a
    /// sample per row of `rows`.
    fn table<'a, T: 'a, I>(
        &mut self,
        prefix: &str,
        table: &[Metric<T>],
        now: f64,
        rows: impl Fn() -> I,
    ) where
        I: Iterator<Item = Labelled<'a, T>> + Clone,
    {
        for (name, kind, help, value) in table {
            let name = format!("{prefix}{name}");
            self.each(&name, *kind, help, rows(), |t| value(t, now));
        }
    }

    /// For each row, a sample per state of `states` (label `state`): 1 for the
    /// row's current state, 0 for the others.
    fn states<'a>(
        &mut self,
        name: &str,
        states: &[&'a str],
        rows: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, Option<&'a str>)>,
    ) {
        for (labels, current) in rows {
            for &state in states {
                let mut labels = labels.clone();
                labels.push(("state", state));
                self.sample(name, &labels, f64::from(u8::from(Some(state) == current)));
            }
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn us(v: u64) -> f64 {
    v as f64 / 1e6
}

/// Seconds since `unix_ms`; none when it is 0 (never).
fn ago(unix_ms: u64, now: f64) -> Option<f64> {
    (unix_ms > 0).then(|| (now - seconds(unix_ms)).max(0.0))
}

/// Renders every metric of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = Out(String::with_capacity(16 * 1024));
    let now = now_seconds();
    process(&mut out, s);
    config(&mut out, s);
    frontends(&mut out, &s.frontends, now);
    backends(&mut out, &s.backends, now);
    servers(&mut out, &s.backends, now);
    virtual_ips(&mut out, s, now);
    out.0
}

fn process(out: &mut Out, s: &Snapshot) {
    let p = &s.process;
    let rows = [
        (
            "haproxy_process_nbthread",
            Gauge,
            "Number of started threads (global.nbthread)",
            p.threads as f64,
        ),
        (
            "haproxy_process_uptime_seconds",
            Gauge,
            "How long ago this worker process was started (seconds)",
            p.uptime.as_secs() as f64,
        ),
        (
            "haproxy_process_start_time_seconds",
            Gauge,
            "Start time in seconds",
            (p.start_unix_ms / 1000) as f64,
        ),
        (
            "haproxy_process_current_connections",
            Gauge,
            "Current number of connections on this worker process",
            p.current_connections as f64,
        ),
        (
            "haproxy_process_connections_total",
            Counter,
            "Total number of connections on this worker process since started",
            p.connections_total as f64,
        ),
        (
            "haproxy_process_dropped_logs_total",
            Counter,
            "Total number of dropped logs for current worker process since started",
            p.dropped_logs as f64,
        ),
    ];
    for (name, kind, help, v) in rows {
        out.family(name, kind, help);
        out.sample(name, &[], v);
    }
}

fn config(out: &mut Out, s: &Snapshot) {
    let c = &s.config;
    let node = [("node", s.node.as_str())];
    let rows = [
        (
            "fairlead_config_version",
            Gauge,
            "Version of the running config (0 before the first).",
            c.version as f64,
        ),
        (
            "fairlead_config_last_apply_success",
            Gauge,
            "Whether the last config apply succeeded (1) or was rejected (0).",
            f64::from(u8::from(c.last_apply_ok)),
        ),
        (
            "fairlead_config_last_apply_timestamp_seconds",
            Gauge,
            "When the last config apply finished, in seconds since the Unix epoch (0: none yet).",
            seconds(c.last_apply_unix_ms),
        ),
        (
            "fairlead_config_applies_total",
            Counter,
            "Config applies tried, accepted or rejected.",
            c.applies as f64,
        ),
        (
            "fairlead_config_rejections_total",
            Counter,
            "Config applies rejected.",
            c.rejections as f64,
        ),
    ];
    for (name, kind, help, v) in rows {
        out.family(name, kind, help);
        out.sample(name, &node, v);
    }
}

fn frontends(out: &mut Out, fes: &[FrontendSnapshot], now: f64) {
    let rows = || fes.iter().map(|f| (vec![("proxy", f.name.as_str())], f));
    out.family(
        "haproxy_frontend_status",
        Gauge,
        "Current status of the service, per state label value.",
    );
    let up = rows().map(|(labels, _)| (labels, Some("UP")));
    out.states("haproxy_frontend_status", &["DOWN", "UP"], up);
    let table: [Metric<FrontendSnapshot>; 11] = [
        (
            "current_sessions",
            Gauge,
            "Number of current sessions on the frontend, backend or server",
            |f, _| Some(f.traffic.current as f64),
        ),
        (
            "max_sessions",
            Gauge,
            "Highest value of current sessions encountered since process started",
            |f, _| Some(f.traffic.max as f64),
        ),
        (
            "limit_sessions",
            Gauge,
            "Frontend/listener/server's maxconn, backend's fullconn",
            |f, _| Some(f.limit as f64),
        ),
        (
            "sessions_total",
            Counter,
            "Total number of sessions since process started",
            |f, _| Some(f.traffic.sessions as f64),
        ),
        (
            "bytes_in_total",
            Counter,
            "Total number of request bytes since process started",
            |f, _| Some(f.traffic.bytes_in as f64),
        ),
        (
            "bytes_out_total",
            Counter,
            "Total number of response bytes since process started",
            |f, _| Some(f.traffic.bytes_out as f64),
        ),
        (
            "requests_denied_total",
            Counter,
            "Total number of denied requests since process started",
            |f, _| Some(f.denied as f64),
        ),
        (
            "request_errors_total",
            Counter,
            "Total number of invalid requests since process started",
            |f, _| Some(f.request_errors as f64),
        ),
        (
            "connections_total",
            Counter,
            "Total number of new connections accepted on this frontend since the worker process started",
            |f, _| Some(f.connections as f64),
        ),
        (
            "intercepted_requests_total",
            Counter,
            "Total number of HTTP requests intercepted on the frontend (redirects/stats/services) since the worker process started",
            |f, _| (f.mode == "http").then_some(f.intercepted as f64),
        ),
        (
            "http_requests_total",
            Counter,
            "Total number of HTTP requests processed by this object since the worker process started",
            |f, _| (f.mode == "http").then_some(f.traffic.http_requests as f64),
        ),
    ];
    out.table("haproxy_frontend_", &table, now, rows);
    responses(
        out,
        "haproxy_frontend_http_responses_total",
        fes.iter()
            .filter(|f| f.mode == "http")
            .map(|f| (vec![("proxy", f.name.as_str())], &f.traffic.http_responses)),
    );
}

/// `http_responses_total` with a `code` label per status class.
fn responses<'a>(
    out: &mut Out,
    name: &str,
    rows: impl Iterator<Item = (Vec<(&'a str, &'a str)>, &'a [u64; 6])> + Clone,
) {
    if rows.clone().next().is_none() {
        return;
    }
    out.family(name, Counter, "Total number of HTTP responses with status 100-199 returned by this object since the worker process started");
    for (class, code) in STATUS_CLASSES.iter().enumerate() {
        for (labels, counts) in rows.clone() {
            let mut labels = labels.clone();
            labels.push(("code", code));
            out.sample(name, &labels, counts[class] as f64);
        }
    }
}

/// Metrics backends and servers share.
const PROXY_METRICS: [Metric<ProxySnapshot>; 21] = [
    (
        "current_queue",
        Gauge,
        "Number of current queued connections",
        |_, _| Some(0.0),
    ),
    (
        "max_queue",
        Gauge,
        "Highest value of queued connections encountered since process started",
        |_, _| Some(0.0),
    ),
    (
        "current_sessions",
        Gauge,
        "Number of current sessions on the frontend, backend or server",
        |p, _| Some(p.traffic.current as f64),
    ),
    (
        "max_sessions",
        Gauge,
        "Highest value of current sessions encountered since process started",
        |p, _| Some(p.traffic.max as f64),
    ),
    (
        "sessions_total",
        Counter,
        "Total number of sessions since process started",
        |p, _| Some(p.traffic.sessions as f64),
    ),
    (
        "bytes_in_total",
        Counter,
        "Total number of request bytes since process started",
        |p, _| Some(p.traffic.bytes_in as f64),
    ),
    (
        "bytes_out_total",
        Counter,
        "Total number of response bytes since process started",
        |p, _| Some(p.traffic.bytes_out as f64),
    ),
    (
        "connection_errors_total",
        Counter,
        "Total number of failed connections to server since the worker process started",
        |p, _| Some(p.connection_errors as f64),
    ),
    (
        "response_errors_total",
        Counter,
        "Total number of invalid responses since the worker process started",
        |p, _| Some(p.response_errors as f64),
    ),
    (
        "retry_warnings_total",
        Counter,
        "Total number of server connection retries since the worker process started",
        |p, _| Some(p.retries as f64),
    ),
    (
        "redispatch_warnings_total",
        Counter,
        "Total number of server redispatches due to connection failures since the worker process started",
        |p, _| Some(p.redispatches as f64),
    ),
    (
        "loadbalanced_total",
        Counter,
        "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
        |p, _| Some(p.traffic.sessions as f64),
    ),
    (
        "last_session_seconds",
        Gauge,
        "How long ago some traffic was seen on this object on this worker process, in seconds",
        |p, now| ago(p.traffic.last_session_unix_ms, now),
    ),
    (
        "connect_time_average_seconds",
        Gauge,
        "Avg. connect time for last 1024 successful connections.",
        |p, _| Some(us(p.connect_time.average_us)),
    ),
    (
        "response_time_average_seconds",
        Gauge,
        "Avg. response time for last 1024 successful connections.",
        |p, _| Some(us(p.response_time.average_us)),
    ),
    (
        "total_time_average_seconds",
        Gauge,
        "Avg. total time for last 1024 successful connections.",
        |p, _| Some(us(p.total_time.average_us)),
    ),
    (
        "max_connect_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a connection to complete",
        |p, _| Some(us(p.connect_time.max_us)),
    ),
    (
        "max_response_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a server response",
        |p, _| Some(us(p.response_time.max_us)),
    ),
    (
        "max_total_time_seconds",
        Gauge,
        "Maximum observed total request+response time (request+queue+connect+response+processing)",
        |p, _| Some(us(p.total_time.max_us)),
    ),
    (
        "connection_attempts_total",
        Counter,
        "Total number of outgoing connection attempts on this backend/server since the worker process started",
        |p, _| Some(p.connection_attempts as f64),
    ),
    (
        "connection_reuses_total",
        Counter,
        "Total number of reused connection on this backend/server since the worker process started",
        |p, _| Some(p.connection_reuses as f64),
    ),
];

fn backends(out: &mut Out, bes: &[BackendSnapshot], now: f64) {
    let rows = || bes.iter().map(|b| (vec![("proxy", b.name.as_str())], b));
    out.family(
        "haproxy_backend_status",
        Gauge,
        "Current status of the service, per state label value.",
    );
    let states = rows().map(|(labels, b)| (labels, Some(if b.up { "UP" } else { "DOWN" })));
    out.states("haproxy_backend_status", &["DOWN", "UP"], states);
    let counters = || rows().map(|(labels, b)| (labels, &b.counters));
    out.table("haproxy_backend_", &PROXY_METRICS, now, counters);
    let table: [Metric<BackendSnapshot>; 6] = [
        (
            "weight",
            Gauge,
            "Server's effective weight, or sum of active servers' effective weights for a backend",
            |b, _| Some(b.weight as f64),
        ),
        (
            "active_servers",
            Gauge,
            "Total number of active UP servers with a non-zero weight",
            |b, _| Some(b.active_servers as f64),
        ),
        (
            "backup_servers",
            Gauge,
            "Total number of backup UP servers with a non-zero weight",
            |b, _| Some(b.backup_servers as f64),
        ),
        (
            "check_up_down_total",
            Counter,
            "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
            |b, _| {
                b.checked.then(|| {
                    b.servers
                        .iter()
                        .filter_map(|s| s.check.as_ref())
                        .map(|c| c.up_down as f64)
                        .sum()
                })
            },
        ),
        (
            "check_last_change_seconds",
            Gauge,
            "How long ago the last server state changed, in seconds",
            |b, now| {
                let last = b
                    .servers
                    .iter()
                    .filter_map(|s| s.check.as_ref()?.last_change_unix_ms)
                    .max()?;
                ago(last, now)
            },
        ),
        (
            "http_requests_total",
            Counter,
            "Total number of HTTP requests processed by this object since the worker process started",
            |b, _| (b.mode == "http").then_some(b.counters.traffic.http_requests as f64),
        ),
    ];
    out.table("haproxy_backend_", &table, now, rows);
    responses(
        out,
        "haproxy_backend_http_responses_total",
        bes.iter().filter(|b| b.mode == "http").map(|b| {
            (
                vec![("proxy", b.name.as_str())],
                &b.counters.traffic.http_responses,
            )
        }),
    );
}

/// HAProxy's server states; fairlead's servers are UP or DOWN.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

fn servers(out: &mut Out, bes: &[BackendSnapshot], now: f64) {
    let all: Vec<(&BackendSnapshot, &ServerSnapshot)> = bes
        .iter()
        .flat_map(|b| b.servers.iter().map(move |s| (b, s)))
        .collect();
    let rows = || {
        all.iter().map(|(b, s)| {
            (
                vec![("proxy", b.name.as_str()), ("server", s.name.as_str())],
                *s,
            )
        })
    };
    if !all.is_empty() {
        out.family(
            "haproxy_server_status",
            Gauge,
            "Current status of the service, per state label value.",
        );
        let states = rows().map(|(labels, s)| {
            let down = s.state == ServerState::Down;
            (labels, Some(if down { "DOWN" } else { "UP" }))
        });
        out.states("haproxy_server_status", &SERVER_STATES, states);
    }
    let counters = || rows().map(|(labels, s)| (labels, &s.counters));
    out.table("haproxy_server_", &PROXY_METRICS, now, counters);
    let table: [Metric<ServerSnapshot>; 10] = [
        (
            "limit_sessions",
            Gauge,
            "Frontend/listener/server's maxconn, backend's fullconn",
            |s, _| (s.limit > 0).then_some(s.limit as f64),
        ),
        (
            "weight",
            Gauge,
            "Server's effective weight, or sum of active servers' effective weights for a backend",
            |s, _| Some(s.weight as f64),
        ),
        (
            "idle_connections_current",
            Gauge,
            "Current number of idle connections available for reuse on this server",
            |s, _| Some(s.idle_connections as f64),
        ),
        (
            "check_failures_total",
            Counter,
            "Total number of failed individual health checks per server/backend, since the worker process started",
            |s, _| Some(s.check.as_ref()?.failures as f64),
        ),
        (
            "check_up_down_total",
            Counter,
            "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
            |s, _| Some(s.check.as_ref()?.up_down as f64),
        ),
        (
            "check_last_change_seconds",
            Gauge,
            "How long ago the last server state changed, in seconds",
            |s, now| ago(s.check.as_ref()?.last_change_unix_ms?, now),
        ),
        (
            "downtime_seconds_total",
            Counter,
            "Total time spent in DOWN state, for server or backend",
            |s, _| Some(s.check.as_ref()?.downtime.as_secs() as f64),
        ),
        (
            "check_code",
            Gauge,
            "layer5-7 code, if available of the last health check.",
            |s, _| Some(s.check.as_ref()?.code as f64),
        ),
        (
            "check_duration_seconds",
            Gauge,
            "Total duration of the latest server health check, in seconds.",
            |s, _| Some(s.check.as_ref()?.duration.as_secs_f64()),
        ),
        (
            "http_requests_total",
            Counter,
            "Total number of HTTP requests processed by this object since the worker process started",
            |s, _| Some(s.counters.traffic.http_requests as f64),
        ),
    ];
    out.table("haproxy_server_", &table, now, rows);
    let checked = rows().filter_map(|(labels, s)| {
        let status = s.check.as_ref()?.status?;
        Some((labels, Some(status)))
    });
    let checked: Vec<_> = checked.collect();
    if !checked.is_empty() {
        out.family(
            "haproxy_server_check_status",
            Gauge,
            "Status of last health check, per state label value.",
        );
        let statuses = crate::counters::CHECK_STATUSES;
        out.states("haproxy_server_check_status", &statuses, checked);
    }
    let http = all.iter().filter(|(b, _)| b.mode == "http");
    responses(
        out,
        "haproxy_server_http_responses_total",
        http.map(|(b, s)| {
            (
                vec![("proxy", b.name.as_str()), ("server", s.name.as_str())],
                &s.counters.traffic.http_responses,
            )
        }),
    );
}

/// keepalived's numeric VRRP states.
fn vrrp_state(state: &str) -> f64 {
    match state {
        "Backup" => 1.0,
        "Master" => 2.0,
        "Fault" => 3.0,
        _ => 0.0,
    }
}

fn virtual_ips(out: &mut Out, s: &Snapshot, now: f64) {
    let vips = &s.virtual_ips;
    if vips.is_empty() {
        return;
    }
    let vrids: Vec<String> = vips.iter().map(|v| v.speaker.vrid.to_string()).collect();
    let rows = || {
        vips.iter().zip(&vrids).map(|(v, vrid)| {
            let labels = vec![
                ("iname", v.speaker.name.as_str()),
                ("intf", v.speaker.interface.as_str()),
                ("vrid", vrid.as_str()),
            ];
            (labels, v)
        })
    };
    out.each(
        "keepalived_vrrp_state",
        Gauge,
        "State of vrrp: 0 init, 1 backup, 2 master, 3 fault.",
        rows(),
        |v| Some(vrrp_state(v.speaker.state)),
    );
    let table: [Metric<crate::vrrp::VirtualIpStatus>; 14] = [
        (
            "keepalived_advertisements_sent_total",
            Counter,
            "Advertisements sent",
            |v, _| Some(v.speaker.counters.sent as f64),
        ),
        (
            "keepalived_advertisements_received_total",
            Counter,
            "Advertisements received",
            |v, _| Some(v.speaker.counters.received as f64),
        ),
        (
            "keepalived_become_master_total",
            Counter,
            "Became master",
            |v, _| Some(v.speaker.counters.became_master as f64),
        ),
        (
            "keepalived_release_master_total",
            Counter,
            "Released master",
            |v, _| Some(v.speaker.counters.released_master as f64),
        ),
        (
            "keepalived_priority_zero_sent_total",
            Counter,
            "Priority zero sent",
            |v, _| Some(v.speaker.counters.priority_zero_sent as f64),
        ),
        (
            "keepalived_priority_zero_received_total",
            Counter,
            "Priority zero received",
            |v, _| Some(v.speaker.counters.priority_zero_received as f64),
        ),
        (
            "keepalived_ip_ttl_errors_total",
            Counter,
            "TTL errors",
            |v, _| Some(v.speaker.counters.dropped_ttl as f64),
        ),
        (
            "keepalived_advertisements_interval_errors_total",
            Counter,
            "Advertisement interval errors",
            |v, _| Some(v.speaker.counters.dropped_interval as f64),
        ),
        (
            "keepalived_address_list_errors_total",
            Counter,
            "Address list errors",
            |v, _| Some(v.speaker.counters.dropped_addresses as f64),
        ),
        (
            "keepalived_authentication_mismatch_total",
            Counter,
            "Authentication mismatch",
            |v, _| Some(v.speaker.counters.dropped_auth as f64),
        ),
        (
            "keepalived_packet_length_errors_total",
            Counter,
            "Packet length errors (fairlead: every malformed advertisement)",
            |v, _| Some(v.speaker.counters.dropped_malformed as f64),
        ),
        (
            "fairlead_vrrp_effective_priority",
            Gauge,
            "Priority advertised now: the configured one, lowered by tracking.",
            |v, _| Some(f64::from(v.speaker.priority)),
        ),
        (
            "fairlead_vrrp_configured_priority",
            Gauge,
            "This node's configured priority.",
            |v, _| Some(f64::from(v.configured_priority)),
        ),
        (
            "fairlead_vrrp_last_failover_seconds",
            Gauge,
            "The last takeover as this node measured it: from the last advertisement heard from the old master until it became master.",
            |v, _| v.speaker.counters.last_failover_us.map(us),
        ),
    ];
    out.table("", &table, now, rows);
    out.family(
        "fairlead_vrrp_dropped_total",
        Counter,
        "Advertisements dropped, by reason.",
    );
    for (labels, v) in rows() {
        let c = &v.speaker.counters;
        for (reason, n) in [
            ("ttl", c.dropped_ttl),
            ("peer", c.dropped_peer),
            ("vrid", c.dropped_vrid),
            ("version", c.dropped_version),
            ("auth", c.dropped_auth),
            ("malformed", c.dropped_malformed),
            ("interval", c.dropped_interval),
            ("addresses", c.dropped_addresses),
        ] {
            let mut labels = labels.clone();
            labels.push(("reason", reason));
            out.sample("fairlead_vrrp_dropped_total", &labels, n as f64);
        }
    }
}

#[cfg(test)]
mod tests;
