//! One check of one server: a TCP connect, or an HTTP/1.1 request with
//! `Connection: close` whose status line is compared to the expected ranges;
//! over TLS (the backend's CA, SNI and client certificate) when the backend
//! uses TLS.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::CheckOutcome;
use crate::config::HttpCheck;
use crate::tls::client::Connector;

/// Longest status line read from a server.
const MAX_STATUS_LINE: usize = 1024;

/// Where and how to check a server.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    /// IP address or DNS name.
    pub address: String,
    pub port: u16,
    pub timeout: Duration,
    pub http: Option<HttpCheck>,
    /// The backend's TLS client, used for HTTP checks.
    pub tls: Option<Connector>,
}

impl Probe {
    /// Runs one check within the timeout; never panics on what the server sends.
    pub async fn run(&self) -> CheckOutcome {
        match tokio::time::timeout(self.timeout, self.attempt()).await {
            Ok(Ok(reason)) => CheckOutcome { ok: true, reason },
            Ok(Err(reason)) => CheckOutcome { ok: false, reason },
            Err(_) => CheckOutcome {
                ok: false,
                reason: format!("timeout after {}ms", self.timeout.as_millis()),
            },
        }
    }

    async fn attempt(&self) -> Result<String, String> {
        let mut stream = self.connect().await.map_err(|e| error_text(&e))?;
        let Some(http) = &self.http else {
            return Ok("connected".into());
        };
        let request = self.request(http);
        let status = match &self.tls {
            None => exchange(&mut stream, &request).await?,
            Some(tls) => {
                let mut stream = tls
                    .handshake(stream, &self.address)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                exchange(&mut stream, &request).await?
            }
        };
        let reason = format!("HTTP status {status}");
        if http.expect_status.iter().any(|r| r.contains(status)) {
            Ok(reason)
        } else {
            Err(reason)
        }
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        match self.address.parse::<IpAddr>() {
            Ok(ip) => TcpStream::connect(SocketAddr::new(ip, self.port)).await,
            Err(_) => TcpStream::connect((self.address.as_str(), self.port)).await,
        }
    }

    /// The request; validation has made method, path and host safe to write.
    fn request(&self, http: &HttpCheck) -> String {
        let host = match (&http.host, self.address.parse::<IpAddr>()) {
            (Some(host), _) => host.clone(),
            (None, Ok(IpAddr::V6(ip))) => format!("[{ip}]"),
            (None, _) => self.address.clone(),
        };
        format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fairlead-health-check\r\nConnection: close\r\n\r\n",
            http.method, http.path
        )
    }
}

/// Sends `request` and returns the response's status code.
async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    request: &str,
) -> Result<u16, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {}", error_text(&e)))?;
    read_status(stream).await
}

/// Reads up to the end of the status line and returns its status code.
async fn read_status(stream: &mut (impl AsyncRead + Unpin)) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') {
        if buf.len() >= MAX_STATUS_LINE {
            return Err("status line too long".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the response: {}", error_text(&e)))?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or_else(|| "malformed status line".into())
}

/// `HTTP/1.x NNN ...` -> NNN.
fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    let after = rest.get(5).copied().unwrap_or(b'\r');
    if rest.get(1) != Some(&b' ')
        || !code.iter().all(u8::is_ascii_digit)
        || !matches!(after, b' ' | b'\r' | b'\n')
    {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn error_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusRange;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 9999 nope\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20\r\n"), None);
        assert_eq!(parse_status_line(b"SSH-2.0\r\n"), None);
    }

    /// A server that answers one connection with `answer`, returning what it read.
    async fn one_shot(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(answer).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, task)
    }

    fn probe(port: u16, http: Option<HttpCheck>) -> Probe {
        Probe {
            address: "127.0.0.1".into(),
            port,
            timeout: Duration::from_secs(5),
            http,
            tls: None,
        }
    }

    #[tokio::test]
    async fn http_check_sends_method_path_host_and_judges_the_status() {
        let (port, server) = one_shot(b"HTTP/1.1 404 Not Found\r\n\r\n").await;
        let http = HttpCheck {
            method: "HEAD".into(),
            path: "/healthz".into(),
            host: Some("app.internal".into()),
            expect_status: vec![StatusRange { from: 200, to: 299 }],
        };
        let outcome = probe(port, Some(http)).run().await;
        assert_eq!(
            outcome,
            CheckOutcome {
                ok: false,
                reason: "HTTP status 404".into()
            }
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("HEAD /healthz HTTP/1.1\r\nHost: app.internal\r\n"),
            "{request}"
        );
        assert!(request.contains("Connection: close\r\n"), "{request}");

        let (port, _server) = one_shot(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let outcome = probe(port, Some(HttpCheck::default())).run().await;
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.reason, "HTTP status 204");
    }

    #[tokio::test]
    async fn tcp_check_reports_refused_and_garbage_fails_http() {
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let outcome = probe(port, None).run().await;
        assert_eq!(outcome.reason, "connection refused");
        assert!(!outcome.ok);

        let (port, _server) = one_shot(b"HTTP/1.1 9999 nope\r\n\r\n").await;
        let outcome = probe(port, Some(HttpCheck::default())).run().await;
        assert_eq!(outcome.reason, "malformed status line");

        let (port, _server) = one_shot(&[b'x'; 2000]).await;
        let outcome = probe(port, Some(HttpCheck::default())).run().await;
        assert_eq!(outcome.reason, "status line too long");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut p = probe(port, Some(HttpCheck::default()));
        p.timeout = Duration::from_millis(50);
        let outcome = p.run().await;
        assert_eq!(outcome.reason, "timeout after 50ms");
        drop(listener);
    }
}
