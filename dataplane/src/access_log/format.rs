//! Access log lines. `httplog` and `tcplog` are HAProxy's default formats,
//! field for field (HAProxy's configuration manual, 8.2.2 and 8.2.3):
//!
//! ```text
//! httplog: %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r
//! 127.0.0.1:40742 [04/Dec/2026:22:11:45.357] web app/s1 0/0/0/9/9 404 500 - - ---- 1/1/0/0/0 0/0 "GET /index.html?a=b HTTP/1.1"
//! tcplog:  %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
//! 127.0.0.1:49844 [04/Dec/2026:22:11:48.394] tcpin tapp/s1 1/0/5 848 -- 1/1/0/0/0 0/0
//! ```
//!
//! No headers or cookies are captured, so the two cookie fields are `-` and
//! the cookie letters of the state are `--`. A request with no server shows
//! `<NOSRV>`; one answered here (stats page, redirect, deny) shows the
//! frontend as the backend, as HAProxy does. JSON names each field as
//! HAProxy's manual does.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::time::clf_date;
use super::{Record, RequestLine};

/// `frontend~` when TLS was terminated, as HAProxy's `%ft`.
fn frontend(r: &Record) -> String {
    let mut name = r.target.frontend.clone();
    if r.tls {
        name.push('~');
    }
    name
}

/// The backend and server names, `<NOSRV>` when none was picked.
fn backend_server(r: &Record) -> (String, String) {
    let backend = r
        .backend
        .as_ref()
        .map_or_else(|| r.target.frontend.clone(), |b| b.spec.name.clone());
    let server = r
        .server
        .as_ref()
        .map_or_else(|| r.no_server.to_string(), |s| s.spec.name.clone());
    (backend, server)
}

fn termination(r: &Record) -> String {
    String::from_utf8_lossy(&r.termination).into_owned()
}

/// `GET /path?q HTTP/1.1`, quoted as HAProxy's `%{+Q}r` (a `"` inside
/// becomes `\"`; control characters are sent as `#XX`).
fn request_line(line: &RequestLine) -> String {
    let version = match line.version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    };
    let uri = line
        .uri
        .path_and_query()
        .map_or_else(|| line.uri.to_string(), |p| p.as_str().to_string());
    let text = format!("{} {uri} {version}", line.method);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            c if c.is_control() => {
                let _ = write!(out, "#{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The httplog line of `r`.
pub fn http_line(r: &Record) -> String {
    let (backend, server) = backend_server(r);
    let t = &r.timers;
    let [ac, fc, bc, sc] = r.connections;
    let request = (r.request.as_ref()).map_or_else(|| "<BADREQ>".into(), request_line);
    format!(
        "{}:{} [{}] {} {backend}/{server} {}/{}/{}/{}/{} {} {} - - {}-- {ac}/{fc}/{bc}/{sc}/{} 0/0 \"{request}\"",
        r.client.ip(),
        r.client.port(),
        clf_date(r.date_unix_ms),
        frontend(r),
        t.request,
        t.queue,
        t.connect,
        t.response,
        t.total,
        r.status,
        r.bytes,
        termination(r),
        r.retries,
    )
}

/// The tcplog line of `r`.
pub fn tcp_line(r: &Record) -> String {
    let (backend, server) = backend_server(r);
    let t = &r.timers;
    let [ac, fc, bc, sc] = r.connections;
    format!(
        "{}:{} [{}] {} {backend}/{server} {}/{}/{} {} {} {ac}/{fc}/{bc}/{sc}/{} 0/0",
        r.client.ip(),
        r.client.port(),
        clf_date(r.date_unix_ms),
        frontend(r),
        t.queue,
        t.connect,
        t.total,
        r.bytes,
        termination(r),
        r.retries,
    )
}

/// The JSON line of `r`: httplog's fields for HTTP, tcplog's for TCP.
pub fn json_line(r: &Record) -> String {
    let (backend, server) = backend_server(r);
    let t = &r.timers;
    let [ac, fc, bc, sc] = r.connections;
    // In the order of the line's fields (a serde_json map would sort them).
    let mut m: Vec<(&str, Value)> = Vec::with_capacity(24);
    let mut put = |k: &'static str, v: Value| m.push((k, v));
    put("client_ip", json!(r.client.ip().to_string()));
    put("client_port", json!(r.client.port()));
    put("accept_date", json!(clf_date(r.date_unix_ms)));
    put("frontend_name", json!(frontend(r)));
    put("backend_name", json!(backend));
    put("server_name", json!(server));
    if r.target.http {
        put("Ti", json!(t.idle));
        put("TR", json!(t.request));
    }
    put("Tw", json!(t.queue));
    put("Tc", json!(t.connect));
    if r.target.http {
        put("Tr", json!(t.response));
        put("Ta", json!(t.total));
        put("status_code", json!(r.status));
    } else {
        put("Tt", json!(t.total));
    }
    put("bytes_read", json!(r.bytes));
    let state = termination(r);
    if r.target.http {
        put("captured_request_cookie", json!("-"));
        put("captured_response_cookie", json!("-"));
        put("termination_state", json!(format!("{state}--")));
    } else {
        put("termination_state", json!(state));
    }
    put("actconn", json!(ac));
    put("feconn", json!(fc));
    put("beconn", json!(bc));
    put("srv_conn", json!(sc));
    put("retries", json!(r.retries));
    put("srv_queue", json!(0));
    put("backend_queue", json!(0));
    if let Some(line) = &r.request {
        put(
            "http_request",
            json!(request_line(line).replace("\\\"", "\"")),
        );
    }
    let mut out = String::with_capacity(512);
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{k}\":{v}");
    }
    out.push('}');
    out
}
