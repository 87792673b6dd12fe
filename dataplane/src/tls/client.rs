//! Backend TLS: a rustls client per backend, built at apply time, that
//! verifies servers against the backend's CA, sends SNI and may present a
//! client certificate.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{certs, provider};
use crate::config::{Backend, BackendTls};
use crate::{Error, Result};

/// A connection to a server: plain TCP or TLS over it.
pub trait Upstream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Upstream for T {}

/// Connects to a backend's servers over TLS.
#[derive(Clone)]
pub struct Connector {
    connector: TlsConnector,
    server_name: Option<String>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    /// Builds the client config of `backend`; errors name the backend and field.
    pub fn build(backend: &Backend, tls: &BackendTls) -> Result<Self> {
        let bad = |field: &str, reason: String| {
            Error::Invalid(format!("backend {}: tls.{field}: {reason}", backend.name))
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("caPem", e.to_string()))?;
        let builder = match (&tls.ca_pem, tls.insecure_skip_verify) {
            (_, true) => {
                tracing::warn!(backend = %backend.name, "TLS to servers is not verified (insecureSkipVerify)");
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            }
            (Some(ca), false) => {
                let mut roots = RootCertStore::empty();
                for cert in certs::parse_chain(ca).map_err(|e| bad("caPem", e))? {
                    roots.add(cert).map_err(|e| bad("caPem", e.to_string()))?;
                }
                builder.with_root_certificates(roots)
            }
            (None, false) => return Err(bad("caPem", "a CA is needed".into())),
        };
        let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain = certs::parse_chain(cert).map_err(|e| bad("clientCertPem", e))?;
                let key = certs::parse_key(key).map_err(|e| bad("clientKeyPem", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad("clientKeyPem", e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Connector {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: tls.server_name.clone(),
        })
    }

    /// Runs the handshake over `stream` to the server at `address`.
    pub async fn handshake(&self, stream: TcpStream, address: &str) -> io::Result<impl Upstream> {
        let name = self.server_name.as_deref().unwrap_or(address);
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, stream).await
    }
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
