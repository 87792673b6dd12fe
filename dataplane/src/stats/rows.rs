//! One row per frontend, backend and server, with the fields of HAProxy's
//! CSV stats ("9.1. CSV format" of HAProxy's management guide, 2.6): the CSV,
//! the JSON and the HTML page are all drawn from these rows.

use std::collections::BTreeMap;

use super::rates::{Rate, SnapshotRates};
use crate::counters::STATUS_CLASSES;
use crate::health::status::ServerState;
use crate::snapshot::{
    BackendSnapshot, FrontendSnapshot, ProxySnapshot, ServerSnapshot, Snapshot, TrafficSnapshot,
};

/// HAProxy 2.6's CSV columns, in order, up to `agg_check_status` (what
/// follows in HAProxy's header are per-module counters: SSL, HTTP/2, HTTP/1).
pub const COLUMNS: [&str; 103] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
    "agg_server_status",
    "agg_server_check_status",
    "agg_check_status",
];

/// A field's value; fields without one are left empty, as HAProxy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Num(u64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// What a row describes (HAProxy's `type`: 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Frontend,
    Backend,
    Server,
}

/// A server's colour on the page, as HAProxy names its CSS classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shade {
    Up,
    /// Up, but its last check failed: it goes down if enough more fail.
    GoingDown,
    Down,
    /// Down, but its last check passed: it comes up if enough more pass.
    GoingUp,
    NoCheck,
}

/// One frontend, backend or server.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: Kind,
    /// Servers: whether it is a backup server.
    pub backup: bool,
    /// Servers: its colour.
    pub shade: Shade,
    values: BTreeMap<&'static str, Value>,
}

impl Row {
    fn new(kind: Kind) -> Self {
        Row {
            kind,
            backup: false,
            shade: Shade::NoCheck,
            values: BTreeMap::new(),
        }
    }

    fn set(&mut self, column: &'static str, value: impl Into<Value>) -> &mut Self {
        debug_assert!(COLUMNS.contains(&column), "{column}");
        self.values.insert(column, value.into());
        self
    }

    /// The value of `column`, if any.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.values.get(column)
    }

    /// The value of `column` as text, empty when none.
    pub fn text(&self, column: &str) -> String {
        self.get(column).map(Value::to_string).unwrap_or_default()
    }

    /// The CSS class HAProxy's page gives this row.
    pub fn class(&self) -> &'static str {
        match (self.kind, self.backup, self.shade) {
            (Kind::Frontend, ..) => "frontend",
            (Kind::Backend, ..) => "backend",
            (_, false, Shade::Up) => "active_up",
            (_, false, Shade::GoingDown) => "active_going_down",
            (_, false, Shade::Down) => "active_down",
            (_, false, Shade::GoingUp) => "active_going_up",
            (_, false, Shade::NoCheck) => "active_no_check",
            (_, true, Shade::Up) => "backup_up",
            (_, true, Shade::GoingDown) => "backup_going_down",
            (_, true, Shade::Down) => "backup_down",
            (_, true, Shade::GoingUp) => "backup_going_up",
            (_, true, Shade::NoCheck) => "backup_no_check",
        }
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Num(n)
    }
}

impl From<&str> for Value {
    fn from(t: &str) -> Self {
        Value::Text(t.to_string())
    }
}

impl From<String> for Value {
    fn from(t: String) -> Self {
        Value::Text(t)
    }
}

/// The rows of `snapshot`: each frontend, then each backend's servers
/// followed by the backend, as HAProxy orders them.
pub fn rows(snapshot: &Snapshot, rates: &SnapshotRates) -> Vec<Row> {
    let now_ms = now_unix_ms();
    let mut rows = Vec::new();
    for (i, f) in snapshot.frontends.iter().enumerate() {
        let (sessions, requests) = rates.frontends.get(i).copied().unwrap_or_default();
        rows.push(frontend(f, i + 1, sessions, requests));
    }
    let offset = snapshot.frontends.len();
    for (i, b) in snapshot.backends.iter().enumerate() {
        let (own, servers) = rates.backends.get(i).cloned().unwrap_or_default();
        for (j, s) in b.servers.iter().enumerate() {
            let rate = servers.get(j).copied().unwrap_or_default();
            rows.push(server(b, s, offset + i + 1, j + 1, rate, now_ms));
        }
        rows.push(backend(b, offset + i + 1, own, now_ms));
    }
    rows
}

fn now_unix_ms() -> u64 {
    (crate::snapshot::now_seconds() * 1000.0) as u64
}

fn seconds_since(unix_ms: u64, now_ms: u64) -> u64 {
    now_ms.saturating_sub(unix_ms) / 1000
}

fn frontend(f: &FrontendSnapshot, iid: usize, sessions: Rate, requests: Rate) -> Row {
    let mut row = Row::new(Kind::Frontend);
    traffic(&mut row, &f.traffic, f.mode, sessions);
    row.set("pxname", f.name.as_str())
        .set("svname", "FRONTEND")
        .set("slim", f.limit)
        .set("dreq", f.denied)
        .set("ereq", f.request_errors)
        .set("status", "OPEN")
        .set("iid", iid as u64)
        .set("sid", 0)
        .set("type", 0)
        .set("conn_rate", sessions.current)
        .set("conn_rate_max", sessions.max)
        .set("conn_tot", f.connections)
        .set("intercepted", f.intercepted);
    if f.mode == "http" {
        row.set("req_rate", requests.current)
            .set("req_rate_max", requests.max);
    }
    row
}

