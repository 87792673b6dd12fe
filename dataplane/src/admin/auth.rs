//! Who may call the admin API: a bearer token, a client certificate from a
//! CA, or either.

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;

use crate::tls::provider;

/// The accepted credentials; at least one kind is configured.
#[derive(Clone)]
pub struct Auth {
    token: Option<Vec<u8>>,
    client_ca: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_ca", &self.client_ca)
            .finish()
    }
}

impl Auth {
    /// Accepts `token` (if any) and, when `client_ca`, client certificates
    /// verified during the handshake by the config of [`server_config`].
    pub fn new(token: Option<String>, client_ca: bool) -> Auth {
        Auth {
            token: token.map(String::into_bytes),
            client_ca,
        }
    }

    /// Whether a verified client certificate is a credential.
    pub(super) fn accepts_client_certificates(&self) -> bool {
        self.client_ca
    }

    /// True when neither a token nor a client CA is configured.
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && !self.client_ca
    }

    /// Allows a request that came with a verified client certificate or the
    /// right bearer token; else says why not.
    pub(super) fn authorize(
        &self,
        headers: &HeaderMap,
        client_cert: bool,
    ) -> Result<(), &'static str> {
        if client_cert && self.client_ca {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err("no client certificate");
        };
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err("no bearer token and no client certificate");
        };
        let value = value.as_bytes();
        let presented = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
            _ => return Err("Authorization is not a bearer token"),
        };
        if constant_time_eq(presented, token) {
            Ok(())
        } else {
            Err("wrong bearer token")
        }
    }
}

/// Compares in time that depends only on the lengths, not on where the
/// first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The admin API's TLS config: serves `key`; with `client_ca`, verifies
/// client certificates against it. A certificate is never required at the
/// handshake, so that a kubelet's probes (which present none) reach
/// `/healthz` and `/readyz`; every other endpoint requires credentials in
/// the handler (`Auth::authorize`). A certificate presented but not from
/// the CA still fails the handshake.
pub fn server_config(
    key: Arc<CertifiedKey>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
) -> Result<ServerConfig, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(certs) => {
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Single(key)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves one certificate whatever the SNI (the operator connects by IP and
/// verifies the fixed name `fairlead-dataplane`).
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Single {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, authorization.parse().unwrap());
        h
    }

    #[test]
    fn token_and_certificate_rules() {
        let both = Auth::new(Some("s3cret".into()), true);
        assert_eq!(both.authorize(&headers("Bearer s3cret"), false), Ok(()));
        assert_eq!(both.authorize(&headers("bearer  s3cret "), false), Ok(()));
        assert_eq!(both.authorize(&HeaderMap::new(), true), Ok(()));
        assert_eq!(
            both.authorize(&headers("Bearer s3cre"), false),
            Err("wrong bearer token")
        );
        assert_eq!(
            both.authorize(&headers("Basic czNjcmV0"), false),
            Err("Authorization is not a bearer token")
        );
        assert_eq!(
            both.authorize(&HeaderMap::new(), false),
            Err("no bearer token and no client certificate")
        );
        // A certificate counts only when a client CA is configured.
        let token_only = Auth::new(Some("s3cret".into()), false);
        assert!(token_only.authorize(&HeaderMap::new(), true).is_err());
        let ca_only = Auth::new(None, true);
        assert_eq!(
            ca_only.authorize(&headers("Bearer x"), false),
            Err("no client certificate")
        );
        assert!(Auth::new(None, false).is_empty());
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
