//! TLS fields -> dataplane TLS: certificates from Secrets of type
//! kubernetes.io/tls, checked here so `fairlead check` names the Secret.

use fairlead_crds::{BackendTls, FrontendTls, TlsMode};
use fairlead_dataplane::config;
use fairlead_dataplane::tls::{certs, provider};
use k8s_openapi::api::core::v1::Secret;

use super::{Report, Snapshot, names};

/// The Secret type of a certificate and its key.
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Renders a Frontend's `spec.tls`; problems go to `report`.
pub(super) fn frontend_tls(
    namespace: &str,
    tls: &FrontendTls,
    snapshot: &Snapshot,
    report: &mut Report,
) -> config::FrontendTls {
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    for (i, c) in tls.certificates.iter().enumerate() {
        let field = format!("spec.tls.certificates[{i}].secret");
        match certificate(namespace, &c.secret, snapshot) {
            Ok(cert) => certificates.push(cert),
            Err(e) => report.error(field, e),
        }
    }
    let mut rendered = config::FrontendTls::terminate(certificates);
    if tls.mode == Some(TlsMode::Passthrough) {
        rendered.mode = config::TlsMode::Passthrough;
    }
    if let Some(v) = &tls.min_version {
        rendered.min_version = v.clone();
    }
    if !tls.alpn.is_empty() {
        rendered.alpn = tls.alpn.clone();
    }
    rendered
}

/// Renders a Backend's `spec.tls`; problems go to `report`.
pub(super) fn backend_tls(
    namespace: &str,
    tls: &BackendTls,
    snapshot: &Snapshot,
    report: &mut Report,
) -> config::BackendTls {
    let insecure_skip_verify = tls.insecure_skip_verify.unwrap_or(false);
    let ca_pem = match &tls.ca_secret {
        Some(name) => ca_bundle(namespace, name, snapshot)
            .map_err(|e| report.error("spec.tls.caSecret", e))
            .ok(),
        None if insecure_skip_verify => None,
        None => {
            report.error(
                "spec.tls.caSecret",
                "required to verify servers (fairlead does not read system roots); \
                 or set insecureSkipVerify: true",
            );
            None
        }
    };
    let client = tls.client_cert_secret.as_ref().and_then(|name| {
        certificate(namespace, name, snapshot)
            .map_err(|e| report.error("spec.tls.clientCertSecret", e))
            .ok()
    });
    config::BackendTls {
        ca_pem,
        client_cert_pem: client.as_ref().map(|c| c.cert_pem.clone()),
        client_key_pem: client.map(|c| c.key_pem),
        server_name: tls.server_name.clone(),
        insecure_skip_verify,
    }
}

/// The `ca.crt` of Secret `name`, checked to hold certificates.
fn ca_bundle(namespace: &str, name: &str, snapshot: &Snapshot) -> Result<String, String> {
    let secret = find_secret(namespace, name, snapshot)?;
    let pem = secret_text(secret, "ca.crt")
        .ok_or_else(|| format!("Secret {namespace}/{name} has no ca.crt"))?;
    certs::parse_chain(&pem).map_err(|e| format!("Secret {namespace}/{name}: ca.crt: {e}"))?;
    Ok(pem)
}

/// The certificate and key of Secret `name`: `tls.crt` and `tls.key`, or one
/// PEM in `tls.crt` holding certificate, chain and key (haproxy style).
fn certificate(
    namespace: &str,
    name: &str,
    snapshot: &Snapshot,
) -> Result<config::Certificate, String> {
    let secret = find_secret(namespace, name, snapshot)?;
    if let Some(t) = secret.type_.as_deref().filter(|t| *t != TLS_SECRET_TYPE) {
        return Err(format!(
            "Secret {namespace}/{name} has type {t}, not {TLS_SECRET_TYPE}"
        ));
    }
    let cert_pem = secret_text(secret, "tls.crt")
        .ok_or_else(|| format!("Secret {namespace}/{name} has no tls.crt"))?;
    let key_pem = secret_text(secret, "tls.key")
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(|| cert_pem.clone());
    certs::certified_key(&cert_pem, &key_pem, &provider())
        .map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
    Ok(config::Certificate {
        source: format!("Secret {namespace}/{name}"),
        cert_pem,
        key_pem,
    })
}

/// Secret `name` in `namespace`, or an error naming it.
pub(super) fn find_secret<'a>(
    namespace: &str,
    name: &str,
    snapshot: &'a Snapshot,
) -> Result<&'a Secret, String> {
    snapshot
        .secrets
        .iter()
        .find(|s| names(&s.metadata) == (namespace, name))
        .ok_or_else(|| format!("Secret {namespace}/{name} does not exist"))
}

/// A key of a Secret as UTF-8 text, from `data` or `stringData`.
pub(super) fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    data.or_else(|| secret.string_data.as_ref()?.get(key).cloned())
}

#[cfg(test)]
mod tests;
