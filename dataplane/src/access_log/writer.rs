//! The writer thread: takes records off the queue, formats them, writes
//! stdout and sends syslog datagrams. It runs beside the proxy's runtime, so
//! a slow stdout or a lost syslog server never holds a proxy thread; its own
//! backlog is bounded by the queue.

use std::collections::HashMap;
use std::io::Write;
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::syslog::{facility_code, frame};
use super::{Entry, Queue, Record, Severity, format};
use crate::config::{LogFormat, Syslog};

/// Pause between two looks at the queue while lines come; lines reach
/// their sinks at most this late (the queue holds 16,384 in between).
pub const PAUSE: Duration = Duration::from_millis(2);
/// Longest pause while nothing comes.
const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// How long an address that failed to resolve is left alone.
const RESOLVE_AGAIN: Duration = Duration::from_secs(5);

pub struct Writer {
    queue: Queue,
    dropped: Arc<AtomicU64>,
    event_targets: Arc<ArcSwap<Vec<Syslog>>>,
    host: String,
    pid: u32,
    /// A connected socket per syslog address (connected, so that a refusal
    /// comes back as an error and the line is counted as dropped).
    sockets: HashMap<String, Option<UdpSocket>>,
    /// Addresses that failed to resolve or connect, and when.
    failed: HashMap<String, Instant>,
}

impl Writer {
    pub fn new(
        queue: Queue,
        dropped: Arc<AtomicU64>,
        event_targets: Arc<ArcSwap<Vec<Syslog>>>,
        host: String,
    ) -> Self {
        Writer {
            queue,
            dropped,
            event_targets,
            host,
            pid: std::process::id(),
            sockets: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Drains the queue every [`PAUSE`] (backing off to [`IDLE_PAUSE`]
    /// while it stays empty) until the queue's other holders are gone.
    /// Lines for stdout are gathered per batch and written under one short
    /// stdout lock, so that the process's other output interleaves by lines.
    pub fn run(mut self) {
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut pause = PAUSE;
        loop {
            let mut lines = 0u64;
            let mut any = false;
            while let Some(entry) = self.queue.pop() {
                any = true;
                lines += self.write(entry, &mut out);
                if out.len() >= 60 * 1024 {
                    self.flush(&mut out, lines);
                    lines = 0;
                }
            }
            self.flush(&mut out, lines);
            if Arc::strong_count(&self.queue) == 1 && self.queue.is_empty() {
                return;
            }
            pause = if any {
                PAUSE
            } else {
                (pause * 2).min(IDLE_PAUSE)
            };
            std::thread::sleep(pause);
        }
    }

    fn flush(&self, out: &mut Vec<u8>, lines: u64) {
        if out.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(out).and_then(|()| stdout.flush()).is_err() {
            // stdout is gone: these lines are lost.
            self.dropped.fetch_add(lines, Ordering::Relaxed);
        }
        out.clear();
    }

    /// Writes `entry`: stdout lines into `out`; returns how many went there.
    fn write(&mut self, entry: Entry, out: &mut Vec<u8>) -> u64 {
        let now = crate::counters::unix_ms();
        match entry {
            Entry::Access(record) => {
                let line = line(&record);
                if let Some(syslog) = &record.target.syslog {
                    self.send(syslog, Severity::Info, now, &line);
                }
                if record.target.stdout {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                    return 1;
                }
                0
            }
            Entry::Event(severity, text) => {
                let targets = self.event_targets.load_full();
                for syslog in targets.iter() {
                    self.send(syslog, severity, now, &text);
                }
                0
            }
        }
    }

    fn send(&mut self, syslog: &Syslog, severity: Severity, unix_ms: u64, msg: &str) {
        let datagram = frame(
            syslog.format,
            facility_code(&syslog.facility),
            severity,
            &self.host,
            &syslog.tag,
            self.pid,
            unix_ms,
            msg,
        );
        let sent = self
            .socket(&syslog.address)
            .is_some_and(|s| s.send(&datagram).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn socket(&mut self, address: &str) -> Option<&UdpSocket> {
        if let Some(at) = self.failed.get(address) {
            if at.elapsed() < RESOLVE_AGAIN {
                return None;
            }
            self.failed.remove(address);
            self.sockets.remove(address);
        }
        if !self.sockets.contains_key(address) {
            let socket = connect(address);
            if socket.is_none() {
                self.failed.insert(address.to_string(), Instant::now());
            }
            self.sockets.insert(address.to_string(), socket);
        }
        self.sockets.get(address).and_then(Option::as_ref)
    }
}

/// A non-blocking UDP socket connected to `address` (`host:port`).
fn connect(address: &str) -> Option<UdpSocket> {
    let target = address.to_socket_addrs().ok()?.next()?;
    let local: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(target).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

fn line(r: &Record) -> String {
    match (r.target.format, r.target.http) {
        (LogFormat::Json, _) => format::json_line(r),
        (_, true) => format::http_line(r),
        (_, false) => format::tcp_line(r),
    }
}
