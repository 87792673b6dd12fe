//! TLS settings of frontends (termination, passthrough) in the config model.

use serde::{Deserialize, Serialize};

use super::{Frontend, Mode};

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

/// TLS towards a backend's servers (haproxy `server ... ssl ca-file crt sni verify`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// CA certificates (PEM) the servers' certificates must chain to. Default
    /// none, which needs `insecureSkipVerify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Client certificate chain (PEM) presented to servers (mTLS). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// Key (PEM) of the client certificate. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
    /// Name sent as SNI and verified in the server certificate. Default: each
    /// server's address (no SNI is sent for an IP address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any server certificate (haproxy `verify none`); logged as a
    /// warning at apply. Default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for BackendTls {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish_non_exhaustive()
    }
}

impl BackendTls {
    /// Problems as (field, reason), relative to `tls`.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.ca_pem.is_none() && !self.insecure_skip_verify {
            out.push((
                "tls.caPem".into(),
                "a CA is needed to verify servers (or set insecureSkipVerify)".into(),
            ));
        }
        if self.client_cert_pem.is_some() != self.client_key_pem.is_some() {
            out.push((
                "tls.clientKeyPem".into(),
                "a client certificate needs its key, and a key its certificate".into(),
            ));
        }
        out
    }
}

/// Whether `f` passes TLS through, routing on SNI.
pub(crate) fn is_passthrough(f: &Frontend) -> bool {
    f.tls
        .as_ref()
        .is_some_and(|t| t.mode == TlsMode::Passthrough)
}

/// Problems of a frontend's TLS and SNI routes, as (field, reason).
pub(crate) fn frontend_problems(f: &Frontend) -> Vec<(String, String)> {
    let mut out = f
        .tls
        .as_ref()
        .map(FrontendTls::problems)
        .unwrap_or_default();
    let passthrough = is_passthrough(f);
    if passthrough && f.mode != Mode::Tcp {
        out.push(("tls.mode".into(), "passthrough needs tcp mode".into()));
    }
    for (j, r) in f.routes.iter().enumerate() {
        match (&r.sni, passthrough) {
            (Some(_), false) => out.push((
                format!("routes[{j}].sni"),
                "sni needs tls.mode passthrough".into(),
            )),
            (Some(name), true) if name.is_empty() => {
                out.push((format!("routes[{j}].sni"), "must not be empty".into()));
            }
            (None, true) => out.push((
                format!("routes[{j}].sni"),
                "a passthrough route needs sni".into(),
            )),
            _ => {}
        }
        let http_match = r.host.is_some() || r.path.is_some() || r.path_prefix.is_some();
        if passthrough && http_match {
            out.push((
                format!("routes[{j}]"),
                "a passthrough route matches on sni only".into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Route;

    fn passthrough(mode: Mode, routes: Vec<Route>) -> Frontend {
        let mut f = Frontend::new("fe", mode, "127.0.0.1:8443".parse().unwrap());
        f.tls = Some(FrontendTls {
            mode: TlsMode::Passthrough,
            ..FrontendTls::terminate(Vec::new())
        });
        f.routes = routes;
        f
    }

    fn route(sni: Option<&str>, host: Option<&str>) -> Route {
        Route {
            sni: sni.map(Into::into),
            host: host.map(Into::into),
            backend: "be".into(),
            ..Route::default()
        }
    }

    fn fields(f: &Frontend) -> Vec<String> {
        frontend_problems(f)
            .into_iter()
            .map(|(f, r)| format!("{f}: {r}"))
            .collect()
    }

    #[test]
    fn passthrough_routes_match_on_sni_only_in_tcp_mode() {
        let ok = passthrough(Mode::Tcp, vec![route(Some("*.example.com"), None)]);
        assert_eq!(fields(&ok), Vec::<String>::new());
        let http = passthrough(Mode::Http, vec![]);
        assert_eq!(fields(&http), ["tls.mode: passthrough needs tcp mode"]);
        let bad = passthrough(
            Mode::Tcp,
            vec![route(None, Some("a")), route(Some(""), None)],
        );
        assert_eq!(
            fields(&bad),
            [
                "routes[0].sni: a passthrough route needs sni",
                "routes[0]: a passthrough route matches on sni only",
                "routes[1].sni: must not be empty",
            ]
        );
        let mut terminate = Frontend::new("fe", Mode::Http, "127.0.0.1:8443".parse().unwrap());
        terminate.routes = vec![route(Some("a"), None)];
        assert_eq!(
            fields(&terminate),
            ["routes[0].sni: sni needs tls.mode passthrough"]
        );
    }
}
