//! Test harness: demo backends as real processes, an in-process engine, and a
//! small HTTP/1.1 client over raw sockets (so tests control connections).

#![allow(dead_code)] // each test file uses part of the harness

use std::io::{BufRead, BufReader as StdBufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fairlead_dataplane::config::{Backend, Balance, Frontend, Mode, Server};
use fairlead_dataplane::{DataplaneConfig, Engine};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Upper bound for any single network step in a test.
pub const STEP: Duration = Duration::from_secs(10);

/// A `demo-backend` process, killed on drop.
pub struct Demo {
    pub addr: SocketAddr,
    child: Child,
}

impl Demo {
    /// Starts `demo-backend --mode MODE --name NAME` on a free loopback port.
    pub fn start(name: &str, mode: &str) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-backend"))
            .args(["--listen", "127.0.0.1:0", "--name", name, "--mode", mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("demo-backend starts");
        let mut line = String::new();
        StdBufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit(' ').next().and_then(|a| a.parse().ok());
        let addr = addr.unwrap_or_else(|| panic!("demo-backend printed {line:?}"));
        Demo { addr, child }
    }

    pub fn http(name: &str) -> Demo {
        Demo::start(name, "http")
    }

    /// Starts `demo-backend` on `addr`, e.g. again on the port of one that was stopped.
    pub fn start_at(addr: SocketAddr, name: &str, mode: &str) -> Demo {
        let listen = addr.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-backend"))
            .args(["--listen", &listen, "--name", name, "--mode", mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("demo-backend starts");
        let mut line = String::new();
        StdBufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.ends_with(&format!(" {listen}\n")),
            "demo-backend printed {line:?}"
        );
        Demo { addr, child }
    }

    pub fn server(&self, name: &str) -> Server {
        Server::new(name, self.addr.ip().to_string(), self.addr.port())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// An address where nothing listens (connections are refused).
pub fn dead_server(name: &str) -> Server {
    let addr = free_addr();
    Server::new(name, "127.0.0.1", addr.port())
}

pub fn backend(name: &str, mode: Mode, balance: Balance, servers: Vec<Server>) -> Backend {
    Backend::new(name, mode, balance, servers)
}

pub fn frontend(name: &str, mode: Mode, backend: &str) -> Frontend {
    let mut f = Frontend::new(name, mode, free_addr());
    f.default_backend = Some(backend.to_string());
    f
}

pub fn config(version: u64, frontends: Vec<Frontend>, backends: Vec<Backend>) -> DataplaneConfig {
    DataplaneConfig {
        version,
        frontends,
        backends,
        ..Default::default()
    }
}

/// An engine running `config`.
pub async fn engine(config: DataplaneConfig) -> Engine {
    let engine = Engine::new();
    engine.apply(config).await.expect("config applies");
    engine
}

/// An engine running `frontend` in front of `backend` (config version 1).
pub async fn serve(frontend: Frontend, backend: Backend) -> Engine {
    engine(config(1, vec![frontend], vec![backend])).await
}

/// An engine running `frontend` in front of one round-robin backend `be` (in
/// the frontend's mode) with `demo`'s server `s`.
pub async fn serve_one(frontend: Frontend, demo: &Demo) -> Engine {
    let be = backend(
        "be",
        frontend.mode,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    serve(frontend, be).await
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection speaking HTTP/1.1 by hand.
pub struct Conn {
    pub io: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let s = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn {
            io: BufReader::new(s),
        }
    }

    /// Opens from a chosen local address (any 127.x.y.z works on Linux loopback).
    pub async fn open_from(addr: SocketAddr, local: &str) -> Conn {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{local}:0").parse().unwrap()).unwrap();
        let s = tokio::time::timeout(STEP, sock.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn {
            io: BufReader::new(s),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// Sends a GET with keep-alive and reads the response.
    pub async fn get(&mut self, path: &str) -> Resp {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
            .await;
        self.read_response().await
    }

    /// Reads one response (Content-Length, chunked, or until close).
    pub async fn read_response(&mut self) -> Resp {
        tokio::time::timeout(STEP, self.read_response_inner())
            .await
            .expect("response in time")
    }

    async fn read_response_inner(&mut self) -> Resp {
        let mut line = String::new();
        self.io.read_line(&mut line).await.unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("header line");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 101 || status == 204 || status == 304 {
            return resp;
        }
        if let Some(len) = resp.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.io.read_exact(&mut body).await.unwrap();
            resp.body = body;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                line.clear();
                self.io.read_line(&mut line).await.unwrap();
                let size =
                    usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.io.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            self.io.read_to_end(&mut resp.body).await.unwrap();
        }
        resp
    }

    /// True when the peer closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.io.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// GET on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    Conn::open(addr).await.get(path).await
}

/// Counts how many responses came from each server (by body, the demo backend's name).
pub async fn tally(addr: SocketAddr, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut conn = Conn::open(addr).await;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r = conn.get("/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(r.text().trim().to_string()).or_default() += 1;
    }
    counts
}
