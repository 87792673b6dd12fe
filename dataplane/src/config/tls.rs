//! TLS settings of frontends (termination) in the config model.

use serde::{Deserialize, Serialize};

/// What a frontend does with TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Decrypt here with the frontend's certificates (the default).
    #[default]
    Terminate,
    /// Forward the TLS session untouched, routing on SNI (tcp mode).
    Passthrough,
}

/// TLS on a frontend's socket (haproxy `bind ... ssl crt`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// `terminate` or `passthrough`. Default `terminate`.
    #[serde(default)]
    pub mode: TlsMode,
    /// Certificates with their keys; the first is served when no other
    /// matches the client's SNI by its SAN names. Default none (terminate needs one).
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Lowest accepted TLS version, `"1.2"` or `"1.3"`. Default `"1.2"`.
    #[serde(default = "default_min_version")]
    pub min_version: String,
    /// ALPN protocols offered, in order of preference. Default `["h2", "http/1.1"]`.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
}

/// A certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Where it came from (e.g. `Secret default/site`), for error messages. Default empty.
    #[serde(default)]
    pub source: String,
    /// Leaf certificate first, then the chain (PEM).
    pub cert_pem: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_pem: String,
}

impl std::fmt::Debug for Certificate {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn default_min_version() -> String {
    "1.2".into()
}

fn default_alpn() -> Vec<String> {
    vec!["h2".into(), "http/1.1".into()]
}

impl FrontendTls {
    /// Termination with these certificates and every other field at its default.
    pub fn terminate(certificates: Vec<Certificate>) -> Self {
        FrontendTls {
            mode: TlsMode::Terminate,
            certificates,
            min_version: default_min_version(),
            alpn: default_alpn(),
        }
    }

    /// Problems as (field, reason), relative to `tls`.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !matches!(self.min_version.as_str(), "1.2" | "1.3") {
            out.push((
                "tls.minVersion".into(),
                format!("{:?} is not \"1.2\" or \"1.3\"", self.min_version),
            ));
        }
        if self.mode == TlsMode::Terminate && self.certificates.is_empty() {
            out.push((
                "tls.certificates".into(),
                "terminate needs at least one certificate".into(),
            ));
        }
        for (i, p) in self.alpn.iter().enumerate() {
            if p.is_empty() || p.len() > 255 {
                out.push((format!("tls.alpn[{i}]"), "must be 1-255 bytes".into()));
            }
        }
        out
    }
}
