//! The client of a dataplane's admin API: HTTPS, the dataplane's certificate
//! verified against the credentials CA for the fixed name `fairlead-dataplane`
//! (whatever IP it is reached at), the operator's client certificate from
//! the same CA to authenticate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The name every dataplane's serving certificate carries.
pub const DATAPLANE_SERVER_NAME: &str = "fairlead-dataplane";

/// Limit of one whole call: connect, TLS, request, response.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read.
const RESPONSE_LIMIT: usize = 16 << 20;

/// Why a call to a dataplane failed (the dataplane did not answer as the contract says).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Connecting, TLS, or HTTP failed, or the call timed out.
    #[error("dataplane {address}: {message}")]
    Transport {
        /// The admin API address.
        address: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// An answer the contract does not have (e.g. 401, 500).
    #[error("dataplane {address}: HTTP {status}: {body}")]
    Status {
        /// The admin API address.
        address: SocketAddr,
        /// HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
}

/// What a dataplane did with a pushed config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Running this version now (200).
    Applied(u64),
    /// Rejected, nothing changed (422); the dataplane's reasons.
    Rejected(Vec<String>),
    /// Older than what it runs (409): it runs `running`.
    Stale {
        /// The running version.
        running: u64,
    },
}

/// `GET /v1/status` of a dataplane: what the operator reads of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneStatus {
    /// Node name the dataplane runs on.
    #[serde(default)]
    pub node: Option<String>,
    /// Version of the running config (0 before the first).
    #[serde(default)]
    pub version: u64,
    /// Health of every server, per backend.
    #[serde(default)]
    pub backends: Vec<BackendHealth>,
    /// VRRP state per VirtualIP; absent on dataplanes without VRRP.
    #[serde(default, rename = "virtualIPs")]
    pub virtual_ips: Vec<VirtualIpState>,
    /// When the operator read it, in ms since the Unix epoch (0: unknown).
    #[serde(skip)]
    pub read_at_unix_ms: u64,
}

/// One backend's servers as a dataplane reports them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BackendHealth {
    /// `namespace/name`.
    pub name: String,
    /// Servers in config order.
    #[serde(default)]
    pub servers: Vec<ServerHealth>,
}

/// One server's health on one dataplane.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerHealth {
    /// Server name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// `up`, `down` or `unchecked`.
    pub state: String,
    /// The most recent check.
    #[serde(default)]
    pub last_check: Option<LastCheck>,
}

/// The most recent health check of a server.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LastCheck {
    /// Whether it passed.
    pub ok: bool,
    /// Why it passed or failed.
    pub reason: String,
}

/// The VRRP state of one VirtualIP on one dataplane.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VirtualIpState {
    /// `namespace/name` of the VirtualIP.
    pub name: String,
    /// `Master`, `Backup`, `Initialize`, ...
    pub state: String,
    /// Effective priority.
    #[serde(default)]
    pub priority: i32,
    /// Virtual router ID.
    #[serde(default)]
    pub vrid: Option<u8>,
    /// IDs of other virtual routers this node heard on the link lately.
    #[serde(default, rename = "heardVrids")]
    pub heard_vrids: Vec<u8>,
    /// Address of the current master, as this node sees it.
    #[serde(default)]
    pub master: Option<String>,
    /// The last state change.
    #[serde(default, rename = "lastTransition")]
    pub last_transition: Option<VrrpTransition>,
    /// When it last became Master (Unix ms, the node's clock), also after it left Master.
    #[serde(default, rename = "becameMasterAtUnixMs")]
    pub became_master_at_unix_ms: Option<u64>,
}

/// When a VRRP instance last changed state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VrrpTransition {
    /// In ms since the Unix epoch, by the dataplane node's clock.
    pub at_unix_ms: u64,
    /// The state it left (`Master`, `Backup`, ...).
    #[serde(default)]
    pub from: String,
}

#[derive(Deserialize)]
struct Applied {
    version: u64,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    running: Option<u64>,
}

/// A client with the credentials of one `fairlead-dataplane-tls` Secret.
#[derive(Clone)]
pub struct AdminClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminClient { .. }")
    }
}

impl AdminClient {
    /// A client trusting the CA certificates in `ca_pem` and presenting the
    /// certificate chain `cert_pem` with its key `key_pem`. Errors name the key.
    pub fn new(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| format!("ca.crt: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca.crt: {e}"))?;
        }
        if roots.is_empty() {
            return Err("ca.crt: no certificate".into());
        }
        let chain = (CertificateDer::pem_slice_iter(cert_pem))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls.crt: {e}"))?;
        if chain.is_empty() {
            return Err("tls.crt: no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls.key: {e}"))?;
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.key: {e}"))?;
        Ok(AdminClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `PUT /v1/config` with `body`, the config JSON.
    pub async fn put_config(
        &self,
        address: SocketAddr,
        body: Bytes,
    ) -> Result<PushOutcome, PushError> {
        let (status, text) = self.call(address, Method::PUT, "/v1/config", body).await?;
        match status {
            StatusCode::OK => serde_json::from_slice::<Applied>(&text)
                .map(|a| PushOutcome::Applied(a.version))
                .map_err(|e| bad_body(address, status, &text, e)),
            StatusCode::UNPROCESSABLE_ENTITY => serde_json::from_slice::<Errors>(&text)
                .map(|e| PushOutcome::Rejected(e.errors))
                .map_err(|e| bad_body(address, status, &text, e)),
            StatusCode::CONFLICT => match serde_json::from_slice::<Errors>(&text) {
                Ok(Errors {
                    running: Some(running),
                    ..
                }) => Ok(PushOutcome::Stale { running }),
                _ => Err(unexpected(address, status, &text)),
            },
            _ => Err(unexpected(address, status, &text)),
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self, address: SocketAddr) -> Result<DataplaneStatus, PushError> {
        let (status, text) = (self.call(address, Method::GET, "/v1/status", Bytes::new())).await?;
        if status != StatusCode::OK {
            return Err(unexpected(address, status, &text));
        }
        let mut read: DataplaneStatus =
            serde_json::from_slice(&text).map_err(|e| bad_body(address, status, &text, e))?;
        read.read_at_unix_ms = (SystemTime::now().duration_since(UNIX_EPOCH))
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(read)
    }

    async fn call(
        &self,
        address: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), PushError> {
        let call = self.call_inner(address, method, path, body);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(|message| PushError::Transport { address, message }),
            Err(_) => Err(PushError::Transport {
                address,
                message: format!("no answer within {CALL_TIMEOUT:?}"),
            }),
        }
    }

    async fn call_inner(
        &self,
        address: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        let name = ServerName::try_from(DATAPLANE_SERVER_NAME).expect("a valid DNS name");
        let tls = (self.connector.connect(name, tcp).await).map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, DATAPLANE_SERVER_NAME)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = (sender.send_request(request).await).map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), RESPONSE_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

fn unexpected(address: SocketAddr, status: StatusCode, body: &[u8]) -> PushError {
    PushError::Status {
        address,
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
    }
}

fn bad_body(
    address: SocketAddr,
    status: StatusCode,
    body: &[u8],
    e: serde_json::Error,
) -> PushError {
    let mut error = unexpected(address, status, body);
    if let PushError::Status { body, .. } = &mut error {
        *body = format!("{body} ({e})");
    }
    error
}

#[cfg(test)]
mod tests;
