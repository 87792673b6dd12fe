//! The TCP side of access logs: a [`Session`] notes when the connection
//! began and when its server connection was ready, and logs one `tcplog`
//! line when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::access_log::{FrontendLog, Record, Timers, ms};
use crate::backend::{BackendRuntime, ServerRuntime};
use crate::frontend::FrontendRuntime;

/// One connection being logged; nothing happens when its frontend does not log.
pub struct Session<'a> {
    log: Option<&'a FrontendLog>,
    tls: bool,
    peer: SocketAddr,
    started: Instant,
    date_unix_ms: u64,
    connect_ms: i64,
}

impl<'a> Session<'a> {
    /// A connection from `peer` to `frontend`, begun now.
    pub fn start(frontend: &'a FrontendRuntime, peer: SocketAddr) -> Self {
        let log = frontend.log.as_ref();
        Session {
            log,
            tls: frontend.tls.is_some(),
            peer,
            started: Instant::now(),
            date_unix_ms: if log.is_some() {
                crate::counters::unix_ms()
            } else {
                0
            },
            connect_ms: -1,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The server connection is ready.
    pub fn connected(&mut self) {
        if self.log.is_some() {
            self.connect_ms = ms(self.started.elapsed());
        }
    }

    /// The session ended after `sent` bytes from the client and `received`
    /// bytes to it, in HAProxy's state `state`.
    pub fn end(
        self,
        backend: Option<&Arc<BackendRuntime>>,
        server: Option<&Arc<ServerRuntime>>,
        sent: u64,
        received: u64,
        state: &[u8; 2],
    ) {
        let Some(log) = self.log else {
            return;
        };
        if log.target.dont_log_null && sent == 0 {
            return;
        }
        log.log(Record {
            target: log.target.clone(),
            client: self.peer,
            date_unix_ms: self.date_unix_ms,
            tls: self.tls,
            backend: backend.cloned(),
            server: server.cloned(),
            no_server: "<NOSRV>",
            timers: Timers {
                idle: -1,
                request: -1,
                queue: if self.connect_ms >= 0 { 0 } else { -1 },
                connect: self.connect_ms,
                response: -1,
                total: ms(self.started.elapsed()),
            },
            status: 0,
            bytes: received,
            termination: *state,
            connections: log.connections(backend.map(|b| &**b), server),
            retries: 0,
            request: None,
        });
    }
}
