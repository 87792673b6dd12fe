//! The HTTP side of access logs: a [`Trace`] that a request fills in as it
//! goes (backend, server, connect and response times, how it ended);
//! [`finished`] logs an HTTP/1 request once its response is sent, and
//! [`Logged`] is the HTTP/2 response body that hands the record to the log
//! when the client has it all (or is gone). With logging off, a trace stays
//! empty and costs no clock read.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use hyper::body::{Body, Frame, SizeHint};

use super::ProxyBody;
use crate::access_log::{FrontendLog, Record, RequestLine, Timers, ms};
use crate::backend::{BackendRuntime, ServerRuntime};

/// What one request did, for its log line.
pub struct Trace {
    on: bool,
    backend: Option<Arc<BackendRuntime>>,
    server: Option<Arc<ServerRuntime>>,
    /// When the request was handed over (logging on only).
    begun: Option<Instant>,
    /// The current step's start: request start, then connected.
    at: Option<Instant>,
    connect_ms: i64,
    response_ms: i64,
    state: [u8; 2],
    retries: u32,
    local: &'static str,
}

impl Trace {
    /// A trace that records when `on`.
    pub fn new(on: bool) -> Self {
        let now = on.then(Instant::now);
        Trace {
            on,
            backend: None,
            server: None,
            begun: now,
            at: now,
            connect_ms: -1,
            response_ms: -1,
            state: *b"--",
            retries: 0,
            local: "<NOSRV>",
        }
    }

    /// The request goes to `backend`.
    pub fn backend(&mut self, backend: &Arc<BackendRuntime>) {
        if self.on {
            self.backend = Some(backend.clone());
        }
    }

    /// A connection to `server` is ready (new or pooled).
    pub fn connected(&mut self, server: &Arc<ServerRuntime>) {
        if let Some(at) = self.at.filter(|_| self.on) {
            self.server = Some(server.clone());
            self.connect_ms = ms(at.elapsed());
            self.at = Some(Instant::now());
        }
    }

    /// The server's response head arrived.
    pub fn responded(&mut self) {
        if let Some(at) = self.at.filter(|_| self.on) {
            self.response_ms = ms(at.elapsed());
        }
    }

    /// The request ended in HAProxy's state `state` (`SC`, `sH`, `LR`...).
    pub fn ended(&mut self, state: &[u8; 2]) {
        self.state = *state;
    }

    /// Whether this trace records.
    pub fn on(&self) -> bool {
        self.on
    }

    /// The request's head is all here: its active time starts now.
    pub fn restart(&mut self) {
        if self.on {
            let now = Instant::now();
            (self.begun, self.at) = (Some(now), Some(now));
        }
    }

    /// The request was sent once more on a new connection.
    pub fn retried(&mut self) {
        self.retries += 1;
    }

    /// Answered here by the stats page (`<STATS>`, as HAProxy logs it).
    pub fn stats(&mut self) {
        self.state = *b"LR";
        self.local = "<STATS>";
    }
}

/// An HTTP/1 request's times: idle before it (`Ti`), its first byte, its
/// head complete (none when it never was).
pub struct Times {
    pub idle_ms: i64,
    pub started: Instant,
    pub received: Option<Instant>,
}

/// Logs an HTTP/1 request whose answer (`status`, `bytes` sent) is done:
/// `TR` is the time to receive the head from its first byte, `Ta` the
/// active time from that first byte (idle time excluded, as HAProxy does).
#[allow(clippy::too_many_arguments)]
pub fn finished(
    log: &FrontendLog,
    trace: Trace,
    line: Option<RequestLine>,
    client: &super::Client,
    times: Times,
    status: u16,
    bytes: u64,
) {
    let request_ms = times.received.map_or(-1, |r| ms(r - times.started));
    let total = ms(times.started.elapsed());
    let date_unix_ms = crate::counters::unix_ms().saturating_sub(total as u64);
    let mut record = record(
        log,
        trace,
        line,
        client.peer,
        client.tls,
        status,
        request_ms,
        date_unix_ms,
    );
    record.timers.idle = times.idle_ms;
    record.timers.total = total;
    record.bytes = bytes;
    record.connections = log.connections(record.backend.as_deref(), record.server.as_ref());
    log.log(record);
}

#[allow(clippy::too_many_arguments)]
fn record(
    log: &FrontendLog,
    trace: Trace,
    line: Option<RequestLine>,
    client: SocketAddr,
    tls: bool,
    status: u16,
    request_ms: i64,
    date_unix_ms: u64,
) -> Record {
    Record {
        target: log.target.clone(),
        client,
        date_unix_ms,
        tls,
        backend: trace.backend,
        server: trace.server,
        no_server: trace.local,
        timers: Timers {
            idle: 0,
            request: request_ms,
            queue: if trace.connect_ms >= 0 { 0 } else { -1 },
            connect: trace.connect_ms,
            response: trace.response_ms,
            total: -1,
        },
        status,
        bytes: 0,
        termination: trace.state,
        connections: [0; 4],
        retries: trace.retries,
        request: line,
    }
}

/// A response body that logs its request when it is done.
pub struct Logged {
    inner: ProxyBody,
    log: FrontendLog,
    record: Option<Record>,
    started: Instant,
    body_bytes: u64,
    ended: bool,
    failed: bool,
}

/// Wraps `resp` (to an HTTP/2 client) so that its request is logged to
/// `log` once sent.
pub fn logged(
    resp: Response<ProxyBody>,
    log: &FrontendLog,
    trace: Trace,
    line: Option<RequestLine>,
    client: SocketAddr,
    tls: bool,
) -> Response<ProxyBody> {
    let started = trace.begun.unwrap_or_else(Instant::now);
    let head = head_bytes(&resp);
    let date_unix_ms = crate::counters::unix_ms();
    let mut record = record(
        log,
        trace,
        line,
        client,
        tls,
        resp.status().as_u16(),
        0,
        date_unix_ms,
    );
    record.bytes = head;
    resp.map(|inner| {
        ProxyBody::Logged(Box::new(Logged {
            inner,
            log: log.clone(),
            record: Some(record),
            started,
            body_bytes: 0,
            ended: false,
            failed: false,
        }))
    })
}

/// The size of the response head as it would be in HTTP/1.1: status line,
/// headers, the `date` and `content-length` headers hyper adds when
/// missing, blank line.
fn head_bytes(resp: &Response<ProxyBody>) -> u64 {
    let status = resp.status();
    let reason = status.canonical_reason().unwrap_or("").len();
    let line = "HTTP/1.1 200 ".len() + reason + 2;
    let headers = resp.headers();
    let mut size: usize = (headers.iter())
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    if !headers.contains_key(http::header::DATE) {
        size += "date: Fri, 04 Dec 2026 22:10:00 GMT\r\n".len();
    }
    if !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && let Some(n) = resp.body().size_hint().exact()
    {
        size += "content-length: \r\n".len() + n.to_string().len();
    }
    (line + size + 2) as u64
}

impl Logged {
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.body_bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.failed = true,
            Poll::Ready(None) => self.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    pub fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    pub fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        let done = self.ended || self.inner.is_end_stream();
        if r.termination == *b"--" {
            if self.failed {
                r.termination = *b"SD";
            } else if !done {
                r.termination = *b"CD";
            }
        }
        r.bytes += self.body_bytes;
        r.timers.total = ms(self.started.elapsed());
        r.connections = (self.log).connections(r.backend.as_deref(), r.server.as_ref());
        self.log.log(r);
    }
}
