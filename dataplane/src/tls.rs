//! TLS termination: a rustls server config per frontend, built at apply time,
//! with the certificate chosen by the client's SNI.

pub mod certs;
pub mod client;
pub mod passthrough;
pub mod sni;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::{CryptoProvider, ring};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{Frontend, FrontendTls};
use crate::{Error, Result};

/// The crypto provider every TLS config uses (ring), without global state.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Terminates TLS for one frontend.
#[derive(Clone)]
pub struct Terminator {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminator")
    }
}

impl Terminator {
    /// Builds the server config of `frontend`; errors name the frontend and
    /// the certificate (index and source).
    pub fn build(frontend: &Frontend, tls: &FrontendTls) -> Result<Self> {
        let bad = |field: String, reason: String| {
            Error::Invalid(format!("frontend {}: {field}: {reason}", frontend.name))
        };
        let provider = provider();
        let mut resolver = SniResolver::default();
        for (i, c) in tls.certificates.iter().enumerate() {
            let field = match c.source.as_str() {
                "" => format!("tls.certificates[{i}]"),
                source => format!("tls.certificates[{i}] ({source})"),
            };
            let key = certs::certified_key(&c.cert_pem, &c.key_pem, &provider)
                .map_err(|e| bad(field, e))?;
            resolver.add(key);
        }
        let versions: &[&'static SupportedProtocolVersion] = match tls.min_version.as_str() {
            "1.3" => &[&TLS13],
            _ => &[&TLS13, &TLS12],
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| bad("tls.minVersion".into(), e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Terminator {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the handshake within `limit`; `None` (logged) when it fails.
    pub async fn accept<S>(&self, stream: S, limit: Duration) -> Option<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(limit, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                None
            }
        }
    }
}

/// Picks a certificate by SNI: exact SAN name, then a `*.` wildcard one
/// label up, else the first certificate.
#[derive(Debug, Default)]
struct SniResolver {
    default: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    fn add(&mut self, key: Arc<CertifiedKey>) {
        if let Some(leaf) = key.cert.first() {
            for name in certs::dns_names(leaf) {
                self.by_name.entry(name).or_insert_with(|| key.clone());
            }
        }
        self.default.get_or_insert(key);
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.by_name.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        found.or(self.default.as_ref()).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests;