/// Fields frontends, backends and servers share: sessions, bytes, the
/// session rate, HTTP responses.
fn traffic(row: &mut Row, t: &TrafficSnapshot, mode: &str, rate: Rate) {
    row.set("scur", t.current)
        .set("smax", t.max)
        .set("stot", t.sessions)
        .set("bin", t.bytes_in)
        .set("bout", t.bytes_out)
        .set("dresp", 0)
        .set("pid", 1)
        .set("rate", rate.current)
        .set("rate_max", rate.max)
        .set("mode", mode);
    if mode == "http" {
        responses(row, t.http_responses);
        row.set("req_tot", t.http_requests);
    }
}

fn responses(row: &mut Row, counts: [u64; 6]) {
    const COLUMNS: [&str; 6] = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ];
    debug_assert_eq!(STATUS_CLASSES.len(), COLUMNS.len());
    for (column, count) in COLUMNS.into_iter().zip(counts) {
        row.set(column, count);
    }
}

/// Fields backends and servers share.
fn proxy(row: &mut Row, c: &ProxySnapshot, mode: &str, rate: Rate, now_ms: u64) {
    let t = &c.traffic;
    traffic(row, t, mode, rate);
    row.set("qcur", 0)
        .set("qmax", 0)
        .set("econ", c.connection_errors)
        .set("eresp", c.response_errors)
        .set("wretr", c.retries)
        .set("wredis", c.redispatches)
        .set("lbtot", t.sessions)
        .set("qtime", 0)
        .set("ctime", c.connect_time.average_us / 1000)
        .set("rtime", c.response_time.average_us / 1000)
        .set("ttime", c.total_time.average_us / 1000)
        .set("connect", c.connection_attempts)
        .set("reuse", c.connection_reuses)
        .set("qtime_max", 0)
        .set("ctime_max", c.connect_time.max_us / 1000)
        .set("rtime_max", c.response_time.max_us / 1000)
        .set("ttime_max", c.total_time.max_us / 1000);
    row.set(
        "lastsess",
        match t.last_session_unix_ms {
            0 => Value::Text("-1".into()),
            ms => Value::Num(seconds_since(ms, now_ms)),
        },
    );
}

fn server(
    b: &BackendSnapshot,
    s: &ServerSnapshot,
    iid: usize,
    sid: usize,
    rate: Rate,
    now_ms: u64,
) -> Row {
    let mut row = Row::new(Kind::Server);
    row.backup = s.backup;
    proxy(&mut row, &s.counters, b.mode, rate, now_ms);
    let last_ok = (s.check.as_ref())
        .and_then(|c| c.last_check.as_ref())
        .map(|l| l.ok);
    row.shade = match (s.state, last_ok) {
        (ServerState::Unchecked, _) => Shade::NoCheck,
        (ServerState::Up, Some(false)) => Shade::GoingDown,
        (ServerState::Up, _) => Shade::Up,
        (ServerState::Down, Some(true)) => Shade::GoingUp,
        (ServerState::Down, _) => Shade::Down,
    };
    let status = match s.state {
        ServerState::Up => "UP",
        ServerState::Down => "DOWN",
        ServerState::Unchecked => "no check",
    };
    let weight = if s.state == ServerState::Down {
        0
    } else {
        s.weight
    };
    row.set("pxname", b.name.as_str())
        .set("svname", s.name.as_str())
        .set("status", status)
        .set("weight", weight)
        .set("uweight", s.weight)
        .set("act", u64::from(!s.backup))
        .set("bck", u64::from(s.backup))
        .set("iid", iid as u64)
        .set("sid", sid as u64)
        .set("type", 2)
        .set("addr", format!("{}:{}", s.address, s.port))
        .set("idle_conn_cur", s.idle_connections)
        .set("used_conn_cur", s.counters.traffic.current);
    if s.limit > 0 {
        row.set("slim", s.limit);
    }
    if let Some(c) = &s.check {
        row.set("chkfail", c.failures)
            .set("chkdown", c.up_down)
            .set("downtime", c.downtime.as_secs());
        if let Some(at) = c.last_change_unix_ms {
            row.set("lastchg", seconds_since(at, now_ms));
        }
        if let Some(status) = c.status {
            row.set("check_status", status)
                .set("check_duration", c.duration.as_millis() as u64)
                .set("last_chk", status);
        }
        if c.code > 0 {
            row.set("check_code", c.code);
        }
        if let Some(last) = &c.last_check {
            row.set("check_desc", last.reason.as_str());
        }
    }
    row
}

fn backend(b: &BackendSnapshot, iid: usize, rate: Rate, now_ms: u64) -> Row {
    let mut row = Row::new(Kind::Backend);
    proxy(&mut row, &b.counters, b.mode, rate, now_ms);
    let last_change = (b.servers.iter())
        .filter_map(|s| s.check.as_ref()?.last_change_unix_ms)
        .max();
    row.set("pxname", b.name.as_str())
        .set("svname", "BACKEND")
        .set("status", if b.up { "UP" } else { "DOWN" })
        .set("weight", b.weight)
        .set("uweight", b.weight)
        .set("act", b.active_servers)
        .set("bck", b.backup_servers)
        .set("iid", iid as u64)
        .set("sid", 0)
        .set("type", 1);
    if let Some(at) = last_change {
        row.set("lastchg", seconds_since(at, now_ms));
    }
    row
}
